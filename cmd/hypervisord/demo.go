package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hypersdk/hypersdk/providers"
)

// demoProvider is the provider instance name of --demo.
const demoProvider = providers.DemoInstanceName

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

Exports land in %[3]s/<job id>/ with a SHA-256 manifest:
  cd %[3]s/<job id> && sha256sum -c *.mf

`, demoProvider, hyperctl, exportDir)
}
