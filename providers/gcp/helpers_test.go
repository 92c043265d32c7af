package gcp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/providers/gcp/gcpfake"
)

const (
	testProject = "hypersdk-test-1"
	testBucket  = "hypersdk-test-staging"
	zoneB       = "europe-west1-b"
	zoneC       = "europe-west1-c"
)

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

type fixture struct {
	srv     *gcpfake.Server
	spec    gcpfake.Spec
	keyFile string
	logs    *syncBuffer
	log     *slog.Logger
}

// testSpec: "pair" (stopped, two sample disks of 1 GiB, the boot disk with
// an OS licence, so its image carries a manifest.json first), "solo"
// (running, one disk), a "twin" in each zone and five batch instances (more
// than two pages of two).
func testSpec(t *testing.T) gcpfake.Spec {
	t.Helper()
	disk := func(name string, seed uint64) *gcpfake.Disk {
		d, err := gcpfake.NewSampleDisk(name, 1, seed)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	boot, data := disk("pair-boot", 1), disk("pair-data", 2)
	boot.Licenses = []string{"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12-bookworm"}
	boot.UEFI = true
	spec := gcpfake.Spec{
		Buckets: []string{testBucket},
		Instances: []gcpfake.Instance{
			{ID: 1001, Name: "pair", Zone: zoneB, MachineType: "n2-standard-4", Status: "TERMINATED", Labels: map[string]string{"env": "prod"}, Disks: []*gcpfake.Disk{boot, data}},
			{ID: 1002, Name: "solo", Zone: zoneC, MachineType: "custom-2-6144", Disks: []*gcpfake.Disk{disk("solo-boot", 3)}},
			{ID: 1003, Name: "twin", Zone: zoneB, MachineType: "e2-small", Disks: []*gcpfake.Disk{gcpfake.NewDisk("twin-b", 1)}},
			{ID: 1004, Name: "twin", Zone: zoneC, MachineType: "e2-small", Disks: []*gcpfake.Disk{gcpfake.NewDisk("twin-c", 1)}},
		},
	}
	for i := range 5 {
		spec.Instances = append(spec.Instances, gcpfake.Instance{
			ID: uint64(2000 + i), Name: fmt.Sprintf("batch-%d", i), Zone: zoneB, MachineType: "e2-medium",
			Disks: []*gcpfake.Disk{gcpfake.NewDisk(fmt.Sprintf("batch-%d", i), 1)},
		})
	}
	return spec
}

func newFixture(t *testing.T, spec gcpfake.Spec, faults gcpfake.Faults) *fixture {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := gcpfake.New(gcpfake.Options{Project: testProject, Spec: spec, Faults: faults, Log: log.With("component", "gcpfake")})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	keyFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(keyFile, srv.KeyJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, spec: spec, keyFile: keyFile, logs: logs, log: log}
}

func (f *fixture) config() Config {
	return Config{
		Project: testProject, Zones: []string{zoneB, zoneC}, StagingBucket: testBucket, StagingPrefix: "exports",
		CredentialsFile: f.keyFile,
		Endpoints:       Endpoints{Compute: f.srv.URL(), CloudBuild: f.srv.URL(), Storage: f.srv.StorageEndpoint()},
	}
}

// provider returns an unconnected provider with test timings.
func (f *fixture) provider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, err := NewProvider("gcp-test", cfg, f.log.With("provider", "gcp-test"))
	if err != nil {
		t.Fatal(err)
	}
	p.tune.pollMin, p.tune.pollMax = 2*time.Millisecond, 20*time.Millisecond
	p.tune.pageSize = 2
	p.tune.readChunk, p.tune.readConcurrency = 1<<20, 4
	return p
}

func (f *fixture) connected(t *testing.T) *Provider {
	t.Helper()
	p := f.provider(t, f.config())
	if err := p.Connect(context.Background()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { p.Disconnect() })
	return p
}

// diskDigests returns the SHA-256 of the disks' contents keyed by the raw
// file name a disks/raw export of vm writes.
func diskDigests(vm string, disks ...*gcpfake.Disk) map[string]string {
	out := map[string]string{}
	for i, d := range disks {
		sum := d.SHA256()
		out[fmt.Sprintf("%s-disk-%d.raw", vm, i)] = hex.EncodeToString(sum[:])
	}
	return out
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
