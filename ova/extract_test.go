package ova

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hypersdk/hypersdk/ovf"
)

// chunkedPackage writes the OVF 2 sample of the ovf package (a chunked file
// in a subdirectory and a second file) with its files.
func chunkedPackage(t *testing.T) (dir string, files map[string][]byte) {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join("..", "ovf", "testdata", "ovf2.ovf"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ovf.Parse(desc)
	if err != nil {
		t.Fatal(err)
	}
	pfs, err := d.PackageFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	files = map[string][]byte{}
	for i, pf := range pfs {
		data := diskBytes(uint64(100+i), int(pf.Size))
		files[pf.Name] = data
		os.MkdirAll(filepath.Join(dir, filepath.Dir(pf.Name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, pf.Name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "app.ovf"), desc, 0o644)
	return dir, files
}

// TestChunkedNestedRoundTrip packs a descriptor with a chunked file
// (href.000000000, ...) in a subdirectory: chunks go in order, and Extract
// recreates the subdirectory inside the target.
func TestChunkedNestedRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir, files := chunkedPackage(t)
	out := filepath.Join(t.TempDir(), "app.ova")
	res, err := Pack(ctx, dir, "app.ovf", out, Options{Compression: CompressionZstd})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"app.ovf", "images/app.qcow2.000000000", "images/app.qcow2.000000001", "images/app.qcow2.000000002", "seed.iso", "app.mf"}
	if got := memberNames(res.Members); !reflect.DeepEqual(got, want) {
		t.Fatalf("members %v", got)
	}
	dest := filepath.Join(t.TempDir(), "out")
	rep, err := Extract(ctx, out, dest, ExtractOptions{})
	if err != nil || !rep.Verified {
		t.Fatalf("%v %+v", err, rep)
	}
	for name, data := range files {
		if got, err := os.ReadFile(filepath.Join(dest, name)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestExtractDoesNotFollowLinksInTarget: a symlink already in the target
// pointing outside cannot be used to write there.
func TestExtractDoesNotFollowLinksInTarget(t *testing.T) {
	ctx := context.Background()
	dir, _ := chunkedPackage(t)
	out := filepath.Join(t.TempDir(), "app.ova")
	if _, err := Pack(ctx, dir, "app.ovf", out, Options{}); err != nil {
		t.Fatal(err)
	}
	dest, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dest, "images")); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(ctx, out, dest, ExtractOptions{Overwrite: true}); err == nil {
		t.Fatal("extract through a symlink succeeded")
	}
	if got := listDir(t, outside); len(got) != 0 {
		t.Errorf("wrote outside the target: %v", got)
	}
	if got := listDir(t, dest); !reflect.DeepEqual(got, []string{"images"}) {
		t.Errorf("target holds %v", got)
	}
}

func TestExtractCanceled(t *testing.T) {
	p := makePackage(t, t.TempDir(), 2<<20)
	out := filepath.Join(t.TempDir(), "vm.ova.gz")
	if _, err := Pack(context.Background(), p.dir, "", out, Options{Compression: CompressionGzip}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parent := t.TempDir()
	_, err := Extract(ctx, out, filepath.Join(parent, "x"), ExtractOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	if got := listDir(t, parent); len(got) != 0 {
		t.Errorf("left %v", got)
	}
}

// TestReaderStreams uses the Reader directly, as an importer streaming
// members elsewhere would.
func TestReaderStreams(t *testing.T) {
	p := makePackage(t, t.TempDir(), 10_000, 20_000)
	p.writeManifest(t, ovf.SHA256)
	out := filepath.Join(t.TempDir(), "vm.ova")
	if _, err := Pack(context.Background(), p.dir, "", out, Options{}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), out, ReadOptions{RequireManifest: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.DescriptorName() != "vm.ovf" || r.Descriptor() == nil || r.Compression() != CompressionNone {
		t.Fatal("descriptor not read first")
	}
	var names []string
	for {
		e, err := r.Next()
		if err != nil {
			break
		}
		names = append(names, e.Name)
		if e.Name == "vm-disk1.vmdk" {
			var buf bytes.Buffer
			buf.ReadFrom(onlyReader{r})
			if !bytes.Equal(buf.Bytes(), p.files[e.Name]) {
				t.Error("streamed bytes differ")
			}
		} // vm-disk2.vmdk left unread: Next drains and hashes it
	}
	if err := r.Err(); err != nil || !r.Verified() || r.Manifest() == nil || len(r.Warnings()) != 0 {
		t.Errorf("err %v verified %v", err, r.Verified())
	}
	if !reflect.DeepEqual(names, []string{"vm.mf", "vm-disk1.vmdk", "vm-disk2.vmdk"}) {
		t.Errorf("entries %v", names)
	}
	if m := r.Members(); len(m) != 4 || m[3].Digests[ovf.SHA256] != shaHex(p.files["vm-disk2.vmdk"]) {
		t.Errorf("members %+v", m)
	}
}

// TestReaderWarnsOnOrder: misordered files are accepted (importers take
// them) but reported.
func TestReaderWarnsOnOrder(t *testing.T) {
	desc := hostileDesc(4)
	spec := ovf.VMSpec{Name: "vm", CPUs: 1, MemoryMiB: 256, Disks: []ovf.DiskSpec{
		{File: "a.img", CapacityBytes: 1 << 20, FileSize: 1}, {File: "b.img", CapacityBytes: 1 << 20, FileSize: 1}}}
	d, _ := ovf.Build(spec)
	desc = d.Marshal()
	archive := newTar().file("vm.ovf", desc).file("b.img", []byte("b")).file("a.img", []byte("a")).bytes()
	path := filepath.Join(t.TempDir(), "x.ova")
	os.WriteFile(path, archive, 0o644)
	rep, err := Validate(context.Background(), path, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Kind != ProblemOrder || rep.Warnings[0].Member != "a.img" {
		t.Errorf("warnings %+v", rep.Warnings)
	}
	if _, err := Validate(context.Background(), path, ReadOptions{RequireManifest: true}); err == nil {
		t.Error("RequireManifest accepted an archive without one")
	}
}

// A stream that breaks before its end cannot show whether a manifest would
// have followed the files: only the break is reported, not a missing
// manifest (nor a missing certificate).
func TestTruncatedArchiveDoesNotClaimMissingManifest(t *testing.T) {
	ctx := context.Background()
	p := makePackage(t, t.TempDir(), 200_000, 3000)
	full := filepath.Join(t.TempDir(), "vm.ova")
	if _, err := Pack(ctx, p.dir, "", full, Options{}); err != nil { // manifest generated at the end
		t.Fatal(err)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.ova")
	if err := os.WriteFile(cut, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []ReadOptions{{}, {RequireManifest: true}} {
		_, err := Validate(ctx, cut, opts)
		var oe *Error
		if !errors.As(err, &oe) {
			t.Fatalf("%+v: got %v, want *Error", opts, err)
		}
		if !oe.Has(ProblemTruncated) || oe.Has(ProblemManifest) || len(oe.Problems) != 1 {
			t.Errorf("%+v: %v", opts, oe)
		}
	}
}

// A refused archive leaves nothing behind even when Extract had to create
// several levels of the destination path: every directory it made goes.
func TestExtractRemovesEveryDirectoryItCreated(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "a", "b", "c")
	archive := filepath.Join("testdata", "hostile", "traversal.ova")
	if _, err := Extract(context.Background(), archive, dest, ExtractOptions{}); err == nil {
		t.Fatal("extracted a hostile archive")
	}
	if got := listDir(t, parent); len(got) != 0 {
		t.Errorf("left %v in %s", got, parent)
	}
	// Directories that existed before stay.
	if err := os.Mkdir(filepath.Join(parent, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(context.Background(), archive, dest, ExtractOptions{}); err == nil {
		t.Fatal("extracted a hostile archive")
	}
	if got := listDir(t, parent); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("%s holds %v", parent, got)
	}
	if got := listDir(t, filepath.Join(parent, "a")); len(got) != 0 {
		t.Errorf("left %v in a", got)
	}
}
