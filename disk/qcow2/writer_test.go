package qcow2

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

// generatedSource is a huge sparse disk whose few extents' bytes are
// computed, not stored: what a writer holds is then all the memory used.
type generatedSource struct {
	size    int64
	extents []disk.Extent
	next    int
	pos     int64 // next offset to read within the current extent
}

// byteAt is the content of the generated disk.
func byteAt(off int64) byte { return byte(off*2654435761>>13) | 1 }

func (s *generatedSource) Size() int64 { return s.size }

func (s *generatedSource) NextExtent() (disk.Extent, error) {
	if s.next >= len(s.extents) {
		return disk.Extent{}, io.EOF
	}
	s.next++
	s.pos = s.extents[s.next-1].Offset
	return s.extents[s.next-1], nil
}

func (s *generatedSource) Read(p []byte) (int, error) {
	e := s.extents[s.next-1]
	if s.pos >= e.End() {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), e.End()-s.pos)]
	for i := range p {
		p[i] = byteAt(s.pos + int64(i))
	}
	s.pos += int64(len(p))
	return len(p), nil
}

func TestWriteHugeSparseBoundedMemory(t *testing.T) {
	const size = 8 << 40
	extents := []disk.Extent{
		ext(0, 1<<20),
		ext(1<<40+12345, 1<<20),
		ext(4<<40, 2<<20),
		ext(size-(1<<20), 1<<20),
	}
	out := filepath.Join(t.TempDir(), "huge.qcow2")
	fh, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := Write(context.Background(), fh, &generatedSource{size: size, extents: extents}, disk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Two 4 MiB batches, one L2 table and the L1 table (16 Ki entries for
	// 8 TiB), twice over for its encoding: about 8.5 MiB.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("writing an 8 TiB disk with 5 MiB of data allocated %d bytes", alloc)
	if alloc > 12<<20 {
		t.Fatalf("writing an 8 TiB disk with 5 MiB of data allocated %d bytes", alloc)
	}
	fh.Close()

	disktest.Check(t, out, "qcow2")
	if info := disktest.QemuInfo(t, out, "qcow2"); info.VirtualSize != size {
		t.Fatalf("qemu-img sees %d bytes, want %d", info.VirtualSize, size)
	}
	fi, _ := os.Stat(out)
	if fi.Size() > 8<<20 {
		t.Fatalf("image is %d bytes for 5 MiB of data", fi.Size())
	}

	img := disktest.OpenImage(t, out, Open)
	var got []disk.Extent
	for e, err := range img.Extents() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	// Extents come back widened to whole clusters.
	want := []disk.Extent{ext(0, 1<<20), ext(1<<40, 1<<20+64<<10), ext(4<<40, 2<<20), ext(size-(1<<20), 1<<20)}
	if len(got) != len(want) {
		t.Fatalf("extents %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("extents %v, want %v", got, want)
		}
	}
	// Each extent reads back with a zero byte on either side.
	for _, e := range extents {
		lo, hi := max(e.Offset-1, 0), min(e.End()+1, size)
		b := make([]byte, hi-lo)
		if _, err := img.ReadAt(b, lo); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			off := lo + int64(i)
			w := byte(0)
			if off >= e.Offset && off < e.End() {
				w = byteAt(off)
			}
			if b[i] != w {
				t.Fatalf("byte at %d is %#x, want %#x", off, b[i], w)
			}
		}
	}
	if err := img.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestWriteRefusesTooSmallClusters(t *testing.T) {
	// 512-byte clusters map 32 KiB per L1 entry: 8 TiB needs a 2 GiB L1.
	err := Write(context.Background(), nil, &generatedSource{size: 8 << 40}, disk.WriteOptions{ClusterSize: 512})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("use larger clusters")) {
		t.Fatalf("got %v", err)
	}
}

// TestWriteOddSizeRoundsToSectors: a source that is no whole number of
// sectors becomes a disk rounded up to one, as qemu-img makes it.
func TestWriteOddSizeRoundsToSectors(t *testing.T) {
	dir := t.TempDir()
	b := bytes.Repeat([]byte("odd"), 70001)
	raw := filepath.Join(dir, "odd.raw")
	if err := os.WriteFile(raw, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(dir, "ours.qcow2")
	disktest.WriteFromRaw(t, Write, raw, ours, disk.WriteOptions{})
	theirs := filepath.Join(dir, "theirs.qcow2")
	disktest.Convert(t, raw, "raw", theirs, "qcow2")
	want := disktest.QemuInfo(t, theirs, "qcow2").VirtualSize
	if got := disktest.QemuInfo(t, ours, "qcow2").VirtualSize; got != want || got%disk.SectorSize != 0 {
		t.Fatalf("virtual size %d, qemu-img makes %d", got, want)
	}
	disktest.Check(t, ours, "qcow2")
	disktest.Compare(t, theirs, "qcow2", ours, "qcow2")
}
