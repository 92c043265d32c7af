package vmdk_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/vmdk"
)

const mib = 1 << 20

// Region kinds of disktest.WriteImage, one per MiB in this order.
const (
	regionHole = iota
	regionData
	regionZeros
	regionText
)

func regionOf(off int64) int64 { return (off / mib) % 4 }

func openBytes(t *testing.T, b []byte, related map[string][]byte) disk.Image {
	t.Helper()
	im, err := vmdk.Open(disk.BytesFile("t.vmdk", b, related))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return im
}

func content(t *testing.T, im disk.Image) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(im, 0, im.Info().VirtualSize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func check(t *testing.T, im disk.Image) {
	t.Helper()
	if err := im.(disk.Checker).Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// noDataIn fails when an extent touches a hole or written-zeros region of
// a disktest image.
func noDataIn(t *testing.T, es []disk.Extent, what string) {
	t.Helper()
	for _, e := range es {
		for off := e.Offset / mib * mib; off < e.End(); off += mib {
			if k := regionOf(off); k == regionHole || k == regionZeros {
				t.Fatalf("%s: extent %+v covers the %s region at MiB %d", what, e, map[int64]string{regionHole: "hole", regionZeros: "zeros"}[k], off/mib)
			}
		}
	}
}

// coversData fails when a non-zero byte of want lies outside every extent.
func coversData(t *testing.T, es []disk.Extent, want []byte) {
	t.Helper()
	pos := int64(0)
	for _, e := range append(es, disk.Extent{Offset: int64(len(want))}) {
		if i := bytes.IndexFunc(want[pos:e.Offset], func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("data at byte %d lies outside every extent", pos+int64(i))
		}
		pos = e.End()
	}
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// appendOnly is a disk.Target that fails the test when a writer seeks or
// writes back: Write must be a pure stream.
type appendOnly struct {
	t *testing.T
	w io.Writer
}

func (a appendOnly) Write(p []byte) (int, error) { return a.w.Write(p) }
func (a appendOnly) WriteAt([]byte, int64) (int, error) {
	a.t.Error("Write called WriteAt")
	return 0, errors.ErrUnsupported
}
func (a appendOnly) Seek(int64, int) (int64, error) {
	a.t.Error("Write called Seek")
	return 0, errors.ErrUnsupported
}
func (a appendOnly) Truncate(int64) error {
	a.t.Error("Write called Truncate")
	return errors.ErrUnsupported
}

// The writer's output is a streamOptimized VMDK qemu-img reads as the
// source disk, checks clean, and our reader reads back identically, with
// no grain where the source has holes or written zeros.
func TestWriteRoundTripQemu(t *testing.T) {
	dir := t.TempDir()
	size := int64(40*mib + 4608)
	rawPath := filepath.Join(dir, "src.raw")
	disktest.WriteImage(t, rawPath, size, 3)
	outPath := filepath.Join(dir, "out.vmdk")
	appendOnlyWrite := func(ctx context.Context, out disk.Target, src disk.Source, o disk.WriteOptions) error {
		return vmdk.Write(ctx, appendOnly{t, out}, src, o)
	}
	disktest.WriteFromRaw(t, appendOnlyWrite, rawPath, outPath, disk.WriteOptions{Name: "out.vmdk", AdapterType: "ide", HardwareVersion: 13})

	info := disktest.QemuInfo(t, outPath, "")
	if info.Format != "vmdk" || info.Specific.Data.CreateType != "streamOptimized" || info.VirtualSize != size {
		t.Fatalf("qemu-img info: %+v", info)
	}
	disktest.Check(t, outPath, "vmdk")
	disktest.Compare(t, rawPath, "raw", outPath, "vmdk")

	img, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	desc := string(img[512 : 21*512])
	for _, want := range []string{`"out.vmdk"`, `ddb.adapterType = "ide"`, `ddb.virtualHWVersion = "13"`} {
		if !strings.Contains(desc, want) {
			t.Errorf("descriptor lacks %s:\n%s", want, desc)
		}
	}
	im := disktest.OpenImage(t, outPath, vmdk.Open)
	if got := im.Info(); got != (disk.Info{Format: disk.VMDK, Subformat: "streamOptimized", VirtualSize: size, ClusterSize: vmdk.GrainSize, Compressed: true}) {
		t.Fatalf("Info %+v", got)
	}
	want, err := os.ReadFile(rawPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(content(t, im), want) {
		t.Fatal("read back differs from the source")
	}
	check(t, im)
	es := disktest.Extents(t, im)
	if len(es) == 0 {
		t.Fatal("no extents")
	}
	noDataIn(t, es, "written image")
}

// extentSource is a disk.Source serving chosen runs of backing; the rest
// of backing (not zero) must never reach the output.
type extentSource struct {
	backing []byte
	runs    []disk.Extent
	cur     int
	pos     int64
}

func (s *extentSource) Size() int64 { return int64(len(s.backing)) }

func (s *extentSource) NextExtent() (disk.Extent, error) {
	if s.cur >= len(s.runs) {
		return disk.Extent{}, io.EOF
	}
	e := s.runs[s.cur]
	s.cur++
	s.pos = e.Offset
	return e, nil
}

func (s *extentSource) Read(p []byte) (int, error) {
	end := s.runs[s.cur-1].End()
	if s.pos >= end {
		return 0, io.EOF
	}
	n := copy(p, s.backing[s.pos:end])
	s.pos += int64(n)
	return n, nil
}

// Holes of the source are not read and get neither grains nor grain
// tables; runs not aligned to grains keep their exact bytes.
func TestWriteLeavesHolesOut(t *testing.T) {
	size := int64(100 * mib)
	backing := make([]byte, size)
	if _, err := io.ReadFull(vmdk.GenerateRaw(8, size), backing); err != nil {
		t.Fatal(err)
	}
	for i := range backing { // no zero grain anywhere: only holes are left out
		if i%4096 == 0 {
			backing[i] = 0xa5
		}
	}
	runs := []disk.Extent{{Offset: mib + 512, Length: 100 * 512}, {Offset: mib + 64<<10, Length: 3 * 512}, {Offset: 70 * mib, Length: 2*mib + 4096}}
	var buf bytes.Buffer
	if err := vmdk.Write(context.Background(), appendOnly{t, &buf}, &extentSource{backing: backing, runs: runs}, disk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	im := openBytes(t, buf.Bytes(), nil)
	want := make([]byte, size)
	for _, r := range runs {
		copy(want[r.Offset:r.End()], backing[r.Offset:r.End()])
	}
	if !bytes.Equal(content(t, im), want) {
		t.Fatal("content differs: a hole was read, or a run was misplaced")
	}
	check(t, im)
	wantExtents := []disk.Extent{{Offset: mib, Length: 2 * vmdk.GrainSize}, {Offset: 70 * mib, Length: 2*mib + vmdk.GrainSize}}
	if got := disktest.Extents(t, im); !slices.Equal(got, wantExtents) {
		t.Fatalf("extents %v, want %v", got, wantExtents)
	}
	// The grain directory (found through the footer) points at grain
	// tables 0 and 2 only: 32 MiB each, untouched ranges have none.
	img := buf.Bytes()
	footer := img[len(img)-1024:]
	gd := img[le.Uint64(footer[56:])*512:]
	for i := range 4 {
		if got, want := le.Uint32(gd[i*4:]) != 0, i == 0 || i == 2; got != want {
			t.Errorf("grain directory entry %d present=%v, want %v", i, got, want)
		}
	}
}

// Write refuses a subformat it does not write and a size that is not whole
// sectors; WriteStreamOptimized stays a thin wrapper over it.
func TestWriteOptions(t *testing.T) {
	src := disk.FromReader(bytes.NewReader(make([]byte, 4096)), 4096)
	if err := vmdk.Write(context.Background(), appendOnly{t, io.Discard}, src, disk.WriteOptions{Subformat: "monolithicFlat"}); err == nil {
		t.Error("subformat monolithicFlat accepted")
	}
	src = disk.FromReader(bytes.NewReader(make([]byte, 1000)), 1000)
	if err := vmdk.Write(context.Background(), appendOnly{t, io.Discard}, src, disk.WriteOptions{}); err == nil {
		t.Error("size of 1000 bytes accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src = disk.FromReader(vmdk.GenerateRaw(1, 8*mib), 8*mib)
	if err := vmdk.Write(ctx, appendOnly{t, io.Discard}, src, disk.WriteOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: %v", err)
	}
	var a, b bytes.Buffer
	if err := vmdk.Write(context.Background(), appendOnly{t, &a}, disk.FromReader(vmdk.GenerateRaw(4, 3*mib), 3*mib), disk.WriteOptions{Name: "x.vmdk"}); err != nil {
		t.Fatal(err)
	}
	if _, err := vmdk.WriteStreamOptimized(&b, vmdk.GenerateRaw(4, 3*mib), 3*mib, vmdk.WriteOptions{FileName: "x.vmdk"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("Write and WriteStreamOptimized write different bytes for the same disk")
	}
}

// Images qemu-img writes in every VMDK subformat read back as their source.
func TestOpenQemuImages(t *testing.T) {
	dir := t.TempDir()
	size := int64(24*mib + 4608)
	rawPath := filepath.Join(dir, "src.raw")
	disktest.WriteImage(t, rawPath, size, 5)
	want, err := os.ReadFile(rawPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"} {
		t.Run(sub, func(t *testing.T) {
			path := filepath.Join(dir, sub+".vmdk")
			disktest.Convert(t, rawPath, "raw", path, "vmdk", "subformat="+sub)
			im := disktest.OpenImage(t, path, vmdk.Open)
			info := im.Info()
			if info.Format != disk.VMDK || info.Subformat != sub || info.VirtualSize != size || info.Compressed != (sub == "streamOptimized") {
				t.Fatalf("Info %+v", info)
			}
			if strings.Contains(sub, "Sparse") || sub == "streamOptimized" {
				if info.ClusterSize != 64<<10 {
					t.Fatalf("cluster size %d", info.ClusterSize)
				}
			}
			if !bytes.Equal(content(t, im), want) {
				t.Fatal("content differs from the source")
			}
			check(t, im)
			es := disktest.Extents(t, im)
			coversData(t, es, want)
			if !strings.Contains(sub, "Flat") { // the flat file's zeros are data to the file system
				noDataIn(t, es, sub)
			}
		})
	}
	t.Run("StreamReader", func(t *testing.T) {
		path := filepath.Join(dir, "streamOptimized.vmdk")
		disktest.Convert(t, rawPath, "raw", path, "vmdk", "subformat=streamOptimized")
		streamConvert(t, path, rawPath, want)
	})
}

// streamConvert reads the streamOptimized VMDK at path front to back as a
// disk.Source, writes it as a raw image (holes never zero-checked: only
// grains arrive) and as a streamOptimized VMDK, and compares both with
// want through qemu-img; then decodes it again with Raw.
func streamConvert(t *testing.T, path, rawPath string, want []byte) {
	t.Helper()
	open := func() *vmdk.StreamReader {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		s, err := vmdk.NewStreamReader(f, path)
		if err != nil {
			t.Fatal(err)
		}
		if s.Size() != int64(len(want)) {
			t.Fatalf("stream size %d, want %d", s.Size(), len(want))
		}
		return s
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "from-stream.raw")
	of, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	counting := &countingSource{Source: open()}
	if err := disk.WriteRaw(context.Background(), of, counting, disk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	disktest.Compare(t, rawPath, "raw", out, "raw")
	if counting.bytes >= int64(len(want))*3/4 {
		t.Errorf("the stream's extents cover %d of %d bytes: holes are not holes", counting.bytes, len(want))
	}
	again := filepath.Join(dir, "again.vmdk")
	af, err := os.Create(again)
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	if err := vmdk.Write(context.Background(), appendOnly{t, af}, open(), disk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	disktest.Compare(t, rawPath, "raw", again, "vmdk")
	got, err := io.ReadAll(open().Raw())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("Raw decodes different bytes")
	}
}

type countingSource struct {
	disk.Source
	bytes int64
	prev  int64
}

func (c *countingSource) NextExtent() (disk.Extent, error) {
	e, err := c.Source.NextExtent()
	if err == nil {
		if e.Offset < c.prev {
			return e, errors.New("extents out of order")
		}
		c.prev = e.End()
		c.bytes += e.Length
	}
	return e, err
}

// A descriptor may concatenate extents of different types; qemu-img reads
// the same disk.
func TestOpenMultiExtent(t *testing.T) {
	dir := t.TempDir()
	flatSize, sparseSize := int64(2*mib), int64(3*mib+1024)
	flat := make([]byte, flatSize)
	io.ReadFull(vmdk.GenerateRaw(21, flatSize), flat)
	writeFile(t, filepath.Join(dir, "m-f001.vmdk"), flat)
	sparseRaw := filepath.Join(dir, "part.raw")
	disktest.WriteImage(t, sparseRaw, sparseSize, 22)
	disktest.Convert(t, sparseRaw, "raw", filepath.Join(dir, "m-s003.vmdk"), "vmdk", "subformat=monolithicSparse")
	// The middle extent is the flat file's second MiB, at an offset in
	// sectors. (qemu-img 7.2 needs the DDB section after the extents.)
	desc := "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\n" +
		"# Extent description\nRW 4096 FLAT \"m-f001.vmdk\" 0\nRW 2048 FLAT \"m-f001.vmdk\" 2048\nRW 6146 SPARSE \"m-s003.vmdk\"\n\n" +
		"# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n"
	path := writeFile(t, filepath.Join(dir, "m.vmdk"), []byte(desc))
	want := append(bytes.Clone(flat), flat[mib:]...)
	part, _ := os.ReadFile(sparseRaw)
	want = append(want, part...)
	writeFile(t, filepath.Join(dir, "want.raw"), want)

	im := disktest.OpenImage(t, path, vmdk.Open)
	if info := im.Info(); info.VirtualSize != int64(len(want)) || info.Subformat != "twoGbMaxExtentSparse" || info.ClusterSize != 64<<10 {
		t.Fatalf("Info %+v", info)
	}
	if !bytes.Equal(content(t, im), want) {
		t.Fatal("content differs")
	}
	// Reads across extent boundaries.
	p := make([]byte, 3*mib)
	if _, err := im.ReadAt(p, flatSize-1000); err != nil || !bytes.Equal(p, want[flatSize-1000:flatSize-1000+3*mib]) {
		t.Fatalf("read across extents: %v", err)
	}
	check(t, im)
	es := disktest.Extents(t, im)
	coversData(t, es, want)
	if es[0].Offset != 0 || es[0].Length < flatSize+mib {
		t.Fatalf("first extent %+v does not cover the flat extents", es[0])
	}
	disktest.Compare(t, filepath.Join(dir, "want.raw"), "raw", path, "vmdk")

	// A ZERO extent (in the spec; qemu-img 7.2 does not read it as zeros,
	// so no oracle here) reads as zeros and is a hole.
	zdesc := strings.Replace(desc, "RW 2048 FLAT \"m-f001.vmdk\" 2048", "RW 2048 ZERO", 1)
	im = disktest.OpenImage(t, writeFile(t, filepath.Join(dir, "z.vmdk"), []byte(zdesc)), vmdk.Open)
	clear(want[flatSize : flatSize+mib])
	if !bytes.Equal(content(t, im), want) {
		t.Fatal("content with a ZERO extent differs")
	}
	for _, e := range disktest.Extents(t, im) {
		if e.Offset < flatSize+mib && e.End() > flatSize {
			t.Fatalf("extent %+v covers the ZERO extent", e)
		}
	}
}

// The layouts VMware's own products write, built from the spec: read
// correctly by Open (and the streaming reader), and qemu-img agrees.
func TestVMwareLayouts(t *testing.T) {
	dir := t.TempDir()
	grain := func(seed uint64, n int) []byte {
		b := make([]byte, n)
		io.ReadFull(vmdk.GenerateRaw(seed, int64(n)), b)
		b[0] = 0xff // never an all-zero grain
		return b
	}
	text := bytes.Repeat([]byte("VMware ESXi 8.0 guest data\n"), 64<<10/27+1)[:64<<10]

	t.Run("Workstation monolithicSparse", func(t *testing.T) {
		ws := workstationSparse{capacity: 48 * mib / 512, grain: 128, name: "ws.vmdk",
			data:   map[int64][]byte{0: grain(1, 64<<10), 5: text, 20: make([]byte, 64<<10), 600: grain(2, 64<<10), 767: grain(3, 64<<10)},
			order:  []int64{600, 0, 20, 5, 767},
			zeroed: []int64{10, 11}}
		img := ws.build()
		want := make([]byte, 48*mib)
		for g, d := range ws.data {
			copy(want[g*64<<10:], d)
		}
		path := writeFile(t, filepath.Join(dir, "ws.vmdk"), img)
		wantPath := writeFile(t, filepath.Join(dir, "ws.raw"), want)
		im := disktest.OpenImage(t, path, vmdk.Open)
		if info := im.Info(); info != (disk.Info{Format: disk.VMDK, Subformat: "monolithicSparse", VirtualSize: 48 * mib, ClusterSize: 64 << 10}) {
			t.Fatalf("Info %+v", info)
		}
		if !bytes.Equal(content(t, im), want) {
			t.Fatal("content differs")
		}
		check(t, im)
		g := int64(64 << 10)
		wantExtents := []disk.Extent{{Offset: 0, Length: g}, {Offset: 5 * g, Length: g}, {Offset: 20 * g, Length: g}, {Offset: 600 * g, Length: g}, {Offset: 767 * g, Length: g}}
		if got := disktest.Extents(t, im); !slices.Equal(got, wantExtents) {
			t.Fatalf("extents %v, want %v (zeroed grains are holes)", got, wantExtents)
		}
		disktest.Check(t, path, "vmdk")
		disktest.Compare(t, wantPath, "raw", path, "vmdk")
	})

	t.Run("ESXi streamOptimized", func(t *testing.T) {
		capacity := int64(40*mib/512 + 3) // the last grain holds 3 sectors
		es := esxStream{capacity: capacity, grain: 128, overhead: 128, level: 9,
			data: map[int64][]byte{0: grain(4, 64<<10), 1: text, 2: grain(5, 64<<10), 300: text, 520: grain(6, 64<<10), 640: grain(7, 3*512)}}
		img := es.build()
		want := make([]byte, capacity*512)
		for g, d := range es.data {
			copy(want[g*64<<10:], d)
		}
		path := writeFile(t, filepath.Join(dir, "esx-stream.vmdk"), img)
		wantPath := writeFile(t, filepath.Join(dir, "esx-stream.raw"), want)
		im := disktest.OpenImage(t, path, vmdk.Open)
		if info := im.Info(); info != (disk.Info{Format: disk.VMDK, Subformat: "streamOptimized", VirtualSize: capacity * 512, ClusterSize: 64 << 10, Compressed: true}) {
			t.Fatalf("Info %+v", info)
		}
		if !bytes.Equal(content(t, im), want) {
			t.Fatal("content differs")
		}
		check(t, im)
		g := int64(64 << 10)
		wantExtents := []disk.Extent{{Offset: 0, Length: 3 * g}, {Offset: 300 * g, Length: g}, {Offset: 520 * g, Length: g}, {Offset: 640 * g, Length: 3 * 512}}
		if got := disktest.Extents(t, im); !slices.Equal(got, wantExtents) {
			t.Fatalf("extents %v, want %v", got, wantExtents)
		}
		disktest.Check(t, path, "vmdk")
		disktest.Compare(t, wantPath, "raw", path, "vmdk")
		streamConvert(t, path, wantPath, want)
	})

	t.Run("ESXi vmfs descriptor and flat extent", func(t *testing.T) {
		size := int64(16*mib + 4608)
		flatPath := filepath.Join(dir, "esx-flat.vmdk")
		disktest.WriteImage(t, flatPath, size, 9)
		path := writeFile(t, filepath.Join(dir, "esx.vmdk"), []byte(esxDescriptor(size/512, "esx-flat.vmdk")))
		want, _ := os.ReadFile(flatPath)
		im := disktest.OpenImage(t, path, vmdk.Open)
		if info := im.Info(); info != (disk.Info{Format: disk.VMDK, Subformat: "vmfs", VirtualSize: size}) {
			t.Fatalf("Info %+v", info)
		}
		if !bytes.Equal(content(t, im), want) {
			t.Fatal("content differs")
		}
		check(t, im)
		es := disktest.Extents(t, im)
		coversData(t, es, want)
		for _, e := range es { // the file system's holes are holes of the disk
			for off := e.Offset / mib * mib; off < e.End(); off += mib {
				if regionOf(off) == regionHole {
					t.Fatalf("extent %+v covers the hole at MiB %d", e, off/mib)
				}
			}
		}
		disktest.Compare(t, flatPath, "raw", path, "vmdk")
	})
}

func TestDetect(t *testing.T) {
	for head, want := range map[string]bool{
		"KDMV\x01\x00\x00\x00":                                 true,
		"# Disk DescriptorFile\nversion=1\n":                   true,
		"\n\n  # Disk DescriptorFile\r\nversion=1\r\n":         true,
		"# written by a tool\n#  Disk   DescriptorFile\n":      true,
		"\xef\xbb\xbf# Disk DescriptorFile\n":                  true,
		"# comment\n\nversion=1\nCID=ffffffff\n":               true,
		"version=4\n":                                          false,
		"QFI\xfb":                                              false,
		"conectix":                                             false,
		"# just a comment\nhello=world\n# Disk DescriptorFile": false,
		"": false,
	} {
		if got := vmdk.Detect([]byte(head)); got != want {
			t.Errorf("Detect(%q) = %v, want %v", head, got, want)
		}
	}
}
