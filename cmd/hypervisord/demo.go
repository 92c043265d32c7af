package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

// demoProvider is the provider instance name of --demo.
const demoProvider = "demo"

// startDemo starts the simulated vCenter of --demo (govmomi's simulator
// extended with real disk bytes, export leases and OVF descriptors) and
// returns the provider instance that points at it, pinned to its
// certificate like a real vCenter would be.
func startDemo(ctx context.Context, log *slog.Logger) (config.ProviderInstance, func(), error) {
	start := time.Now()
	env, err := vcsim.StartDemo(ctx)
	if err != nil {
		return config.ProviderInstance{}, nil, fmt.Errorf("demo vCenter: %w", err)
	}
	log.Info("demo vCenter started", "url", env.URL().String(), "vms", len(env.VMs()), "took", time.Since(start).Round(time.Millisecond).String())
	vc := env.ProviderConfig()
	return config.ProviderInstance{Name: demoProvider, Type: "vsphere", MaxConcurrent: 2, VSphere: &vc}, func() { env.Close() }, nil
}

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
