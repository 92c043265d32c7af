package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hypersdk/hypersdk/providers"
)

// demoProvider is the provider instance name of the vSphere demo of
// --demo; demoAWSProvider, demoAzureProvider, demoGCPProvider,
// demoProxmoxProvider and demoHyperVProvider those of the AWS, Azure,
// Google Cloud, Proxmox VE and Hyper-V demos.
const (
	demoProvider        = providers.DemoInstanceName
	demoAWSProvider     = providers.DemoInstanceName + "-" + string(providers.TypeAWS)
	demoAzureProvider   = providers.DemoInstanceName + "-" + string(providers.TypeAzure)
	demoGCPProvider     = providers.DemoInstanceName + "-" + string(providers.TypeGCP)
	demoProxmoxProvider = providers.DemoInstanceName + "-" + string(providers.TypeProxmox)
	demoHyperVProvider  = providers.DemoInstanceName + "-" + string(providers.TypeHyperV)
)

func printDemoHelp(w io.Writer, endpoint, exportDir string) {
	hyperctl := "go run ./cmd/hyperctl"
	if _, err := os.Stat(filepath.Join("cmd", "hyperctl")); err != nil {
		hyperctl = "hyperctl"
	}
	fmt.Fprintf(w, `
The web dashboard is at %s/ (sign in with an API token: the generated admin
token's file, or a token from the configuration). It shows all six simulated
platforms below, the jobs live, charts, schedules and webhooks.
`, endpoint)
	fmt.Fprintf(w, `
Demo mode: a simulated vCenter with five VMs is registered as provider %q.
In another terminal (same user, so hyperctl finds this daemon and its token):

  %[2]s vms list --provider demo
  %[2]s export --provider demo --vm /DC0/vm/production/db/db-01 --wait
  %[2]s export --provider demo --vm web-01 --snapshot --format ova --wait
  %[2]s export --provider demo --vm db-01 --format disks --disk-format raw --wait
  %[2]s export --provider demo --vm db-01 --format disks --disk-format qcow2 --wait

Exports can go to object storage: an in-process S3 serves the bucket
demo-exports (output_targets in the configuration name real ones):

  %[2]s export --provider demo --vm db-01 --format ova --output s3://demo-exports/db-01/ --wait

A simulated AWS account (EC2, the EBS direct APIs, and an in-process S3
for VM Export) is registered as provider %[4]q; its instance web-1 has two
EBS volumes, read from a crash-consistent snapshot set that is deleted when
the export ends; --method export-task has VM Export write db-1 to S3 first
(web-1's two volumes are refused, as AWS refuses them); files-1 holds 32 MiB,
enough to interrupt a capped export and see it resume (resumed_bytes), also
on another node of a cluster sharing the exports directory:

  %[2]s vms list --provider %[4]s
  %[2]s export --provider %[4]s --vm web-1 --format disks --disk-format raw --wait
  %[2]s export --provider %[4]s --vm db-1 --format ova --wait
  %[2]s export --provider %[4]s --vm db-1 --method export-task --format ova --wait
  %[2]s export --provider %[4]s --vm files-1 --bandwidth-limit 2MiB --wait

A simulated Azure subscription (ARM and blob storage) is registered as
provider %[7]q; its VM web-1 runs with three managed disks, each read
from a snapshot through a SAS grant that is revoked, and the snapshot
deleted, when the export ends (db-1 is deallocated: its disk is granted
directly):

  %[2]s vms list --provider %[7]s
  %[2]s export --provider %[7]s --vm web-1 --format ova --wait
  %[2]s export --provider %[7]s --vm db-1 --format disks --disk-format vhd --vhd-type fixed --wait

A simulated Google Cloud project (Compute Engine, Cloud Build, Cloud
Storage) is registered as provider %[5]q; its instance web-1 has two
disks, each snapshotted and exported by the image export build, then read
and verified (CRC32C) from the staging bucket, which is emptied after:

  %[2]s vms list --provider %[5]s
  %[2]s export --provider %[5]s --vm web-1 --format ova --wait
  %[2]s export --provider %[5]s --vm web-1 --format disks --disk-format qcow2 --wait

A simulated Proxmox VE cluster (API and SSH) is registered as provider
%[6]q; its VM web-1 has two disks, read from one streamed
vzdump --stdout archive; ct-1 is a container (listed, not exportable):

  %[2]s vms list --provider %[6]s
  %[2]s export --provider %[6]s --vm web-1 --format disks --disk-format qcow2 --wait
  %[2]s export --provider %[6]s --vm db-1 --format ova --wait

A simulated Hyper-V host (WinRM, files back over SFTP) is registered as
provider %[8]q; its running VM web-1 (Generation 2) has a dynamic disk and
a differencing one, exported from a checkpoint that is removed after, the
chain merged on the host; db-1 is off and exported as it is:

  %[2]s vms list --provider %[8]s
  %[2]s export --provider %[8]s --vm web-1 --format ova --wait
  %[2]s export --provider %[8]s --vm db-1 --format disks --disk-format qcow2 --wait

Exports land in %[3]s/<job id>/ with a SHA-256 manifest:
  %[2]s verify %[3]s/<job id>      (or: sha256sum -c in that directory)

Their disks convert locally, no daemon needed (qcow2, vmdk, vhd, vhdx, raw):
  %[2]s disk info %[3]s/<job id>/<disk file>
  %[2]s disk convert %[3]s/<job id>/<disk file> disk.vhd --to vhd --vhd-type fixed

`, demoProvider, hyperctl, exportDir, demoAWSProvider, demoGCPProvider, demoProxmoxProvider, demoAzureProvider, demoHyperVProvider)
}
