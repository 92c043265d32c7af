package vhdx

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

// A VHDX is MiB-aligned and mostly zeros, so fuzz inputs describe images
// sparsely: a flags byte (bit 0: recompute the header and region table
// checksums after expansion, so mutations get past them), then records of
// uvarint count of zero bytes, uvarint length, and that many bytes. The
// expanded image is at most maxFuzzImage bytes.
const maxFuzzImage = 8 << 20

func expandFuzz(in []byte) []byte {
	if len(in) == 0 {
		return nil
	}
	flags, in := in[0], in[1:]
	var out []byte
	for len(in) > 0 {
		gap, n := binary.Uvarint(in)
		if n <= 0 {
			break
		}
		in = in[n:]
		length, n := binary.Uvarint(in)
		if n <= 0 {
			break
		}
		in = in[n:]
		length = min(length, uint64(len(in)))
		if gap > maxFuzzImage || uint64(len(out))+gap+length > maxFuzzImage {
			break
		}
		out = append(out, make([]byte, gap)...)
		out = append(out, in[:length]...)
		in = in[length:]
	}
	if flags&1 != 0 {
		for _, c := range []struct{ at, n int }{{64 << 10, 4 << 10}, {128 << 10, 4 << 10}, {192 << 10, 64 << 10}, {256 << 10, 64 << 10}} {
			if len(out) >= c.at+c.n {
				specCRC(out[c.at:c.at+c.n], 4)
			}
		}
	}
	return out
}

// compressFuzz is the inverse of expandFuzz for seeds: runs of non-zero
// bytes with the zero gaps between them.
func compressFuzz(img []byte, flags byte) []byte {
	out := []byte{flags}
	pos := 0
	for pos < len(img) {
		start := pos
		for start < len(img) && img[start] == 0 {
			start++
		}
		if start == len(img) {
			// Trailing zeros: one record pads the image to its length.
			out = binary.AppendUvarint(out, uint64(len(img)-pos))
			return binary.AppendUvarint(out, 0)
		}
		from, end := start, start
		for end < len(img) {
			z := end
			for z < len(img) && img[z] == 0 && z-end < 32 {
				z++
			}
			if z == len(img) || z-end >= 32 {
				break
			}
			end = z + 1
		}
		out = binary.AppendUvarint(out, uint64(start-pos))
		out = binary.AppendUvarint(out, uint64(end-from))
		out = append(out, img[from:end]...)
		pos = end
	}
	return out
}

// Fuzz fixtures: tiny disks with 1 MiB blocks and a little data.
const fuzzParentWrite = "{2e4f6a8c-0b1d-4f3e-8a5c-7e9f0a1b2c3d}"

func fuzzParent() []byte {
	fx := &fixture{virtualSize: 2 << 20, blockSize: 1 << 20, dataWriteGUID: fuzzParentWrite, size: 5 << 20,
		bat: map[int]uint64{0: fxEntry(fxFull, fxDataOffset)}, writes: map[int64][]byte{fxDataOffset: pattern(20, 96)}}
	return fx.image()
}

func fuzzSeeds() map[string][]byte {
	dyn := func() *fixture {
		return &fixture{virtualSize: 3<<20 + 512, blockSize: 1 << 20, size: 6 << 20,
			bat:    map[int]uint64{0: fxEntry(fxFull, fxDataOffset), 2: fxEntry(fxZero, 0), 3: fxEntry(fxFull, fxDataOffset+1<<20)},
			writes: map[int64][]byte{fxDataOffset + 4000: pattern(21, 64), fxDataOffset + 1<<20: pattern(22, 512)}}
	}
	fixed := &fixture{virtualSize: 2 << 20, blockSize: 1 << 20, params: 1, size: 6 << 20,
		bat:    map[int]uint64{0: fxEntry(fxFull, fxDataOffset), 1: fxEntry(fxFull, fxDataOffset+1<<20)},
		writes: map[int64][]byte{fxDataOffset: pattern(23, 32), fxDataOffset + 2<<20 - 32: pattern(24, 32)}}
	bitmap := []byte{0x0f, 0, 0, 0x80}
	child := &fixture{virtualSize: 2 << 20, blockSize: 1 << 20, params: 2, size: 6 << 20,
		locator: [][2]string{{"parent_linkage", fuzzParentWrite}, {"relative_path", `..\p\parent.vhdx`}, {"absolute_win32_path", `C:\p\parent.vhdx`}},
		// Chunk ratio 2^23 × 512 / 1 MiB = 4096: the bitmap entry is 4096.
		bat:    map[int]uint64{0: fxEntry(fxPartial, fxDataOffset), 4096: fxEntry(fxSBPresent, fxDataOffset+1<<20)},
		writes: map[int64][]byte{fxDataOffset: pattern(25, 1024), fxDataOffset + 1<<20: bitmap}}
	logImg, _ := loggedWith(200)

	seeds := map[string][]byte{
		"dynamic":      compressFuzz(dyn().image(), 0),
		"dynamic-fix":  compressFuzz(dyn().image(), 1),
		"fixed":        compressFuzz(fixed.image(), 1),
		"differencing": compressFuzz(child.image(), 1),
		"logged":       compressFuzz(logImg, 0),
	}
	bad := dyn().image()
	bad[64<<10+200] ^= 1
	bad[128<<10+200] ^= 1
	seeds["bad-headers"] = compressFuzz(bad, 0)
	overlap := dyn()
	overlap.bat[3] = fxEntry(fxFull, fxDataOffset)
	seeds["overlap"] = compressFuzz(overlap.image(), 0)
	huge := dyn()
	huge.virtualSize = 64 << 40
	seeds["huge"] = compressFuzz(huge.image(), 0)
	return seeds
}

// TestFuzzCorpus writes the seed corpus when VHDX_WRITE_CORPUS is set and
// otherwise checks that each seed expands to the image it stands for.
func TestFuzzCorpus(t *testing.T) {
	seeds := fuzzSeeds()
	if os.Getenv("VHDX_WRITE_CORPUS") != "" {
		dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, want := logged()
	if got := expandFuzz(compressFuzz(b, 0)); string(got) != string(b) {
		t.Fatalf("compress/expand changes the image (%d bytes back for %d)", len(got), len(b))
	}
	img, err := Open(disk.BytesFile("f.vhdx", expandFuzz(seeds["differencing"]), map[string][]byte{"parent.vhdx": fuzzParent()}))
	if err != nil {
		t.Fatalf("the differencing seed does not open: %v", err)
	}
	img.Close()
	_ = want
}

// FuzzOpen opens expanded inputs as a VHDX (with a fixed parent for
// differencing images) and exercises it (disktest.Exercise: extents, at
// most 65,536 of them, data — at most 16 MiB read — and Check). Every
// refusal is a FormatError.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	parent := fuzzParent()
	f.Fuzz(func(t *testing.T, in []byte) {
		img, err := Open(disk.BytesFile("f.vhdx", expandFuzz(in), map[string][]byte{"parent.vhdx": parent}))
		if err != nil {
			disktest.RequireFormatError(t, "Open", err)
			return
		}
		defer img.Close()
		disktest.Exercise(t, img, disktest.Limits{Read: 16 << 20, Extents: 1 << 16})
	})
}
