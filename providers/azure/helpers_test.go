package azure

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
	"github.com/hypersdk/hypersdk/providers/azure/azuritetest"
)

const (
	testSubscription = "0b1f6471-1bf0-4dda-aec3-111122223333"
	testTenant       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClientID     = "3c5e2b1a-7d4f-4e6a-9b8c-0d1e2f3a4b5c"
	testSecret       = "tEsT~s3cr3t.vALUE_that-must-never-leak"
	testLocation     = "westeurope"
)

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// blobBackend is the storage account behind the grants: azblobfake or a
// real Azurite.
type blobBackend struct {
	kind    string
	account azurefake.BlobAccount
	fake    *azblobfake.Server // nil for Azurite
}

func fakeBlobs(t testing.TB, opts azblobfake.Options) *blobBackend {
	t.Helper()
	srv := azblobfake.New(opts)
	t.Cleanup(srv.Close)
	return &blobBackend{kind: "azblobfake", fake: srv, account: azurefake.BlobAccount{
		URL: srv.URL(), AccountName: azblobfake.AccountName, AccountKey: azblobfake.AccountKey,
	}}
}

func azuriteBlobs(t testing.TB) *blobBackend {
	t.Helper()
	a := azuritetest.Start(t)
	return &blobBackend{kind: "azurite", account: azurefake.BlobAccount{URL: a.URL, AccountName: a.AccountName, AccountKey: a.AccountKey}}
}

// fixture is an azurefake ARM endpoint over a blob backend, and what
// reaches it.
type fixture struct {
	arm    *azurefake.Server
	blobs  *blobBackend
	spec   azurefake.Spec
	logs   *syncBuffer // the provider's and the servers' log lines
	log    *slog.Logger
	caFile string
}

func newFixture(t testing.TB, spec azurefake.Spec, blobs *blobBackend, faults azurefake.Faults) *fixture {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := azurefake.New(azurefake.Options{
		SubscriptionID: testSubscription, TenantID: testTenant, ClientID: testClientID, ClientSecret: testSecret,
		Blob: blobs.account, Spec: spec, Faults: faults, PageSize: 3, Log: log.With("component", "azurefake"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "azurefake-ca.pem")
	if err := os.WriteFile(ca, srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &fixture{arm: srv, blobs: blobs, spec: spec, logs: logs, log: log, caFile: ca}
}

func (f *fixture) config(secret string) Config {
	return Config{
		SubscriptionID: testSubscription, TenantID: testTenant,
		Credential: Credential{Type: CredentialClientSecret, ClientID: testClientID, ClientSecret: config.NewSecret(secret)},
		Endpoints:  Endpoints{ARM: f.arm.URL(), Login: f.arm.URL(), Blob: f.blobs.account.URL},
		CAFile:     f.caFile,
	}
}

// provider returns an unconnected provider for the fixture, its timings
// shortened for tests.
func (f *fixture) provider(t testing.TB, cfg Config) *Provider {
	t.Helper()
	p, err := NewProvider("az-test", cfg, f.log.With("provider", "az-test"))
	if err != nil {
		t.Fatal(err)
	}
	p.tune.armRetryDelay = 5 * time.Millisecond
	p.tune.pollFrequency = 5 * time.Millisecond
	p.tune.copyPoll = 5 * time.Millisecond
	p.tune.listRetry = backoff.Policy{Base: time.Millisecond, Max: 5 * time.Millisecond}
	return p
}

// connected returns a connected provider with the right secret.
func (f *fixture) connected(t testing.TB) *Provider {
	t.Helper()
	p := f.provider(t, f.config(testSecret))
	if err := p.Connect(context.Background()); err != nil {
		t.Fatalf("Connect: %v\n%s", err, f.logs.String())
	}
	t.Cleanup(func() { p.Disconnect() })
	return p
}

// testSpec: prod-rg holds web-1, running, with an OS disk and two data
// disks (sparse sample layouts, data at unaligned ends), and pair,
// deallocated, with two; db-rg holds db-1, stopped (still allocated), on
// a Premium SSD v2 disk (incremental snapshots only) and five batch VMs
// (more than one list page of three); two VMs named twin live in two
// groups.
func testSpec(t testing.TB) azurefake.Spec {
	t.Helper()
	sample := func(name, rg string, mib int64, seed uint64) *azurefake.Disk {
		c, err := azurefake.NewSampleContent(mib, seed)
		if err != nil {
			t.Fatal(err)
		}
		return &azurefake.Disk{Name: name, ResourceGroup: rg, Content: c}
	}
	spec := azurefake.Spec{Location: testLocation}
	add := func(d *azurefake.Disk) *azurefake.Disk { spec.Disks = append(spec.Disks, d); return d }
	webOS := add(sample("web-1-os", "prod-rg", 64, 1))
	webOS.OSType, webOS.HyperVGeneration = "Linux", "V2"
	add(sample("web-1-data0", "prod-rg", 48, 2))
	add(sample("web-1-data1", "prod-rg", 33, 3)).SKU = "StandardSSD_LRS"
	add(sample("pair-os", "prod-rg", 40, 4)).OSType = "Windows"
	add(sample("pair-data", "prod-rg", 24, 5))
	db := add(sample("db-1-os", "db-rg", 32, 6))
	db.SKU, db.OSType = "PremiumV2_LRS", "Linux"
	spec.VMs = append(spec.VMs,
		&azurefake.VM{
			Name: "web-1", ResourceGroup: "prod-rg", Size: "Standard_D4s_v5", PowerState: azurefake.PowerRunning,
			OSType: "Linux", OSName: "ubuntu", OSVersion: "22.04", Image: "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:22.04.202411010",
			SecurityType: "TrustedLaunch", Zone: "2", Tags: map[string]string{"env": "prod"},
			OSDisk: "web-1-os", DataDisks: []string{"web-1-data0", "web-1-data1"}, NICs: []string{"web-1-nic"},
		},
		&azurefake.VM{
			Name: "pair", ResourceGroup: "prod-rg", Size: "Standard_B2s", PowerState: azurefake.PowerDeallocated, OSType: "Windows",
			OSDisk: "pair-os", DataDisks: []string{"pair-data"}, NICs: []string{"pair-nic"},
		},
		&azurefake.VM{
			Name: "db-1", ResourceGroup: "db-rg", Size: "Standard_E8s_v5", PowerState: azurefake.PowerStopped, OSType: "Linux",
			OSDisk: "db-1-os",
		},
	)
	for i := range 5 {
		d := add(&azurefake.Disk{Name: fmt.Sprintf("batch-%d-os", i), ResourceGroup: "db-rg", Content: mustContent(t, 16)})
		spec.VMs = append(spec.VMs, &azurefake.VM{Name: fmt.Sprintf("batch-%d", i), ResourceGroup: "db-rg", Size: "Standard_B2s",
			PowerState: []string{azurefake.PowerRunning, azurefake.PowerDeallocated}[i%2], OSDisk: d.Name})
	}
	for _, rg := range []string{"prod-rg", "db-rg"} {
		d := add(&azurefake.Disk{Name: "twin-os-" + rg, ResourceGroup: rg, Content: mustContent(t, 16)})
		spec.VMs = append(spec.VMs, &azurefake.VM{Name: "twin", ResourceGroup: rg, Size: "Standard_B2s", OSDisk: d.Name})
	}
	return spec
}

func mustContent(t testing.TB, mib int64) *azurefake.Content {
	t.Helper()
	c, err := azurefake.NewContent(mib << 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRandom(0, 64<<10, uint64(mib)); err != nil {
		t.Fatal(err)
	}
	return c
}

// diskOf finds a disk of the spec.
func diskOf(spec azurefake.Spec, name string) *azurefake.Disk {
	for _, d := range spec.Disks {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// rawDigests are the SHA-256 of the named disks' contents, keyed by the
// raw file name a disks/raw export of vm writes.
func rawDigests(spec azurefake.Spec, vm string, disks ...string) map[string]string {
	out := map[string]string{}
	for i, n := range disks {
		sum := diskOf(spec, n).Content.SHA256()
		out[fmt.Sprintf("%s-disk-%d.raw", vm, i)] = hex.EncodeToString(sum[:])
	}
	return out
}
