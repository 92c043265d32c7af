package objstore_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/ovf"
	"github.com/hypersdk/hypersdk/providers"
)

func needTool(t *testing.T, name, install string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is needed by this test and is not installed: %s (or make test-deps)", name, install)
	}
}

func runTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// watchDir polls dir until done and returns the most bytes its regular
// files held at once.
func watchDir(dir string, done <-chan struct{}) int64 {
	var most int64
	for {
		var n int64
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		most = max(most, n)
		select {
		case <-done:
			return most
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// TestS3OVAStreamsWithNoLocalCopy exports a three-disk VM as an OVA
// (plain, gzip, zstd) into versitygw. The archive streams into its
// object: the output root holds no more than the upload's state while the
// export runs. The object is then checked by independent tools: GNU tar
// (with gzip -d, zstd -d) lists the descriptor first and unpacks it,
// `sha256sum -c` accepts the manifest, qemu-img finds each disk equal to
// its source, and the descriptor declares the member sizes archive/tar
// reads.
func TestS3OVAStreamsWithNoLocalCopy(t *testing.T) {
	needTool(t, "tar", "apt-get install -y tar")
	needTool(t, "sha256sum", "apt-get install -y coreutils")
	needTool(t, "gzip", "apt-get install -y gzip")
	needTool(t, "zstd", "apt-get install -y zstd")
	for _, c := range []struct {
		name, compression string
		tarFlags          []string
	}{{"web01.ova", "", nil}, {"web01.ova.gz", "gzip", []string{"-z"}}, {"web01.ova.zst", "zstd", []string{"--zstd"}}} {
		t.Run(c.name, func(t *testing.T) { testS3OVAStreams(t, c.name, c.compression, c.tarFlags) })
	}
}

func testS3OVAStreams(t *testing.T, object, compression string, tarFlags []string) {
	srv := s3test.Start(t, s3test.Options{})
	srv.CreateBucket(t, "exports")
	ts := s3Targets(srv, "exports")
	disks := map[string][]byte{"disk-0": diskBytes(21, 40<<20), "disk-1": diskBytes(22, 3<<20+4096), "disk-2": diskBytes(23, 20<<20)}
	srcDir := t.TempDir()
	for name, data := range disks {
		if err := os.WriteFile(filepath.Join(srcDir, name+".raw"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	e := newExporter(readerDisk("disk-0", disks["disk-0"]), readerDisk("disk-1", disks["disk-1"]), readerDisk("disk-2", disks["disk-2"]))
	done := make(chan struct{})
	most := make(chan int64, 1)
	go func() { most <- watchDir(state, done) }()
	res, err := exportTo(t, ts, "s3://exports/vms/", state, e, providers.ExportOptions{Format: providers.FormatOVA, ParallelDownloads: 3,
		Compress: compression != "", Compression: compression})
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	// The upload's state (a JSON file of part checksums) and the archive's
	// time: a few KiB, never a member's bytes.
	if n := <-most; n > 64<<10 {
		t.Errorf("the output root held %d bytes during the export", n)
	}
	if left := listDir(t, state); len(left) > 0 {
		t.Errorf("state left behind: %v", left)
	}
	got := download(t, srv, "exports", "vms/")
	if names := listDir(t, got); !reflect.DeepEqual(names, []string{object}) {
		t.Fatalf("objects %v, want the OVA alone", names)
	}
	archive := filepath.Join(got, object)
	if sum := fileSum(t, archive); len(res.Files) != 1 || res.Files[0].SHA256 != sum {
		t.Errorf("result files %+v, the object's SHA-256 is %s", res.Files, sum)
	}

	want := []string{"web01.ovf", "web01-disk-0.vmdk", "web01-disk-1.vmdk", "web01-disk-2.vmdk", "web01.mf"}
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(runTool(t, "", "tar", append(tarFlags, "-tvf", archive)...)), "\n") {
		f := strings.Fields(line)
		listed = append(listed, f[len(f)-1])
	}
	if !reflect.DeepEqual(listed, want) {
		t.Fatalf("tar -tvf lists %v, want %v", listed, want)
	}
	dir := t.TempDir()
	runTool(t, dir, "tar", append(tarFlags, "-xf", archive)...)
	out := runTool(t, dir, "sha256sum", "--strict", "-c", "web01.mf")
	for _, n := range want[:len(want)-1] {
		if !strings.Contains(out, n+": OK") {
			t.Errorf("sha256sum -c did not check %s:\n%s", n, out)
		}
	}
	for name := range disks {
		disktest.Compare(t, filepath.Join(srcDir, name+".raw"), "raw", filepath.Join(dir, "web01-"+name+".vmdk"), "vmdk")
	}

	sizes := tarSizes(t, archive, compression)
	b, err := os.ReadFile(filepath.Join(dir, "web01.ovf"))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := ovf.Parse(b)
	if err != nil {
		t.Fatalf("the descriptor does not parse: %v", err)
	}
	pfs, err := desc.PackageFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(pfs) != 3 {
		t.Fatalf("the descriptor references %d files", len(pfs))
	}
	for _, pf := range pfs {
		if pf.Size != sizes[pf.Name] {
			t.Errorf("%s: ovf:size %d, the archive holds %d bytes", pf.Name, pf.Size, sizes[pf.Name])
		}
	}
	if _, err := ova.Validate(context.Background(), archive, ova.ReadOptions{}); err != nil {
		t.Errorf("ova.Validate: %v", err)
	}
	if open := openUploads(t, srv, "exports"); len(open) > 0 {
		t.Errorf("multipart uploads left open: %v", open)
	}
}

// tarSizes reads the member sizes of a tar file with archive/tar, after
// the standard library's gzip or klauspost's zstd decoder.
func tarSizes(t *testing.T, path, compression string) map[string]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	switch compression {
	case "gzip":
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	sizes := map[string]int64{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return sizes
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes[hdr.Name] = hdr.Size
	}
}
