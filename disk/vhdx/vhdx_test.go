package vhdx

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

// testSize is the standard test disk's size here: 72 MiB and 9 sectors,
// so the last 32 MiB block is partial and the size is no multiple of
// 64 KiB (VHDX needs only whole logical sectors).
const testSize = 72<<20 + 4608

// readAll reads the whole virtual disk through ReadAt in odd-sized pieces,
// concurrently, so block and sector boundaries fall mid-read.
func readAll(t *testing.T, img disk.Image) []byte {
	t.Helper()
	size := img.Info().VirtualSize
	out := make([]byte, size)
	const piece = 3<<20 + 1536
	var wg sync.WaitGroup
	errs := make(chan error, size/piece+1)
	for off := int64(0); off < size; off += piece {
		wg.Add(1)
		go func(off int64) {
			defer wg.Done()
			end := min(off+piece, size)
			n, err := img.ReadAt(out[off:end], off)
			if err == io.EOF && n == int(end-off) {
				err = nil
			}
			if err != nil || n != int(end-off) {
				errs <- fmt.Errorf("ReadAt %d: %d bytes, %v", off, n, err)
			}
		}(off)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// checkExtents checks that extents ascend, do not touch, cover every
// non-zero byte of want, and returns the bytes they cover.
func checkExtents(t *testing.T, img disk.Image, want []byte) int64 {
	t.Helper()
	var covered int64
	inExtent := make([]bool, (len(want)+511)/512)
	for _, e := range disktest.Extents(t, img) {
		if e.End() > int64(len(want)) {
			t.Fatalf("extent %+v: past the %d bytes of the source", e, len(want))
		}
		for s := e.Offset / 512; s*512 < e.End(); s++ {
			inExtent[s] = true
		}
		covered += e.Length
	}
	for s, in := range inExtent {
		end := min(int64(s+1)*512, int64(len(want)))
		if !in && !isZero(want[int64(s)*512:end]) {
			t.Fatalf("sector %d holds data but no extent covers it", s)
		}
	}
	return covered
}

func isZero(b []byte) bool { return disk.IsZero(b) }

func TestWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	disktest.WriteImage(t, raw, testSize, 11)
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, bs := range []int64{0, 1 << 20, 8 << 20} {
		t.Run(fmt.Sprintf("block=%d", bs), func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("disk-%d.vhdx", bs))
			disktest.WriteFromRaw(t, Write, raw, out, disk.WriteOptions{ClusterSize: bs})

			info := disktest.QemuInfo(t, out, "")
			if info.Format != "vhdx" || info.VirtualSize != testSize {
				t.Fatalf("qemu-img info: format %q size %d, want vhdx %d", info.Format, info.VirtualSize, testSize)
			}
			disktest.Check(t, out, "vhdx")
			disktest.Compare(t, raw, "raw", out, "vhdx")

			img := disktest.OpenImage(t, out, Open)
			wantBlock := bs
			if wantBlock == 0 {
				wantBlock = defaultBlockSize
			}
			if got := img.Info(); got.Format != disk.VHDX || got.Subformat != "dynamic" || got.VirtualSize != testSize || got.ClusterSize != wantBlock {
				t.Fatalf("Info = %+v", got)
			}
			if !bytes.Equal(readAll(t, img), want) {
				t.Fatal("read back differs from the source")
			}
			checkExtents(t, img, want)
			if err := img.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
			// Holes stay holes: the file holds little beyond the source's data.
			if a, d := disktest.Allocated(t, out), disktest.Allocated(t, raw); a > d+2<<20 {
				t.Fatalf("the VHDX allocates %d bytes for %d bytes of source data", a, d)
			}
		})
	}
}

func TestWriteRefuses(t *testing.T) {
	src := disk.FromReader(bytes.NewReader(make([]byte, 4096)), 4096)
	var buf disktest.MemTarget
	for _, o := range []disk.WriteOptions{{Subformat: "fixed"}, {ClusterSize: 3 << 20}, {ClusterSize: 512 << 20}} {
		err := Write(context.Background(), &buf, src, o)
		if err == nil {
			t.Fatalf("Write with %+v succeeded", o)
		}
		if o.Subformat != "" && !strings.Contains(err.Error(), `"dynamic"`) {
			t.Fatalf("refusal does not name the allowed subformat: %v", err)
		}
	}
	if err := Write(context.Background(), &buf, disk.FromReader(bytes.NewReader(make([]byte, 1000)), 1000), disk.WriteOptions{}); err == nil {
		t.Fatal("Write of a 1000-byte disk succeeded: VHDX disks are whole sectors")
	}
}

// TestReadQemuImages reads what qemu-img writes: dynamic and fixed, three
// block sizes, and a larger log.
func TestReadQemuImages(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	const size = 40<<20 + 4608
	disktest.WriteImage(t, raw, size, 5)
	want, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, sub string
		opts      []string
	}{
		{"dynamic-1M", "dynamic", []string{"subformat=dynamic", "block_size=1M"}},
		{"dynamic-8M", "dynamic", []string{"subformat=dynamic", "block_size=8M"}},
		{"dynamic-32M", "dynamic", []string{"subformat=dynamic", "block_size=32M"}},
		{"dynamic-log4M", "dynamic", []string{"subformat=dynamic", "log_size=4M"}},
		{"fixed-8M", "fixed", []string{"subformat=fixed", "block_size=8M"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name+".vhdx")
			disktest.Convert(t, raw, "raw", out, "vhdx", c.opts...)
			img := disktest.OpenImage(t, out, Open)
			if got := img.Info(); got.Subformat != c.sub || got.VirtualSize != size {
				t.Fatalf("Info = %+v, want %s of %d bytes", got, c.sub, size)
			}
			if !bytes.Equal(readAll(t, img), want) {
				t.Fatal("read differs from the source")
			}
			checkExtents(t, img, want)
			if err := img.Check(context.Background()); err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}
