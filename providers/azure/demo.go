package azure

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
)

// The demo subscription's identifiers (made up; the client secret is made
// up anew for each run).
const (
	demoSubscription = "00000000-0000-4000-8000-00000000d3e0"
	demoTenant       = "00000000-0000-4000-8000-0000000a11ce"
	demoClientID     = "00000000-0000-4000-8000-00000000c11e"
	demoLocation     = "westeurope"
)

// StartDemo is the demo backend of type azure: an in-process azurefake ARM
// and sign-in endpoint over an in-process azblobfake storage account (no
// Node.js needed) with a subscription of three VMs in resource group
// demo-rg — web-1 running with an OS disk and two data disks (laid out
// like real disks: a boot region, data regions ending at unaligned
// offsets, written zeros, data in the last pages), db-1 deallocated with
// one disk, build-1 stopped on a Premium SSD v2 disk (incremental
// snapshots) — under a client secret made up for this run. It returns the
// settings that reach it (the endpoint's CA in a file removed on stop) and
// the function that stops it.
func StartDemo(ctx context.Context, log *slog.Logger) (*Config, func(), error) {
	start := time.Now()
	spec, err := demoSpec()
	if err != nil {
		return nil, nil, err
	}
	blobs := azblobfake.New(azblobfake.Options{})
	secret := randomHex(20)
	srv, err := azurefake.New(azurefake.Options{
		SubscriptionID: demoSubscription, TenantID: demoTenant, ClientID: demoClientID, ClientSecret: secret,
		Blob: azurefake.BlobAccount{URL: blobs.URL(), AccountName: azblobfake.AccountName, AccountKey: azblobfake.AccountKey},
		Spec: spec, Log: log.With("component", "azurefake"),
	})
	if err != nil {
		blobs.Close()
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "hypersdk-demo-azure-")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "ca.pem"), srv.CACertPEM(), 0o600)
	}
	stop := func() {
		srv.Close()
		blobs.Close()
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("demo azure: write the endpoint's CA: %w", err)
	}
	log.Info("demo Azure endpoint started", "arm", srv.URL(), "blob", blobs.URL(), "vms", len(spec.VMs),
		"took", time.Since(start).Round(time.Millisecond).String())
	return &Config{
		SubscriptionID: demoSubscription, TenantID: demoTenant,
		Credential: Credential{Type: CredentialClientSecret, ClientID: demoClientID, ClientSecret: config.NewSecret(secret)},
		Endpoints:  Endpoints{ARM: srv.URL(), Login: srv.URL(), Blob: blobs.URL()},
		CAFile:     filepath.Join(dir, "ca.pem"),
	}, stop, nil
}

func demoSpec() (azurefake.Spec, error) {
	spec := azurefake.Spec{Location: demoLocation}
	for _, d := range []struct {
		name    string
		mib     int64
		seed    uint64
		sku, os string
	}{
		{"web-1-os", 1024, 11, "Premium_LRS", "Linux"},
		{"web-1-data0", 512, 12, "Premium_LRS", ""},
		{"web-1-data1", 2048, 13, "StandardSSD_LRS", ""},
		{"db-1-os", 1024, 14, "Premium_LRS", "Windows"},
		{"build-1-os", 256, 15, "PremiumV2_LRS", "Linux"},
	} {
		c, err := azurefake.NewSampleContent(d.mib, d.seed)
		if err != nil {
			return spec, err
		}
		spec.Disks = append(spec.Disks, &azurefake.Disk{Name: d.name, ResourceGroup: "demo-rg", SKU: d.sku, OSType: d.os, HyperVGeneration: "V2", Content: c})
	}
	spec.VMs = []*azurefake.VM{
		{
			Name: "web-1", ResourceGroup: "demo-rg", Size: "Standard_D4s_v5", PowerState: azurefake.PowerRunning,
			OSType: "Linux", OSName: "ubuntu", OSVersion: "22.04", Image: "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:22.04.202411010",
			SecurityType: "TrustedLaunch", Zone: "1", Tags: map[string]string{"env": "demo"},
			OSDisk: "web-1-os", DataDisks: []string{"web-1-data0", "web-1-data1"}, NICs: []string{"web-1-nic"},
		},
		{
			Name: "db-1", ResourceGroup: "demo-rg", Size: "Standard_E8s_v5", PowerState: azurefake.PowerDeallocated,
			OSType: "Windows", Image: "MicrosoftWindowsServer:WindowsServer:2022-datacenter-azure-edition:20348.2849.241109",
			Tags: map[string]string{"env": "demo"}, OSDisk: "db-1-os", NICs: []string{"db-1-nic"},
		},
		{
			Name: "build-1", ResourceGroup: "demo-rg", Size: "Standard_D2s_v5", PowerState: azurefake.PowerStopped,
			OSType: "Linux", OSDisk: "build-1-os", NICs: []string{"build-1-nic"},
		},
	}
	return spec, nil
}
