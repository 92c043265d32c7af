package ova

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/ovf"
)

// memPatchable is a Patchable in memory that, like an upload, refuses to
// fill anything but reserved bytes, each only once.
type memPatchable struct {
	b        []byte
	reserved map[int64]int64 // offset -> length, until filled
}

func (m *memPatchable) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }

func (m *memPatchable) Reserve(n int64) (int64, error) {
	off := int64(len(m.b))
	m.b = append(m.b, make([]byte, n)...)
	if m.reserved == nil {
		m.reserved = map[int64]int64{}
	}
	m.reserved[off] = n
	return off, nil
}

func (m *memPatchable) WriteAt(p []byte, off int64) (int, error) {
	if n, ok := m.reserved[off]; !ok || n != int64(len(p)) {
		return 0, fmt.Errorf("write of %d bytes at %d is not a reserved region", len(p), off)
	}
	delete(m.reserved, off)
	return copy(m.b[off:], p), nil
}

// streamSpec is a VM with the given disk files (name -> bytes).
func streamSpec(names []string, sizes []int64) ovf.VMSpec {
	s := ovf.VMSpec{Name: "vm", CPUs: 2, MemoryMiB: 1024}
	for i, n := range names {
		s.Disks = append(s.Disks, ovf.DiskSpec{File: n, CapacityBytes: 1 << 30, FileSize: sizes[i]})
	}
	return s
}

func buildDescriptor(t testing.TB, s ovf.VMSpec) []byte {
	t.Helper()
	d, err := ovf.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return d.Marshal()
}

// streamOVA writes files through a StreamWriter into memory.
func streamOVA(t *testing.T, names []string, data [][]byte) ([]byte, *Result) {
	return streamOVAWith(t, names, data, CompressionNone)
}

func streamOVAWith(t *testing.T, names []string, data [][]byte, c Compression) ([]byte, *Result) {
	t.Helper()
	bound := make([]int64, len(names))
	real := make([]int64, len(names))
	for i := range names {
		bound[i], real[i] = MaxSize, int64(len(data[i]))
	}
	dst := &memPatchable{}
	w, err := NewStreamWriter(dst, "vm.ovf", buildDescriptor(t, streamSpec(names, bound)), Options{ModTime: fixedTime(), Compression: c})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if err := w.Begin(n); err != nil {
			t.Fatal(err)
		}
		// Odd-sized writes: the member is not written in blocks.
		for b := data[i]; len(b) > 0; {
			k := min(len(b), 7777)
			if _, err := w.Write(b[:k]); err != nil {
				t.Fatal(err)
			}
			b = b[k:]
		}
		if _, err := w.End(); err != nil {
			t.Fatal(err)
		}
	}
	res, err := w.Close(buildDescriptor(t, streamSpec(names, real)))
	if err != nil {
		t.Fatal(err)
	}
	if len(dst.reserved) != 0 {
		t.Fatalf("reserved regions never filled: %v", dst.reserved)
	}
	if res.Size != int64(len(dst.b)) {
		t.Fatalf("result size %d, wrote %d", res.Size, len(dst.b))
	}
	return dst.b, res
}

// A streamed archive, plain or compressed, reads back with archive/tar
// and the package's own validator, lists the descriptor first and the
// manifest last for GNU tar (gzip -d, zstd -d), unpacks, passes `sha256sum
// -c`, and its descriptor declares the sizes of the members the archive
// holds.
func TestStreamWriterArchiveReadsBack(t *testing.T) {
	needTool(t, "tar", "apt-get install -y tar")
	needTool(t, "sha256sum", "apt-get install -y coreutils")
	needTool(t, "gzip", "apt-get install -y gzip")
	needTool(t, "zstd", "apt-get install -y zstd")
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
		t.Run(string(c), func(t *testing.T) { testStreamReadsBack(t, c) })
	}
}

func testStreamReadsBack(t *testing.T, c Compression) {
	names := []string{"vm-disk1.vmdk", "vm-disk2.vmdk", "vm-" + strings.Repeat("ü", 60) + ".vmdk"}
	// disk1 spans several of the compressor's 1 MiB blocks.
	data := [][]byte{diskBytes(1, 3<<20+200_000), diskBytes(2, 512), diskBytes(3, 0)}
	archive, res := streamOVAWith(t, names, data, c)
	if res.Compression != c || res.Size != int64(len(archive)) {
		t.Errorf("result compression %s size %d, want %s %d", res.Compression, res.Size, c, len(archive))
	}
	plain := archive
	if c != CompressionNone {
		rc, err := newDecompressor(bytes.NewReader(archive), c)
		if err != nil {
			t.Fatal(err)
		}
		if plain, err = io.ReadAll(rc); err != nil {
			t.Fatalf("decompress: %v", err)
		}
		if int64(len(plain)) != res.TarSize {
			t.Errorf("tar stream of %d bytes, result says %d", len(plain), res.TarSize)
		}
	}

	tr := tar.NewReader(bytes.NewReader(plain))
	var got []string
	contents := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, hdr.Name)
		contents[hdr.Name] = b
		if !hdr.ModTime.Equal(fixedTime()) {
			t.Errorf("%s: time %v", hdr.Name, hdr.ModTime)
		}
	}
	want := append(append([]string{"vm.ovf"}, names...), "vm.mf")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	for i, n := range names {
		if !bytes.Equal(contents[n], data[i]) {
			t.Errorf("%s: %d bytes differ from the %d written", n, len(contents[n]), len(data[i]))
		}
	}
	desc, err := ovf.Parse(contents["vm.ovf"])
	if err != nil {
		t.Fatalf("the padded descriptor does not parse: %v", err)
	}
	pfs, err := desc.PackageFiles()
	if err != nil {
		t.Fatal(err)
	}
	for i, pf := range pfs {
		if pf.Name != names[i] || pf.Size != int64(len(data[i])) && !(pf.Size < 0 && len(data[i]) == 0) {
			t.Errorf("descriptor references %s of %d bytes, want %s of %d", pf.Name, pf.Size, names[i], len(data[i]))
		}
	}
	if res.Members[0].Size%512 != 0 || strings.TrimRight(string(contents["vm.ovf"]), " \n") != strings.TrimRight(string(buildDescriptor(t, streamSpec(names, []int64{int64(len(data[0])), 512, 0}))), " \n") {
		t.Errorf("the descriptor member is not the real descriptor padded with whitespace to a block")
	}
	if contents["vm.mf"] == nil || !bytes.Equal(contents["vm.mf"], res.Manifest.Marshal()) || !res.ManifestAtEnd {
		t.Errorf("manifest %q, result says %q", contents["vm.mf"], res.Manifest.Marshal())
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "vm"+c.Extension())
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(context.Background(), path, ReadOptions{}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// GNU tar runs gzip -d or zstd -d on the archive, which read every
	// member (frame) in turn.
	var flags []string
	switch c {
	case CompressionGzip:
		flags = []string{"-z"}
	case CompressionZstd:
		flags = []string{"--zstd"}
	}
	listing := strings.Split(strings.TrimSpace(run(t, "", "tar", append(flags, "-tf", path)...)), "\n")
	if !reflect.DeepEqual(listing, want) {
		t.Fatalf("tar -tf: %v, want %v", listing, want)
	}
	dest := t.TempDir()
	run(t, dest, "tar", append(flags, "-xf", path)...)
	out := run(t, dest, "sha256sum", "--strict", "-c", "vm.mf")
	for _, n := range want[:len(want)-1] {
		if !strings.Contains(out, n+": OK") {
			t.Errorf("sha256sum -c did not check %s:\n%s", n, out)
		}
	}
}

// The same files give the same archive: a resumed upload skips the parts
// an earlier attempt sent only if every byte repeats.
func TestStreamWriterIsReproducible(t *testing.T) {
	names := []string{"vm-disk1.vmdk", "vm-disk2.vmdk"}
	data := [][]byte{diskBytes(4, 3<<20), diskBytes(5, 70_000)}
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
		a, _ := streamOVAWith(t, names, data, c)
		b, _ := streamOVAWith(t, names, data, c)
		if !bytes.Equal(a, b) {
			for i := range a {
				if i >= len(b) || a[i] != b[i] {
					t.Fatalf("%s: two archives of the same files differ at %d of %d/%d", c, i, len(a), len(b))
				}
			}
			t.Fatalf("%s: two archives of the same files differ", c)
		}
	}
}

// A stored region decodes with the standard decoders whatever its length
// (several deflate stored blocks, several zstd raw blocks, none at all),
// and is as long as storedLen says.
func TestStoredRegionsDecode(t *testing.T) {
	for _, n := range []int{0, 1, 65535, 65536, 128 << 10, 300_001} {
		p := diskBytes(uint64(n), n)
		for _, c := range []Compression{CompressionGzip, CompressionZstd} {
			b := stored(c, p)
			if int64(len(b)) != storedLen(c, int64(n)) {
				t.Fatalf("%s %d: %d bytes, storedLen says %d", c, n, len(b), storedLen(c, int64(n)))
			}
			rc, err := newDecompressor(bytes.NewReader(b), c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("%s %d: decoded %d bytes (%v)", c, n, len(got), err)
			}
		}
	}
}

// The file header's length never depends on the size: the invariant
// behind reserving it before the size is known.
func TestFileHeaderLengthIsFixed(t *testing.T) {
	for _, name := range []string{"a.vmdk", strings.Repeat("x", 100), strings.Repeat("y", 101), "vm-ß.vmdk"} {
		first, err := fileHeader(name, 0, fixedTime())
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int64{1, 511, 1<<33 - 1, 1 << 33, 1 << 40, MaxSize} {
			h, err := fileHeader(name, size, fixedTime())
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != len(first) || len(h)%512 != 0 {
				t.Fatalf("%q: header of %d bytes for size %d, %d for size 0", name, len(h), size, len(first))
			}
			hdr, err := tar.NewReader(io.MultiReader(bytes.NewReader(h), zeroReader{})).Next()
			if err != nil {
				t.Fatalf("%q size %d: %v", name, size, err)
			}
			if hdr.Name != name || hdr.Size != size {
				t.Fatalf("archive/tar reads %q of %d, want %q of %d", hdr.Name, hdr.Size, name, size)
			}
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// discardPatchable keeps only what is written at reserved offsets (the
// headers) and counts the rest.
type discardPatchable struct {
	n       int64
	patches map[int64][]byte
}

func (d *discardPatchable) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }
func (d *discardPatchable) Reserve(n int64) (int64, error) {
	off := d.n
	d.n += n
	return off, nil
}
func (d *discardPatchable) WriteAt(p []byte, off int64) (int, error) {
	if d.patches == nil {
		d.patches = map[int64][]byte{}
	}
	d.patches[off] = bytes.Clone(p)
	return len(p), nil
}

// A member of 8 GiB and more, which USTAR's size field cannot hold, gets
// the header reserved for it and archive/tar reads its size back.
func TestStreamWriterMemberOver8GiB(t *testing.T) {
	const size = 8<<30 + 12345
	dst := &discardPatchable{}
	name := "vm-disk1.vmdk"
	w, err := NewStreamWriter(dst, "vm.ovf", buildDescriptor(t, streamSpec([]string{name}, []int64{MaxSize})), Options{ModTime: fixedTime()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Begin(name); err != nil {
		t.Fatal(err)
	}
	headerOff := dst.n - int64(len(must(fileHeader(name, 0, fixedTime()))))
	if _, err := io.CopyBuffer(w, io.LimitReader(zeroReader{}, size), make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	m, err := w.End()
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != size || m.Digests[ovf.SHA256] == "" {
		t.Fatalf("member %+v", m)
	}
	hdr, err := tar.NewReader(io.MultiReader(bytes.NewReader(dst.patches[headerOff]), zeroReader{})).Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != name || hdr.Size != size {
		t.Fatalf("archive/tar reads %q of %d bytes, want %d", hdr.Name, hdr.Size, int64(size))
	}
	if _, err := w.Close(buildDescriptor(t, streamSpec([]string{name}, []int64{size}))); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The writer refuses what would make a wrong archive: files out of
// order, a descriptor longer than its bound or declaring other sizes,
// a compression level the codec lacks.
func TestStreamWriterRefusals(t *testing.T) {
	bound := buildDescriptor(t, streamSpec([]string{"a.vmdk", "b.vmdk"}, []int64{MaxSize, MaxSize}))
	if _, err := NewStreamWriter(&memPatchable{}, "vm.ovf", bound, Options{Compression: CompressionGzip, Level: 12}); err == nil {
		t.Error("a gzip stream writer of level 12 was created")
	}
	w, _ := NewStreamWriter(&memPatchable{}, "vm.ovf", bound, Options{})
	if err := w.Begin("b.vmdk"); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("out of order: %v", err)
	}
	add := func(w *StreamWriter, name string, n int) {
		w.Begin(name)
		w.Write(make([]byte, n))
		w.End()
	}
	w, _ = NewStreamWriter(&memPatchable{}, "vm.ovf", bound, Options{})
	add(w, "a.vmdk", 10)
	add(w, "b.vmdk", 20)
	if _, err := w.Close(buildDescriptor(t, streamSpec([]string{"a.vmdk", "b.vmdk"}, []int64{10, 21}))); err == nil || !strings.Contains(err.Error(), "b.vmdk of 21") {
		t.Errorf("wrong size declared: %v", err)
	}
	small := buildDescriptor(t, streamSpec([]string{"a.vmdk"}, []int64{1}))
	w, _ = NewStreamWriter(&memPatchable{}, "vm.ovf", small, Options{})
	add(w, "a.vmdk", 1)
	long := buildDescriptor(t, ovf.VMSpec{Name: strings.Repeat("n", 2000), CPUs: 1, MemoryMiB: 1, Disks: []ovf.DiskSpec{{File: "a.vmdk", CapacityBytes: 1 << 30, FileSize: 1}}})
	if _, err := w.Close(long); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("descriptor beyond its bound: %v", err)
	}
}

// An aborted writer stops its compressor without writing more to the
// destination, and refuses further calls.
func TestStreamWriterAbortWritesNothingMore(t *testing.T) {
	dst := &memPatchable{}
	bound := buildDescriptor(t, streamSpec([]string{"a.vmdk"}, []int64{MaxSize}))
	w, err := NewStreamWriter(dst, "vm.ovf", bound, Options{Compression: CompressionGzip})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Begin("a.vmdk"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(diskBytes(9, 100_000)); err != nil {
		t.Fatal(err)
	}
	before := len(dst.b)
	w.Abort()
	if len(dst.b) != before {
		t.Errorf("abort wrote %d more bytes", len(dst.b)-before)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("a write after Abort succeeded")
	}
}
