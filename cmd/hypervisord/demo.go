package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hypersdk/hypersdk/providers"
)

// demoProvider is the provider instance name of the vSphere demo of
// --demo; demoAWSProvider that of the AWS demo.
const (
	demoProvider    = providers.DemoInstanceName
	demoAWSProvider = providers.DemoInstanceName + "-" + string(providers.TypeAWS)
)

func printDemoHelp(w io.Writer, exportDir string) {
	hyperctl := "go run ./cmd/hyperctl"
	if _, err := os.Stat(filepath.Join("cmd", "hyperctl")); err != nil {
		hyperctl = "hyperctl"
	}
	fmt.Fprintf(w, `
Demo mode: a simulated vCenter with five VMs is registered as provider %q.
In another terminal (same user, so hyperctl finds this daemon and its token):

  %[2]s vms list --provider demo
  %[2]s export --provider demo --vm /DC0/vm/production/db/db-01 --wait
  %[2]s export --provider demo --vm web-01 --snapshot --format ova --wait
  %[2]s export --provider demo --vm db-01 --format disks --disk-format raw --wait
  %[2]s export --provider demo --vm db-01 --format disks --disk-format qcow2 --wait

A simulated AWS account (EC2, the EBS direct APIs, and an in-process S3
for VM Export) is registered as provider %[4]q; its instance web-1 has two
EBS volumes, read from a crash-consistent snapshot set that is deleted when
the export ends; --method export-task has VM Export write db-1 to S3 first
(web-1's two volumes are refused, as AWS refuses them):

  %[2]s vms list --provider %[4]s
  %[2]s export --provider %[4]s --vm web-1 --format disks --disk-format raw --wait
  %[2]s export --provider %[4]s --vm db-1 --format ova --wait
  %[2]s export --provider %[4]s --vm db-1 --method export-task --format ova --wait

Exports land in %[3]s/<job id>/ with a SHA-256 manifest:
  %[2]s verify %[3]s/<job id>      (or: sha256sum -c in that directory)

Their disks convert locally, no daemon needed (qcow2, vmdk, vhd, vhdx, raw):
  %[2]s disk info %[3]s/<job id>/<disk file>
  %[2]s disk convert %[3]s/<job id>/<disk file> disk.vhd --to vhd --vhd-type fixed

`, demoProvider, hyperctl, exportDir, demoAWSProvider)
}
