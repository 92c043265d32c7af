package vmdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
)

func sha(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rawWithZeroTail is the disk a source shorter than capacity describes.
func rawWithZeroTail(src io.Reader, capacity int64) io.Reader {
	return io.LimitReader(io.MultiReader(src, zeroReader{}), capacity)
}

// islands returns a mostly empty disk of size bytes: generated content in
// its first and last MiB only. It exercises several grain tables cheaply.
func islands(seed uint64, size int64) io.Reader {
	return io.MultiReader(GenerateRaw(seed, 1<<20), io.LimitReader(zeroReader{}, size-2<<20), GenerateRaw(seed+1, 1<<20))
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func writeVMDK(t *testing.T, src io.Reader, capacity int64, o WriteOptions) ([]byte, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := WriteStreamOptimized(&buf, src, capacity, o)
	if err != nil {
		t.Fatalf("WriteStreamOptimized: %v", err)
	}
	if st.Size != int64(buf.Len()) {
		t.Fatalf("Stats.Size = %d, wrote %d bytes", st.Size, buf.Len())
	}
	if buf.Len()%SectorSize != 0 {
		t.Fatalf("file size %d is not sector aligned", buf.Len())
	}
	return buf.Bytes(), st
}

func TestGenerateRawDeterministic(t *testing.T) {
	const size = 8<<20 + 1234
	a := sha(t, GenerateRaw(42, size))
	if b := sha(t, GenerateRaw(42, size)); a != b {
		t.Fatalf("same seed, different content: %s != %s", a, b)
	}
	if c := sha(t, GenerateRaw(43, size)); a == c {
		t.Fatal("different seeds gave the same content")
	}
	// Odd-sized sequential reads, WriteTo and ReadAt all see the same bytes.
	var whole bytes.Buffer
	if _, err := GenerateRaw(42, size).WriteTo(&whole); err != nil {
		t.Fatal(err)
	}
	if got := sha(t, bytes.NewReader(whole.Bytes())); got != a {
		t.Fatalf("WriteTo content differs: %s != %s", got, a)
	}
	if whole.Len() != size {
		t.Fatalf("WriteTo wrote %d bytes, want %d", whole.Len(), size)
	}
	r := GenerateRaw(42, size)
	var seq bytes.Buffer
	buf := make([]byte, 12345)
	for {
		n, err := r.Read(buf[:1+rand.IntN(len(buf))])
		seq.Write(buf[:n])
		if err == io.EOF {
			break
		}
	}
	if !bytes.Equal(seq.Bytes(), whole.Bytes()) {
		t.Fatal("odd-sized Read calls returned different bytes")
	}
	ra := GenerateRaw(42, size)
	for range 200 {
		off := rand.Int64N(size)
		n := rand.IntN(200_000)
		p := make([]byte, n)
		k, err := ra.ReadAt(p, off)
		want := whole.Bytes()[off:min(off+int64(n), size)]
		if k != len(want) || !bytes.Equal(p[:k], want) {
			t.Fatalf("ReadAt(%d, %d) = %d bytes, differs from sequential content", off, n, k)
		}
		if off+int64(n) > size && err != io.EOF {
			t.Fatalf("ReadAt past the end: err = %v, want io.EOF", err)
		}
	}
	if pos, _ := r.Seek(100, io.SeekStart); pos != 100 {
		t.Fatalf("Seek = %d", pos)
	}
	p := make([]byte, 10)
	if _, err := io.ReadFull(r, p); err != nil || !bytes.Equal(p, whole.Bytes()[100:110]) {
		t.Fatalf("read after Seek: %v", err)
	}
}

func TestGenerateRawMix(t *testing.T) {
	const size = 32 << 20
	data, err := io.ReadAll(GenerateRaw(7, size))
	if err != nil {
		t.Fatal(err)
	}
	var zero int
	for off := 0; off < size; off += GrainSize {
		if IsZero(data[off : off+GrainSize]) {
			zero++
		}
	}
	total := size / GrainSize
	// About 30% empty extents plus 15% zero blocks in the rest: ~40% zero grains.
	if zero < total*25/100 || zero > total*60/100 {
		t.Fatalf("%d of %d grains are zero; the mix should give roughly 40%%", zero, total)
	}
	img, st := writeVMDK(t, bytes.NewReader(data), size, WriteOptions{})
	ratio := float64(len(img)) / size
	if ratio < 0.15 || ratio > 0.6 {
		t.Fatalf("streamOptimized image is %.2f of the raw size; the mix should make compression matter", ratio)
	}
	if st.ZeroGrains != int64(zero) || st.Grains != int64(total-zero) {
		t.Fatalf("stats %+v, want %d zero grains of %d", st, zero, total)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name     string
		capacity int64
		srcSize  int64
	}{
		{"one sector", 512, 512},
		{"partial grain", GrainSize - 512, GrainSize - 512},
		{"one grain", GrainSize, GrainSize},
		{"grain and a sector", GrainSize + 512, GrainSize + 512},
		{"short source", 40 << 20, 3<<20 + 4096},
		{"empty source", 10 << 20, 0},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed := uint64(100 + i)
			img, st := writeVMDK(t, GenerateRaw(seed, c.srcSize), c.capacity, WriteOptions{FileName: "disk-0.vmdk"})
			if st.SourceBytes != c.srcSize {
				t.Fatalf("read %d source bytes, want %d", st.SourceBytes, c.srcSize)
			}
			im := openBytes(t, img)
			info := im.Info()
			if info.Subformat != "streamOptimized" || !info.Compressed || info.VirtualSize != c.capacity || info.ClusterSize != GrainSize {
				t.Fatalf("info = %+v", info)
			}
			if desc := string(img[SectorSize : (1+descriptorSectors)*SectorSize]); !strings.Contains(desc, `RW `) || !strings.Contains(desc, `"disk-0.vmdk"`) {
				t.Fatalf("descriptor lacks the extent line:\n%s", desc)
			}
			if err := im.(disk.Checker).Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			var grains int64
			for e, err := range im.Extents() {
				if err != nil {
					t.Fatal(err)
				}
				grains += (e.Length + GrainSize - 1) / GrainSize
			}
			if grains != st.Grains {
				t.Fatalf("extents cover %d grains, writer stored %d", grains, st.Grains)
			}
			want := sha(t, rawWithZeroTail(GenerateRaw(seed, c.srcSize), c.capacity))
			if got := sha(t, io.NewSectionReader(im, 0, c.capacity)); got != want {
				t.Fatalf("content SHA-256 %s, want %s", got, want)
			}
		})
	}
}

// openBytes opens img with Open, failing the test on an error.
func openBytes(t *testing.T, img []byte) disk.Image {
	t.Helper()
	im, err := Open(disk.BytesFile("t.vmdk", img, nil))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return im
}

func TestLayout(t *testing.T) {
	// 40 MiB: grains in two grain-table ranges, but the second only partly.
	const capacity = 40 << 20
	img, st := writeVMDK(t, islands(9, capacity), capacity, WriteOptions{})
	im := openBytes(t, img)
	if got, want := sha(t, io.NewSectionReader(im, 0, capacity)), sha(t, islands(9, capacity)); got != want {
		t.Fatalf("content SHA-256 %s, want %s", got, want)
	}
	le := binary.LittleEndian
	if string(img[:4]) != "KDMV" {
		t.Fatalf("magic %q", img[:4])
	}
	if v, f := le.Uint32(img[4:]), le.Uint32(img[8:]); v != 3 || f != 0x30001 {
		t.Fatalf("version %d flags %#x, want 3 and 0x30001", v, f)
	}
	if gd := le.Uint64(img[56:]); gd != gdAtEnd {
		t.Fatalf("header gdOffset %#x, want GD_AT_END", gd)
	}
	if ca := le.Uint16(img[77:]); ca != 1 {
		t.Fatalf("compressAlgorithm %d", ca)
	}
	end := len(img)
	eos, footer, fm := img[end-512:], img[end-1024:end-512], img[end-1536:end-1024]
	if !bytes.Equal(eos, make([]byte, 512)) {
		t.Fatal("last sector is not an end-of-stream marker")
	}
	if le.Uint64(fm) != 1 || le.Uint32(fm[8:]) != 0 || le.Uint32(fm[12:]) != markerFooter {
		t.Fatal("footer marker malformed")
	}
	if string(footer[:4]) != "KDMV" || le.Uint64(footer[56:]) == gdAtEnd {
		t.Fatal("footer is not a header with the grain directory offset")
	}
	// Walk the stream the way a streaming reader does: every sector after the
	// descriptor starts a grain marker or a metadata marker.
	pos := int64(1+descriptorSectors) * SectorSize
	var grains, gts int64
	lastLBA := int64(-1)
	for {
		m := img[pos:]
		lba, size := int64(le.Uint64(m)), le.Uint32(m[8:])
		if size != 0 {
			if lba <= lastLBA {
				t.Fatalf("grain LBA %d after %d: grains out of order", lba, lastLBA)
			}
			lastLBA = lba
			grains++
			pos += sectorsFor(grainMarkerSize+int64(size)) * SectorSize
			continue
		}
		typ := le.Uint32(m[12:])
		if typ == markerEOS {
			break
		}
		if typ == markerGT {
			gts++
		}
		pos += (1 + lba) * SectorSize
	}
	if pos != int64(end-512) {
		t.Fatalf("stream walk ended at %d, EOS marker is at %d", pos, end-512)
	}
	if grains != st.Grains || gts != st.GrainTables || gts != 2 {
		t.Fatalf("walk found %d grains and %d grain tables, stats %+v", grains, gts, st)
	}
}

func TestOmitsEmptyGrainTables(t *testing.T) {
	// 1 TiB of nothing: no grains, no grain tables, only the grain directory.
	const capacity = 1 << 40
	img, st := writeVMDK(t, bytes.NewReader(nil), capacity, WriteOptions{})
	if st.Grains != 0 || st.GrainTables != 0 || st.ZeroGrains != capacity/GrainSize {
		t.Fatalf("stats %+v", st)
	}
	// header + descriptor + GD marker + 128 KiB directory + footer marker + footer + EOS.
	if want := (1 + descriptorSectors + 1 + 256 + 3) * SectorSize; len(img) != want {
		t.Fatalf("empty 1 TiB image is %d bytes, want %d", len(img), want)
	}
	im := openBytes(t, img)
	p := make([]byte, 1<<20)
	if _, err := im.ReadAt(p, capacity/2); err != nil || !IsZero(p) {
		t.Fatalf("empty disk read: %v", err)
	}
}

func TestDeterministicAcrossConcurrency(t *testing.T) {
	const size = 4 << 20
	a, _ := writeVMDK(t, GenerateRaw(5, size), size, WriteOptions{Concurrency: 1})
	b, _ := writeVMDK(t, GenerateRaw(5, size), size, WriteOptions{Concurrency: 7})
	if !bytes.Equal(a, b) {
		t.Fatal("output depends on Concurrency")
	}
	c, _ := writeVMDK(t, GenerateRaw(5, size), size, WriteOptions{FileName: "other.vmdk"})
	if bytes.Equal(a, c) {
		t.Fatal("FileName does not reach the descriptor")
	}
}

func TestWriteErrors(t *testing.T) {
	if _, err := WriteStreamOptimized(io.Discard, GenerateRaw(1, 4096), 4096+512, WriteOptions{}); err != nil {
		t.Fatalf("shorter source must be fine: %v", err)
	}
	_, err := WriteStreamOptimized(io.Discard, GenerateRaw(1, 1<<20+1), 1<<20, WriteOptions{})
	if !errors.Is(err, ErrSourceTooLarge) {
		t.Fatalf("err = %v, want ErrSourceTooLarge", err)
	}
	if _, err := WriteStreamOptimized(io.Discard, GenerateRaw(1, 10), 1000, WriteOptions{}); err == nil {
		t.Fatal("capacity not a multiple of 512 accepted")
	}
	boom := errors.New("boom")
	_, err = WriteStreamOptimized(io.Discard, io.MultiReader(GenerateRaw(1, 3<<20), errReader{boom}), 8<<20, WriteOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("source error not propagated: %v", err)
	}
	_, err = WriteStreamOptimized(failWriter{boom}, GenerateRaw(1, 3<<20), 8<<20, WriteOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("write error not propagated: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestOpenRejectsDamage(t *testing.T) {
	const size = 2 << 20
	img, _ := writeVMDK(t, GenerateRaw(3, size), size, WriteOptions{})
	if _, err := Open(disk.BytesFile("t.vmdk", img[:len(img)-512], nil)); err == nil {
		t.Fatal("image without end-of-stream marker opened")
	}
	bad := bytes.Clone(img)
	bad[0] = 'X'
	if _, err := Open(disk.BytesFile("t.vmdk", bad, nil)); err == nil {
		t.Fatal("bad magic accepted")
	}
	// Corrupt the first grain's compressed data.
	bad = bytes.Clone(img)
	first := (1 + descriptorSectors) * SectorSize
	for i := first + grainMarkerSize; i < first+grainMarkerSize+64; i++ {
		bad[i] ^= 0xff
	}
	im := openBytes(t, bad)
	if err := im.(disk.Checker).Check(context.Background()); !errors.Is(err, disk.ErrFormat) {
		t.Fatalf("corrupted grain passed Check: %v", err)
	}
}

// TestMemoryFlat checks that the writer streams: converting four times more
// data must not allocate (materially) more memory.
func TestMemoryFlat(t *testing.T) {
	alloc := func(size int64) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := WriteStreamOptimized(io.Discard, GenerateRaw(11, size), size, WriteOptions{Concurrency: 4}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(16<<20), alloc(64<<20)
	if large > small+2<<20 || large > 32<<20 {
		t.Fatalf("16 MiB allocated %d KiB, 64 MiB allocated %d KiB: memory must not grow with the disk", small>>10, large>>10)
	}
}
