package vhd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

const mib = 1 << 20

// testSize is the standard test disk's size here: not a multiple of 64 KiB
// nor of 1 MiB, so the fixed writer rounds it up (to 41 MiB).
const testSize = 40*mib + 4608

// assertReadsAs fails unless img reads as want followed by zeros up to its
// virtual size, in odd-sized chunks.
func assertReadsAs(t *testing.T, img disk.Image, want []byte) {
	t.Helper()
	size := img.Info().VirtualSize
	if size < int64(len(want)) {
		t.Fatalf("virtual size %d is less than the %d source bytes", size, len(want))
	}
	buf := make([]byte, 3*mib+1234)
	for off := int64(0); off < size; {
		n, err := img.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("ReadAt %d: %v", off, err)
		}
		if n == 0 {
			t.Fatalf("ReadAt %d: no progress (%v)", off, err)
		}
		got := buf[:n]
		for i := 0; i < n; {
			pos := off + int64(i)
			if pos < int64(len(want)) {
				k := min(n-i, len(want)-int(pos))
				if !bytes.Equal(got[i:i+k], want[pos:pos+int64(k)]) {
					t.Fatalf("bytes at %d..%d differ from the source", pos, pos+int64(k))
				}
				i += k
				continue
			}
			if !disk.IsZero(got[i:]) {
				t.Fatalf("bytes past the source at %d are not zero", pos)
			}
			break
		}
		off += int64(n)
	}
	if n, err := img.ReadAt(buf[:1], size); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the virtual size: %d, %v; want 0, io.EOF", n, err)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	disktest.WriteImage(t, src, testSize, 11)
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subformat string
		size      int64
		cluster   int64
		chs       [3]int // by hand: 17 sectors per track, 5 heads
	}{
		{"fixed", 41 * mib, 0, [3]int{987, 5, 17}},
		{"dynamic", testSize, DefaultBlockSize, [3]int{963, 5, 17}},
		{"", testSize, DefaultBlockSize, [3]int{963, 5, 17}},
	} {
		name := tc.subformat
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name+".vhd")
			disktest.WriteFromRaw(t, Write, src, out, disk.WriteOptions{Subformat: tc.subformat})

			info := disktest.QemuInfo(t, out, "vpc")
			if info.VirtualSize != tc.size {
				t.Fatalf("qemu-img sees %d bytes, want %d", info.VirtualSize, tc.size)
			}
			disktest.Compare(t, src, "raw", out, "vpc")
			assertFooters(t, out, tc.size, tc.chs, tc.subformat != "fixed")

			im := disktest.OpenImage(t, out, Open)
			wantSub := tc.subformat
			if wantSub == "" {
				wantSub = "dynamic"
			}
			if got := im.Info(); got.Format != disk.VHD || got.Subformat != wantSub || got.VirtualSize != tc.size || got.ClusterSize != tc.cluster {
				t.Fatalf("Info = %+v", got)
			}
			if err := im.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			assertReadsAs(t, im, want)
			disktest.Extents(t, im)

			// Holes stay holes: the test disk's holes and written zeros
			// are not data in the image.
			rawAlloc, vhdAlloc := disktest.Allocated(t, src), disktest.Allocated(t, out)
			t.Logf("%s: source allocates %d bytes, the image %d", name, rawAlloc, vhdAlloc)
			if vhdAlloc > rawAlloc {
				t.Fatalf("the image allocates %d bytes, more than the %d of the sparse source", vhdAlloc, rawAlloc)
			}
		})
	}
}

// assertFooters checks the footer we wrote against the specification: the
// creator fields that make every reader take Current Size, the sizes, the
// geometry, the checksum, and for a dynamic disk the identical copy at 0
// and the header right after it.
func assertFooters(t *testing.T, path string, size int64, chs [3]int, dynamic bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ft := bytes.Clone(b[len(b)-512:])
	if string(ft[:8]) != "conectix" || string(ft[28:32]) != "win " || string(ft[36:40]) != "Wi2k" {
		t.Fatalf("footer cookie %q, creator %q, host %q", ft[:8], ft[28:32], ft[36:40])
	}
	if be.Uint64(ft[40:]) != uint64(size) || be.Uint64(ft[48:]) != uint64(size) {
		t.Fatalf("footer sizes %d, %d; want %d", be.Uint64(ft[40:]), be.Uint64(ft[48:]), size)
	}
	if got := [3]int{int(be.Uint16(ft[56:])), int(ft[58]), int(ft[59])}; got != chs {
		t.Fatalf("geometry %v for %d bytes, want %v", got, size, chs)
	}
	sum := be.Uint32(ft[64:])
	specSum(ft, 64)
	if be.Uint32(ft[64:]) != sum {
		t.Fatalf("footer checksum %#x, want %#x", sum, be.Uint32(ft[64:]))
	}
	wantType := uint32(typeFixed)
	if dynamic {
		wantType = typeDynamic
		if !bytes.Equal(b[:512], b[len(b)-512:]) {
			t.Fatal("the footer copy at 0 differs from the footer")
		}
		if string(b[512:520]) != "cxsparse" || be.Uint64(ft[16:]) != 512 {
			t.Fatalf("no dynamic header at 512 (Data Offset %d)", be.Uint64(ft[16:]))
		}
	} else if len(b) != int(size)+512 {
		t.Fatalf("fixed file is %d bytes, want %d", len(b), size+512)
	}
	if be.Uint32(ft[60:]) != wantType {
		t.Fatalf("disk type %d, want %d", be.Uint32(ft[60:]), wantType)
	}
}

// TestDynamicExtentsAreTheData checks that a dynamic image we write maps
// exactly the source's non-zero sectors: zero sectors inside written blocks
// are holes with clear bitmap bits, all-zero blocks are absent.
func TestDynamicExtentsAreTheData(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	disktest.WriteImage(t, src, 9*mib+1536, 5)
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "d.vhd")
	disktest.WriteFromRaw(t, Write, src, out, disk.WriteOptions{ClusterSize: 512 << 10})
	disktest.Compare(t, src, "raw", out, "vpc")
	im := disktest.OpenImage(t, out, Open)
	var mapped int64
	for _, e := range disktest.Extents(t, im) {
		mapped += e.Length
		if e.Offset%512 != 0 || e.Length%512 != 0 {
			t.Fatalf("extent %+v is not whole sectors", e)
		}
	}
	var nonZero int64
	for off := 0; off < len(want); off += 512 {
		if !disk.IsZero(want[off:min(off+512, len(want))]) {
			nonZero += 512
		}
	}
	if mapped != nonZero {
		t.Fatalf("extents map %d bytes, the source has %d bytes of non-zero sectors", mapped, nonZero)
	}
	if im.Info().ClusterSize != 512<<10 {
		t.Fatalf("block size %d, want 512 KiB", im.Info().ClusterSize)
	}
}

// TestWriteFromStream writes a source with no extent map (one extent of the
// whole disk): the writer finds the zeros itself.
func TestWriteFromStream(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	disktest.WriteImage(t, src, 12*mib+512, 3)
	for _, sub := range []string{"dynamic", "fixed"} {
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, sub+".vhd")
		o, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := Write(context.Background(), o, disk.FromReader(in, 12*mib+512), disk.WriteOptions{Subformat: sub}); err != nil {
			t.Fatal(err)
		}
		o.Close()
		in.Close()
		disktest.Compare(t, src, "raw", out, "vpc")
		if a, r := disktest.Allocated(t, out), disktest.Allocated(t, src); a > r {
			t.Fatalf("%s: %d bytes allocated, more than the source's %d", sub, a, r)
		}
	}
}

func TestReadQemuImages(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	disktest.WriteImage(t, src, testSize, 23)
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []string{"subformat=fixed", "subformat=dynamic", "subformat=fixed,force_size=on", "subformat=dynamic,force_size=on"} {
		t.Run(opts, func(t *testing.T) {
			out := filepath.Join(dir, strings.NewReplacer("=", "-", ",", "-").Replace(opts)+".vhd")
			disktest.Convert(t, src, "raw", out, "vpc", opts)
			qemu := disktest.QemuInfo(t, out, "vpc")
			im := disktest.OpenImage(t, out, Open)
			if im.Info().VirtualSize != qemu.VirtualSize {
				t.Fatalf("virtual size %d, qemu-img says %d", im.Info().VirtualSize, qemu.VirtualSize)
			}
			if err := im.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			assertReadsAs(t, im, want)
			disktest.Extents(t, im)

			// What our reader yields, as a raw file, is what qemu reads.
			rawOut := filepath.Join(dir, "back.raw")
			f, err := os.Create(rawOut)
			if err != nil {
				t.Fatal(err)
			}
			if err := disk.WriteRaw(context.Background(), f, disk.FromImage(im), disk.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			disktest.Compare(t, rawOut, "raw", out, "vpc")
		})
	}
}

// TestGeometryMatchesQemu compares the CHS algorithm with qemu-img's, which
// implements the same appendix of the specification: for the size qemu
// settles on (its Current Size), our geometry is the one in its footer.
func TestGeometryMatchesQemu(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []string{"1M", "20M", "41M", "127M", "500M", "1G", "4G", "31G", "100G", "127G", "200G", "2000G"} {
		p := filepath.Join(dir, size+".vhd")
		disktest.Run(t, "create", "-q", "-f", "vpc", "-o", "subformat=fixed", p, size)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		b := make([]byte, 512)
		if _, err := f.ReadAt(b, fi.Size()-512); err != nil {
			t.Fatal(err)
		}
		f.Close()
		os.Remove(p)
		cur := int64(be.Uint64(b[48:]))
		c, h, s := geometry(cur)
		if c != be.Uint16(b[56:]) || h != b[58] || s != b[59] {
			t.Errorf("%s (Current Size %d): geometry %d/%d/%d, qemu wrote %d/%d/%d", size, cur, c, h, s, be.Uint16(b[56:]), b[58], b[59])
		}
	}
}

func TestWriteRefusesOptions(t *testing.T) {
	src := disk.FromReader(bytes.NewReader(make([]byte, 4096)), 4096)
	var buf disktest.MemTarget
	err := Write(context.Background(), &buf, src, disk.WriteOptions{Subformat: "streamOptimized"})
	if err == nil || !strings.Contains(err.Error(), `"fixed" or "dynamic"`) {
		t.Fatalf("subformat streamOptimized: %v, want a refusal naming fixed and dynamic", err)
	}
	for _, tc := range []struct {
		subformat string
		size      int64
		says      string
	}{
		{"fixed", 0, "1 byte to 64 TiB"},
		{"dynamic", 0, "VHDX holds more"},
		{"dynamic", 2041 << 30, "VHDX holds more"},
		{"fixed", 65 << 40, "1 byte to 64 TiB"},
	} {
		err := Write(context.Background(), &buf, disk.FromReader(bytes.NewReader(nil), tc.size), disk.WriteOptions{Subformat: tc.subformat})
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("%s of %d bytes: %v, want a refusal saying %q", tc.subformat, tc.size, err, tc.says)
		}
	}
	for _, bs := range []int64{3000, 256, 512 << 20} {
		err := Write(context.Background(), &buf, src, disk.WriteOptions{ClusterSize: bs})
		if err == nil || !strings.Contains(err.Error(), "power of two") {
			t.Fatalf("block size %d: %v, want a refusal", bs, err)
		}
	}
}

// TestWriteTinyDisks covers sizes below one block and one MiB, and sizes
// that are not sector multiples.
func TestWriteTinyDisks(t *testing.T) {
	for _, size := range []int{1, 511, 512, 4096 + 17} {
		data := bytes.Repeat([]byte{0xA5}, size)
		for _, sub := range []string{"fixed", "dynamic"} {
			var out disktest.MemTarget
			if err := Write(context.Background(), &out, disk.FromReader(bytes.NewReader(data), int64(size)), disk.WriteOptions{Subformat: sub, ClusterSize: 4096}); err != nil {
				t.Fatalf("%s %d: %v", sub, size, err)
			}
			im, err := Open(disk.BytesFile("tiny.vhd", out.Bytes(), nil))
			if err != nil {
				t.Fatalf("%s %d: %v", sub, size, err)
			}
			wantSize := (int64(size) + 511) / 512 * 512
			if sub == "fixed" {
				wantSize = mib
			}
			if im.Info().VirtualSize != wantSize {
				t.Fatalf("%s %d: virtual size %d, want %d", sub, size, im.Info().VirtualSize, wantSize)
			}
			assertReadsAs(t, im, data)
		}
	}
}

func TestConcurrentReads(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	disktest.WriteImage(t, src, 8*mib+512, 9)
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "d.vhd")
	disktest.WriteFromRaw(t, Write, src, out, disk.WriteOptions{})
	im := disktest.OpenImage(t, out, Open)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 70001)
			for off := int64(g * 4099); off < int64(len(want)); off += 611_000 {
				n, err := im.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
					errs <- fmt.Errorf("goroutine %d: bytes at %d differ", g, off)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDetect(t *testing.T) {
	footer := specFooter(specFooterFields{size: 4096, diskType: typeFixed, dataOffset: ^uint64(0)})
	data := make([]byte, 4096)
	fixed := append(append([]byte{}, data...), footer...)
	old := append(append([]byte{}, data...), footer[:511]...)
	for _, tc := range []struct {
		name       string
		head, tail []byte
		want       bool
	}{
		{"fixed", fixed[:512], fixed[len(fixed)-512:], true},
		{"fixed 511-byte footer", old[:512], old[len(old)-512:], true},
		{"dynamic", footer, make([]byte, 512), true},
		{"raw", data[:512], data[len(data)-512:], false},
		{"short", []byte("conec"), []byte("tix"), false},
	} {
		if got := Detect(tc.head, tc.tail); got != tc.want {
			t.Errorf("%s: Detect = %v, want %v", tc.name, got, tc.want)
		}
	}
}
