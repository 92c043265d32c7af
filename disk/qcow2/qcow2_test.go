package qcow2

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

// testDiskSize is the standard test disk's size here: 48 MiB and a tail
// that is a multiple of 512 but not of any cluster size.
const testDiskSize = 48<<20 + 4608

// rawTestDisk writes the standard test disk to dir and returns its path.
func rawTestDisk(t *testing.T, dir string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	disktest.WriteImage(t, p, size, 42)
	return p
}

// readBack converts img to a raw file through its extents and ReadAt (the
// path every conversion takes) and returns the raw file's SHA-256.
func readBack(t *testing.T, img disk.Image, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "readback.raw")
	disktest.WriteSource(t, disk.WriteRaw, disk.FromImage(img), out, disk.WriteOptions{})
	return disktest.FileSHA256(t, out)
}

func TestDetect(t *testing.T) {
	if !Detect([]byte("QFI\xfb\x00\x00\x00\x03")) || Detect([]byte("QFI")) || Detect([]byte("KDMV\x01\x00\x00\x00")) {
		t.Fatal("Detect is wrong about the magic")
	}
}

func TestWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	raw := rawTestDisk(t, dir, testDiskSize)
	out := filepath.Join(dir, "out.qcow2")
	disktest.WriteFromRaw(t, Write, raw, out, disk.WriteOptions{})

	info := disktest.QemuInfo(t, out, "")
	if info.Format != "qcow2" || info.VirtualSize != testDiskSize || info.Specific.Data.Compat != "1.1" || info.ClusterSize != DefaultClusterSize {
		t.Fatalf("qemu-img info: %+v", info)
	}
	disktest.Check(t, out, "qcow2")
	disktest.Compare(t, raw, "raw", out, "qcow2")

	img := disktest.OpenImage(t, out, Open)
	if got := img.Info(); got != (disk.Info{Format: disk.QCOW2, Subformat: "v3", VirtualSize: testDiskSize, ClusterSize: DefaultClusterSize}) {
		t.Fatalf("Info: %+v", got)
	}
	if readBack(t, img, dir) != disktest.FileSHA256(t, raw) {
		t.Fatal("our reader does not read our image back as the raw disk")
	}
	if err := img.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// The disk holds data in 2 of every 4 MiB (the third MiB is written
	// zeros, the first a hole); the file holds that and a little metadata.
	if a, data := disktest.Allocated(t, out), int64(testDiskSize/2); a > data+data/16 {
		t.Fatalf("output allocates %d bytes for about %d of data: zeros or holes were written", a, data)
	}
}

// TestWriteUnalignedExtents feeds the writer extents that start and end
// inside clusters, share clusters and end at a virtual size that is no
// multiple of the cluster.
func TestWriteUnalignedExtents(t *testing.T) {
	const size = 5<<20 + 1536
	b := make([]byte, size)
	var extents []disk.Extent
	for _, e := range []disk.Extent{ext(100, 200), ext(300, 70000), ext(131072+5, 10), ext(131072+4000, 100), ext(1<<20, 3<<20), ext(size-700, 700)} {
		for i := e.Offset; i < e.End(); i++ {
			b[i] = byte(i*7 + i>>9 + 1)
		}
		extents = append(extents, e)
	}
	// An all-zero cluster inside an extent is left out.
	clear(b[2<<20 : 2<<20+128<<10])

	for _, cs := range []int64{512, 4096, 65536, 2 << 20} {
		dir := t.TempDir()
		raw := filepath.Join(dir, "want.raw")
		if err := os.WriteFile(raw, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out.qcow2")
		disktest.WriteSource(t, Write, &sliceSource{data: b, extents: extents}, out, disk.WriteOptions{ClusterSize: cs})
		disktest.Check(t, out, "qcow2")
		disktest.Compare(t, raw, "raw", out, "qcow2")
		img := disktest.OpenImage(t, out, Open)
		if readBack(t, img, dir) != disktest.SHA256(t, bytes.NewReader(b)) {
			t.Fatalf("cluster size %d: read back differs", cs)
		}
		if err := img.Check(context.Background()); err != nil {
			t.Fatalf("cluster size %d: Check: %v", cs, err)
		}
	}
}

func TestWriteRefusesBadClusterSize(t *testing.T) {
	for _, cs := range []int64{256, 3 << 10, 4 << 20} {
		err := Write(context.Background(), nil, &sliceSource{data: make([]byte, 1<<20)}, disk.WriteOptions{ClusterSize: cs})
		if err == nil || !strings.Contains(err.Error(), "cluster size") {
			t.Errorf("cluster size %d: %v", cs, err)
		}
	}
}

func ext(off, n int64) disk.Extent { return disk.Extent{Offset: off, Length: n} }

// sliceSource is a disk.Source over b with the given extents.
type sliceSource struct {
	data    []byte
	extents []disk.Extent
	next    int
	r       *bytes.Reader
}

func (s *sliceSource) Size() int64 { return int64(len(s.data)) }

func (s *sliceSource) NextExtent() (disk.Extent, error) {
	if s.next >= len(s.extents) {
		return disk.Extent{}, io.EOF
	}
	e := s.extents[s.next]
	s.next++
	s.r = bytes.NewReader(s.data[e.Offset:e.End()])
	return e, nil
}

func (s *sliceSource) Read(p []byte) (int, error) { return s.r.Read(p) }

// qemuImg runs qemu-img (or qemu-io with tool "qemu-io") and fails the
// test on error.
func run(t *testing.T, tool string, args ...string) string {
	t.Helper()
	if tool == "qemu-img" {
		return disktest.Run(t, args...)
	}
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestReadQemuImages(t *testing.T) {
	dir := t.TempDir()
	const size = 16<<20 + 4608
	raw := rawTestDisk(t, dir, size)
	want := disktest.FileSHA256(t, raw)
	cases := []struct {
		name       string
		options    []string
		compress   bool
		subformat  string
		cluster    int64
		compressed bool
	}{
		{name: "v2", options: []string{"compat=0.10"}, subformat: "v2", cluster: 65536},
		{name: "v3-4k", options: []string{"compat=1.1", "cluster_size=4096"}, subformat: "v3", cluster: 4096},
		{name: "v3-64k", options: []string{"compat=1.1"}, subformat: "v3", cluster: 65536},
		{name: "v3-2m", options: []string{"compat=1.1", "cluster_size=2M"}, subformat: "v3", cluster: 2 << 20},
		{name: "v3-512-refcount1", options: []string{"compat=1.1", "cluster_size=512", "refcount_bits=1"}, subformat: "v3", cluster: 512},
		{name: "v3-refcount64", options: []string{"compat=1.1", "refcount_bits=64"}, subformat: "v3", cluster: 65536},
		{name: "v2-compressed", options: []string{"compat=0.10"}, compress: true, subformat: "v2", cluster: 65536, compressed: true},
		{name: "v3-compressed-4k", options: []string{"compat=1.1", "cluster_size=4096"}, compress: true, subformat: "v3", cluster: 4096, compressed: true},
		{name: "v3-compressed-zstd", options: []string{"compat=1.1", "compression_type=zstd"}, compress: true, subformat: "v3", cluster: 65536, compressed: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "img.qcow2")
			args := []string{"convert", "-f", "raw", "-O", "qcow2"}
			if c.compress {
				args = append(args, "-c")
			}
			for _, o := range c.options {
				args = append(args, "-o", o)
			}
			run(t, "qemu-img", append(args, raw, out)...)
			img := disktest.OpenImage(t, out, Open)
			info := img.Info()
			if info.Subformat != c.subformat || info.ClusterSize != c.cluster || info.VirtualSize != size || info.Compressed != c.compressed {
				t.Fatalf("Info: %+v", info)
			}
			if readBack(t, img, t.TempDir()) != want {
				t.Fatal("read back differs from the raw disk")
			}
			if err := img.Check(context.Background()); err != nil {
				t.Fatalf("Check on qemu-img's image: %v", err)
			}
		})
	}
}

// TestReadZeroClusters reads an image where qemu-io turned written data
// into zero clusters (the v3 L2 zero flag), allocated and not.
func TestReadZeroClusters(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 20
	raw := rawTestDisk(t, dir, size)
	img := filepath.Join(dir, "z.qcow2")
	disktest.Convert(t, raw, "raw", img, "qcow2", "compat=1.1")
	// MiB 1 and 3 hold data; zero part of each, keeping (1) and dropping
	// (-u) the host clusters.
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -z 1M 512k", "-c", "write -z -u 3M 256k", img)
	run(t, "qemu-io", "-f", "raw", "-c", "write -z 1M 512k", "-c", "write -z 3M 256k", raw)
	disktest.Check(t, img, "qcow2")
	disktest.Compare(t, raw, "raw", img, "qcow2")

	q := disktest.OpenImage(t, img, Open)
	for e, err := range q.Extents() {
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range []disk.Extent{ext(1<<20, 512<<10), ext(3<<20, 256<<10)} {
			if e.Offset < z.End() && z.Offset < e.End() {
				t.Fatalf("extent %+v covers the zero clusters %+v", e, z)
			}
		}
	}
	if readBack(t, q, dir) != disktest.FileSHA256(t, raw) {
		t.Fatal("read back differs")
	}
	if err := q.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// TestCheckSnapshotsAndBitmaps runs Check on images whose clusters are
// shared with a snapshot and counted by persistent bitmaps.
func TestCheckSnapshotsAndBitmaps(t *testing.T) {
	dir := t.TempDir()
	raw := rawTestDisk(t, dir, 4<<20)
	img := filepath.Join(dir, "s.qcow2")
	disktest.Convert(t, raw, "raw", img, "qcow2")
	run(t, "qemu-img", "snapshot", "-c", "before", img)
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", img)
	run(t, "qemu-img", "bitmap", "--add", img, "b0")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x33 2M 64k", img)
	disktest.Check(t, img, "qcow2")
	run(t, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 1M 64k", "-c", "write -P 0x33 2M 64k", raw)

	q := disktest.OpenImage(t, img, Open)
	if err := q.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if readBack(t, q, dir) != disktest.FileSHA256(t, raw) {
		t.Fatal("read back differs")
	}
}

// errorsIsFormat asserts err is a *disk.FormatError whose structure names
// want.
func assertFormatError(t *testing.T, err error, structure, problem string) {
	t.Helper()
	var fe *disk.FormatError
	if !errors.As(err, &fe) || !errors.Is(err, disk.ErrFormat) {
		t.Fatalf("error %v (%T) is not a *disk.FormatError", err, err)
	}
	if !strings.Contains(fe.Structure, structure) || !strings.Contains(err.Error(), problem) {
		t.Fatalf("error %q: want structure %q and %q in the message", err, structure, problem)
	}
}

// TestConcurrentReadAt reads a compressed image from several goroutines at
// once, in pieces that straddle clusters, against the raw disk.
func TestConcurrentReadAt(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 20
	raw := rawTestDisk(t, dir, size)
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "c.qcow2")
	run(t, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", raw, out)
	img := disktest.OpenImage(t, out, Open)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			buf := make([]byte, 5000+g*777)
			for off := int64(g * 999); off < size; off += int64(len(buf)) * 3 {
				n, err := img.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
					errs <- errors.New("concurrent read differs from the raw disk")
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fh, err := os.Create(filepath.Join(t.TempDir(), "x.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := bytes.Repeat([]byte{1}, 1<<20)
	if err := Write(ctx, fh, &sliceSource{data: b, extents: []disk.Extent{ext(0, 1<<20)}}, disk.WriteOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestReadAtAcrossHoles reads the disk in one ReadAt per MiB, so that a
// read spans data clusters on both sides of holes; our writer places the
// data clusters next to each other in the file.
func TestReadAtAcrossHoles(t *testing.T) {
	const size = 4 << 20
	b := make([]byte, size)
	for off := 0; off < size; off += 64 << 10 {
		if (off/(64<<10))%3 == 1 {
			continue // a hole between two data clusters
		}
		for i := off; i < off+64<<10; i++ {
			b[i] = byte(i*13 + i>>16 + 1)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.qcow2")
	disktest.WriteSource(t, Write, &sliceSource{data: b, extents: []disk.Extent{{Offset: 0, Length: size}}}, out, disk.WriteOptions{})
	img := disktest.OpenImage(t, out, Open)
	for _, bs := range []int{512, 64 << 10, 1 << 20, size} {
		got := make([]byte, size)
		for off := 0; off < size; off += bs {
			if _, err := img.ReadAt(got[off:off+bs], int64(off)); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
		}
		if i := firstDiff(got, b); i >= 0 {
			t.Fatalf("reads of %d bytes: first difference at byte %d", bs, i)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
