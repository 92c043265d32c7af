package aws

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

// demoRegion is the region the demo account lives in; demoBucket the
// bucket its export tasks write to.
const (
	demoRegion = "us-east-1"
	demoBucket = "hypersdk-demo-exports"
	// demoFilesData is how much data files-1's volume holds: 64 EBS
	// blocks, held in memory by every demo process.
	demoFilesData = 32 << 20
)

// StartDemo is the demo backend of type aws: an in-process awsfake
// endpoint for EC2 and the EBS direct APIs with four instances — web-1
// running with two volumes (boot and data, laid out like real disks:
// holes, random regions, a written zero block, data ending unaligned),
// db-1 stopped with one, files-1 stopped with one holding 32 MiB of data
// (long enough under a bandwidth limit to interrupt and resume), and an
// untagged one known by its id only — under
// credentials made up for this run, and an in-process S3 (gofakes3,
// memory-backed, on a loopback port) holding the bucket its export tasks
// write to, so that --method export-task works too (for db-1 and the
// untagged instance; web-1's two volumes are refused, as VM Export refuses
// them). It returns the settings that reach it and the function that
// stops it.
//
// Everything an export depends on is the same in every process: volume
// contents come from fixed seeds and snapshot ids from the volume and the
// job (awsfake.Options.StableSnapshotIDs). So daemons of a cluster, each
// running its own demo, agree on a job's snapshot: a job rescued on
// another daemon resumes its block download from the journal the dead
// attempt left in the shared exports directory (nodes that do not share
// it start the download again). The credentials differ per process; they
// never reach the job.
func StartDemo(ctx context.Context, log *slog.Logger) (*Config, func(), error) {
	start := time.Now()
	spec, err := demoSpec()
	if err != nil {
		return nil, nil, err
	}
	backend := s3mem.New()
	if err := backend.CreateBucket(demoBucket); err != nil {
		return nil, nil, fmt.Errorf("demo S3: %w", err)
	}
	s3srv := httptest.NewServer(gofakes3.New(backend).Server())
	keyID, secret := "AKIADEMO"+randomAlnum(12), randomAlnum(40)
	srv, err := awsfake.New(awsfake.Options{
		AccessKeyID: keyID, SecretAccessKey: secret, Region: demoRegion, Spec: spec, StableSnapshotIDs: true,
		S3:  awsfake.S3Options{Endpoint: s3srv.URL, AccessKeyID: keyID, SecretAccessKey: secret},
		Log: log.With("component", "awsfake"),
	})
	if err != nil {
		s3srv.Close()
		return nil, nil, err
	}
	srv.Start()
	log.Info("demo AWS endpoint started", "url", srv.URL(), "s3", s3srv.URL, "region", demoRegion, "instances", len(spec.Instances),
		"export_bucket", demoBucket, "took", time.Since(start).Round(time.Millisecond).String())
	stop := func() {
		srv.Close()
		s3srv.Close()
	}
	return &Config{
		Region: demoRegion, AccessKeyID: keyID, SecretAccessKey: config.NewSecret(secret),
		Endpoints:  Endpoints{EC2: srv.URL(), EBS: srv.URL(), S3: s3srv.URL},
		ExportTask: ExportTaskConfig{Bucket: demoBucket, DeleteObject: true},
	}, stop, nil
}

func demoSpec() (awsfake.Spec, error) {
	root, err := awsfake.NewSampleVolume("vol-0a1b2c3d4e5f60001", 1, 1)
	if err != nil {
		return awsfake.Spec{}, err
	}
	data, err := awsfake.NewSampleVolume("vol-0a1b2c3d4e5f60002", 2, 2)
	if err != nil {
		return awsfake.Spec{}, err
	}
	data.Tags = map[string]string{"Name": "web-1-data"}
	db, err := awsfake.NewSampleVolume("vol-0a1b2c3d4e5f60003", 1, 3)
	if err != nil {
		return awsfake.Spec{}, err
	}
	scratch := awsfake.NewVolume("vol-0a1b2c3d4e5f60004", 1)
	if err := scratch.WriteRandom(0, 4*awsfake.BlockSize, 4); err != nil {
		return awsfake.Spec{}, err
	}
	files := awsfake.NewVolume("vol-0a1b2c3d4e5f60005", 1)
	if err := files.WriteRandom(0, demoFilesData, 5); err != nil {
		return awsfake.Spec{}, err
	}
	return awsfake.Spec{
		Volumes: []*awsfake.Volume{root, data, db, scratch, files},
		Instances: []awsfake.Instance{
			{
				ID: "i-0a1b2c3d4e5f60001", Type: "m5.large", BootMode: "uefi",
				Tags:    map[string]string{"Name": "web-1", "env": "demo"},
				Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: root.ID}, {Name: "/dev/sdf", VolumeID: data.ID}},
			},
			{
				ID: "i-0a1b2c3d4e5f60002", Type: "t3.medium", State: "stopped", BootMode: "legacy-bios",
				PlatformDetails: "Red Hat Enterprise Linux",
				Tags:            map[string]string{"Name": "db-1", "env": "demo"},
				Devices:         []awsfake.Device{{Name: "/dev/xvda", VolumeID: db.ID}},
			},
			{
				ID: "i-0a1b2c3d4e5f60004", Type: "t3.large", State: "stopped", BootMode: "legacy-bios",
				Tags:    map[string]string{"Name": "files-1", "env": "demo"},
				Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: files.ID}},
			},
			{
				ID: "i-0a1b2c3d4e5f60003", Type: "t4g.small", Architecture: "arm64", State: "stopped",
				Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: scratch.ID}},
			},
		},
	}, nil
}

// randomAlnum returns n random upper-case letters and digits, the
// alphabet of AWS key ids.
func randomAlnum(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
