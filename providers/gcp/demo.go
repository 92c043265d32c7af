package gcp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hypersdk/hypersdk/providers/gcp/gcpfake"
)

// Demo project settings.
const (
	demoProject = "hypersdk-demo"
	demoBucket  = "hypersdk-demo-staging"
)

// StartDemo is the demo backend of type gcp: an in-process gcpfake
// endpoint for Compute Engine and Cloud Build, with fake-gcs-server for
// Cloud Storage, holding two instances — web-1 running in europe-west1-b
// with a boot and a data disk, db-1 stopped in europe-west1-c with one —
// and a service-account key made up for this run, written to a private
// temporary file the settings name. Builds take a moment and write
// composite images (parts composed, CRC32C only), as the real builder
// does. It returns the settings that reach it and the function that stops
// it and removes the key.
func StartDemo(ctx context.Context, log *slog.Logger) (*Config, func(), error) {
	start := time.Now()
	spec, err := DemoSpec()
	if err != nil {
		return nil, nil, err
	}
	srv, err := gcpfake.New(gcpfake.Options{
		Project: demoProject, Spec: spec, Log: log.With("component", "gcpfake"),
		Faults: gcpfake.Faults{BuildDelay: 300 * time.Millisecond, PartSize: 4 << 20},
	})
	if err != nil {
		return nil, nil, err
	}
	srv.Start()
	dir, err := os.MkdirTemp("", "hypersdk-demo-gcp-")
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	stop := func() {
		srv.Close()
		os.RemoveAll(dir)
	}
	keyFile := filepath.Join(dir, "service-account.json")
	if err := os.WriteFile(keyFile, srv.KeyJSON(), 0o600); err != nil {
		stop()
		return nil, nil, err
	}
	log.Info("demo Google Cloud endpoint started", "url", srv.URL(), "project", demoProject, "instances", len(spec.Instances),
		"took", time.Since(start).Round(time.Millisecond).String())
	return &Config{
		Project: demoProject, Zones: []string{"europe-west1-b", "europe-west1-c"},
		StagingBucket: demoBucket, CredentialsFile: keyFile,
		Endpoints: Endpoints{Compute: srv.URL(), CloudBuild: srv.URL(), Storage: srv.StorageEndpoint()},
	}, stop, nil
}

// DemoSpec is the demo project's inventory (StartDemo serves it): tests compare
// what an export of the demo wrote with its disks.
func DemoSpec() (gcpfake.Spec, error) {
	var disks []*gcpfake.Disk
	for i, name := range []string{"web-1", "web-1-data", "db-1"} {
		d, err := gcpfake.NewSampleDisk(name, int64(1+i%2), uint64(100+i))
		if err != nil {
			return gcpfake.Spec{}, fmt.Errorf("demo disk %s: %w", name, err)
		}
		disks = append(disks, d)
	}
	disks[0].Licenses = []string{"https://www.googleapis.com/compute/v1/projects/debian-cloud/global/licenses/debian-12-bookworm"}
	disks[0].UEFI = true
	return gcpfake.Spec{
		Buckets: []string{demoBucket},
		Instances: []gcpfake.Instance{
			{Name: "web-1", Zone: "europe-west1-b", MachineType: "e2-standard-4", Labels: map[string]string{"env": "demo"}, Disks: disks[:2]},
			{Name: "db-1", Zone: "europe-west1-c", MachineType: "custom-2-6144", Status: "TERMINATED", Labels: map[string]string{"env": "demo"}, Disks: disks[2:]},
		},
	}, nil
}
