package objstore_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
)

func s3Targets(srv *s3test.Server, bucket string) objstore.Targets {
	return objstore.Targets{{Name: "test", URL: "s3://" + bucket + "/", S3: objstore.S3Config{
		Endpoint: srv.URL, Region: srv.Region, AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey, PathStyle: true}}}
}

// exportTo exports e to the output URL, with dir as the resume state.
func exportTo(t *testing.T, ts objstore.Targets, url, dir string, e providers.Exporter, opts providers.ExportOptions) (*providers.ExportResult, error) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	sink, err := ts.Open(context.Background(), "output", url, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.OutputRoot, opts.Output = root, sink
	return pipeline.Export(context.Background(), e, "vm-1", opts)
}

// TestS3ExportEveryFormat exports to versitygw in every layout and disk
// format, downloads the objects, checks them against the manifest and
// compares the disks with the source through qemu-img. No disk format
// leaves a local copy: the local directory never holds more than the
// uploads' state.
func TestS3ExportEveryFormat(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.CreateBucket(t, "exports")
	ts := s3Targets(srv, "exports")
	// 40 MiB: several 16 MiB parts for a raw disk; 3 MiB: one PUT.
	big, small := diskBytes(1, 40<<20), diskBytes(2, 3<<20+4096)
	srcDir := t.TempDir()
	for name, data := range map[string][]byte{"disk-0": big, "disk-1": small} {
		if err := os.WriteFile(filepath.Join(srcDir, name+".raw"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		format providers.Format
		disk   providers.DiskFormat
		qemu   string
		vhd    string
	}{
		{"disks-raw", providers.FormatDisks, providers.DiskRaw, "raw", ""},
		{"disks-vmdk", providers.FormatDisks, providers.DiskVMDK, "vmdk", ""},
		{"disks-qcow2", providers.FormatDisks, providers.DiskQCOW2, "qcow2", ""},
		{"disks-vhd", providers.FormatDisks, providers.DiskVHD, "vpc", ""},
		{"disks-vhd-fixed", providers.FormatDisks, providers.DiskVHD, "vpc", providers.VHDFixed},
		{"disks-vhdx", providers.FormatDisks, providers.DiskVHDX, "vhdx", ""},
		{"ovf", providers.FormatOVF, providers.DiskVMDK, "vmdk", ""},
		{"ova", providers.FormatOVA, providers.DiskVMDK, "vmdk", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			prefix := "vms/" + tc.name + "/"
			e := newExporter(readerDisk("disk-0", big), readerDisk("disk-1", small))
			watch := watchLocal(t, state)
			res, err := exportTo(t, ts, "s3://exports/"+prefix, state, e, providers.ExportOptions{
				Format: tc.format, DiskFormat: tc.disk, VHDType: tc.vhd})
			if err != nil {
				t.Fatal(err)
			}
			limit := int64(16 << 10)
			if tc.format == providers.FormatOVA {
				limit = 1 << 62 // an OVA's disks are still staged locally
			}
			watch.check(t, limit)
			if res.OutputDir != "s3://exports/"+prefix {
				t.Errorf("result output %q", res.OutputDir)
			}
			got := download(t, srv, "exports", prefix)
			dir, mf := got, ""
			switch tc.format {
			case providers.FormatDisks:
				mf = "web01.sha256"
			case providers.FormatOVF:
				mf = "web01.mf"
			case providers.FormatOVA:
				if names := listDir(t, got); !slices.Equal(names, []string{"web01.ova"}) {
					t.Fatalf("objects %v, want the OVA alone", names)
				}
				if got := fileSum(t, filepath.Join(got, "web01.ova")); got != res.Files[len(res.Files)-1].SHA256 {
					t.Errorf("OVA SHA-256 %s, the result says %s", got, res.Files[len(res.Files)-1].SHA256)
				}
				dir = filepath.Join(t.TempDir(), "x")
				if _, err := ova.Extract(context.Background(), filepath.Join(got, "web01.ova"), dir, ova.ExtractOptions{}); err != nil {
					t.Fatalf("extract the downloaded OVA: %v", err)
				}
				mf = "web01.mf"
			}
			checkManifest(t, dir, mf)
			for _, d := range []string{"disk-0", "disk-1"} {
				disktest.Compare(t, filepath.Join(srcDir, d+".raw"), "raw", filepath.Join(dir, "web01-"+d+"."+string(tc.disk)), tc.qemu)
			}
			if open := openUploads(t, srv, "exports"); len(open) > 0 {
				t.Errorf("multipart uploads left open: %v", open)
			}
			if left := listDir(t, state); len(left) > 0 {
				t.Errorf("state left behind: %v", left)
			}
		})
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
