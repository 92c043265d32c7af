package vma_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

// readArchive reads b to the end with package vma, discarding the data.
func readArchive(b []byte) error {
	r, err := vma.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	_, err = r.Extract(context.Background(), vma.ExtractOptions{Open: func(vma.Device) (io.WriterAt, error) { return nil, nil }})
	return err
}

// small is a small, valid archive: two disks and a vmstate, interleaved,
// several extents.
func small(t testing.TB) []byte {
	t.Helper()
	return buildArchive(t, []disk{makeDisk("drive-scsi0", 70*vma.ClusterSize+4608, 5, 3), makeDisk("drive-scsi1", 3*vma.ClusterSize, 6, 2)},
		[]byte("ram state"), vmatest.Interleaved, false)
}

// blockinfo returns the offset of extent e's blockinfo slot i.
func blockinfo(e extentAt, i int) int { return e.off + 40 + 8*i }

// TestRefusesHostileArchives damages a valid archive one way at a time —
// each change re-checksummed where the point is to reach a deeper check —
// and expects a *FormatError that says what is wrong.
func TestRefusesHostileArchives(t *testing.T) {
	base := small(t)
	ext := splitExtents(base)
	if len(ext) < 2 {
		t.Fatalf("%d extents", len(ext))
	}
	be := binary.BigEndian
	first, second := ext[0], ext[1]
	cases := []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"bad magic", func(b []byte) []byte { b[3] = 'X'; return b }, "not a VMA archive"},
		{"header md5", func(b []byte) []byte { b[100]++; return b }, "MD5"},
		{"version 2", func(b []byte) []byte { be.PutUint32(b[4:], 2); resumHeader(b); return b }, "version 2"},
		{"header size huge", func(b []byte) []byte { be.PutUint32(b[56:], 1<<31); return b }, "header size"},
		{"header size small", func(b []byte) []byte { be.PutUint32(b[56:], 12288); return b }, "header size"},
		{"blob buffer past the header", func(b []byte) []byte { be.PutUint32(b[52:], 1<<20); resumHeader(b); return b }, "blob buffer"},
		{"blob buffer inside the fixed header", func(b []byte) []byte { be.PutUint32(b[48:], 100); resumHeader(b); return b }, "blob buffer offset"},
		{"blob length huge", func(b []byte) []byte {
			// The first blob (the first config's name) claims 65535 bytes:
			// the walk stops, no pointer resolves.
			b[12288+1], b[12288+2] = 0xff, 0xff
			resumHeader(b)
			return b
		}, "configuration slot 0"},
		{"config pointer into a blob", func(b []byte) []byte { be.PutUint32(b[2044:], 2); resumHeader(b); return b }, "configuration slot 0"},
		{"device name not NUL-terminated", func(b []byte) []byte {
			p := be.Uint32(b[4096+32:])
			at := 12288 + int(p)
			n := int(b[at]) | int(b[at+1])<<8
			b[at+2+n-1] = 'x'
			resumHeader(b)
			return b
		}, "no valid name"},
		{"device size without name", func(b []byte) []byte {
			be.PutUint32(b[4096+32*9:], 0)
			be.PutUint64(b[4096+32*9+8:], 4096)
			resumHeader(b)
			return b
		}, "device 9"},
		{"device beyond 64 TiB", func(b []byte) []byte { be.PutUint64(b[4096+32+8:], 1<<47); resumHeader(b); return b }, "beyond"},
		{"duplicate device name", func(b []byte) []byte { copy(b[4096+64:4096+68], b[4096+32:4096+36]); resumHeader(b); return b }, "repeats the name"},
		{"extent magic", func(b []byte) []byte { b[first.off] = 'X'; return b }, "magic"},
		{"extent md5", func(b []byte) []byte { b[blockinfo(first, 0)+7] ^= 1; return b }, "MD5"},
		{"extent uuid", func(b []byte) []byte { b[first.off+8] ^= 1; resumExtent(b, first.off); return b }, "uuid"},
		{"extent reserved", func(b []byte) []byte { b[first.off+5] = 1; resumExtent(b, first.off); return b }, "reserved"},
		{"block count", func(b []byte) []byte {
			be.PutUint16(b[first.off+6:], uint16(first.blocks+1))
			resumExtent(b, first.off)
			return b
		}, "block count"},
		{"block count huge", func(b []byte) []byte { be.PutUint16(b[first.off+6:], 65535); resumExtent(b, first.off); return b }, "block count"},
		{"unknown device", func(b []byte) []byte { b[blockinfo(first, 0)+3] = 77; resumExtent(b, first.off); return b }, "device 77 is not in the header"},
		{"device 0 with data", func(b []byte) []byte { b[blockinfo(first, 0)+3] = 0; resumExtent(b, first.off); return b }, "device 0"},
		{"blockinfo reserved byte", func(b []byte) []byte { b[blockinfo(first, 0)+2] = 1; resumExtent(b, first.off); return b }, "reserved byte"},
		{"cluster past the device", func(b []byte) []byte {
			// scsi1 has 3 clusters; point one of its entries at cluster 3.
			for i := range vma.MaxClustersPerExtent {
				if b[blockinfo(first, i)+3] == 2 {
					be.PutUint32(b[blockinfo(first, i)+4:], 3)
					break
				}
			}
			resumExtent(b, first.off)
			return b
		}, "past its end"},
		{"cluster number huge", func(b []byte) []byte {
			be.PutUint32(b[blockinfo(first, 0)+4:], 0xffffffff)
			resumExtent(b, first.off)
			return b
		}, "past its end"},
		{"duplicate cluster in one extent", func(b []byte) []byte {
			copy(b[blockinfo(first, 2):blockinfo(first, 2)+8], b[blockinfo(first, 0):blockinfo(first, 0)+8])
			resumExtent(b, first.off)
			return b
		}, "appears twice"},
		{"duplicate cluster across extents", func(b []byte) []byte {
			// Second extent's first entry renamed to a cluster the first
			// extent had, keeping its own mask (block count unchanged).
			var src []byte
			for i := range vma.MaxClustersPerExtent {
				e := b[blockinfo(first, i) : blockinfo(first, i)+8]
				if e[3] == b[blockinfo(second, 0)+3] {
					src = e
					break
				}
			}
			if src == nil {
				t.Fatal("the first extent has no cluster of the second's first device")
			}
			copy(b[blockinfo(second, 0)+4:blockinfo(second, 0)+8], src[4:8])
			resumExtent(b, second.off)
			return b
		}, "appears twice"},
		{"block past the device end", func(b []byte) []byte {
			// scsi0's last cluster holds one block and 512 bytes: two
			// blocks. Find its entry and set block 3 too (data count fixed).
			for _, e := range splitExtents(b) {
				for i := range vma.MaxClustersPerExtent {
					at := blockinfo(e, i)
					if b[at+3] == 1 && be.Uint32(b[at+4:]) == 70 {
						be.PutUint16(b[at:], be.Uint16(b[at:])|1<<3)
						be.PutUint16(b[e.off+6:], be.Uint16(b[e.off+6:])+1)
						resumExtent(b, e.off)
						// The extent now claims one more block: insert it.
						data := e.off + 512 + e.blocks*vma.BlockSize
						return append(b[:data:data], append(make([]byte, vma.BlockSize), b[data:]...)...)
					}
				}
			}
			t.Fatal("last cluster not found")
			return nil
		}, "past the device's end"},
		{"vmstate out of order", func(b []byte) []byte {
			for _, e := range splitExtents(b) {
				for i := range vma.MaxClustersPerExtent {
					at := blockinfo(e, i)
					if b[at+3] == 3 { // vmstate is device 3
						be.PutUint32(b[at+4:], 5)
						resumExtent(b, e.off)
						return b
					}
				}
			}
			t.Fatal("no vmstate cluster")
			return nil
		}, "vmstate cluster 5 out of order"},
		{"missing cluster", func(b []byte) []byte {
			// Drop the first extent's last entry and its data.
			last := -1
			for i := range vma.MaxClustersPerExtent {
				if be.Uint64(b[blockinfo(first, i):]) != 0 {
					last = i
				}
			}
			at := blockinfo(first, last)
			n := popcount(be.Uint16(b[at:]))
			clear(b[at : at+8])
			be.PutUint16(b[first.off+6:], uint16(first.blocks-n))
			resumExtent(b, first.off)
			end := first.off + 512 + first.blocks*vma.BlockSize
			return append(b[:end-n*vma.BlockSize:end-n*vma.BlockSize], b[end:]...)
		}, "is missing"},
		{"garbage after the last extent", func(b []byte) []byte { return append(b, 1, 2, 3) }, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.damage(bytes.Clone(base))
			err := readArchive(b)
			var fe *vma.FormatError
			if !errors.As(err, &fe) || !errors.Is(err, vma.ErrFormat) {
				t.Fatalf("got %v (%T), want a *vma.FormatError", err, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
	if err := readArchive(base); err != nil {
		t.Fatalf("the undamaged archive: %v", err)
	}
}

func popcount(m uint16) int {
	n := 0
	for ; m != 0; m &= m - 1 {
		n++
	}
	return n
}

// TestRefusesTruncatedArchives cuts a valid archive at many lengths — in
// the header, in extent headers, in data, and exactly at extent boundaries
// (where only the missing-cluster check can tell) — and expects a
// FormatError every time, never a clean end.
func TestRefusesTruncatedArchives(t *testing.T) {
	b := small(t)
	cuts := []int{0, 1, 4, 100, 12288, 12289}
	for _, e := range splitExtents(b) {
		cuts = append(cuts, e.off, e.off+1, e.off+511, e.off+512, e.off+512+e.blocks*vma.BlockSize/2)
	}
	for n := 0; n < len(b); n += 7919 {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		if n >= len(b) {
			continue
		}
		err := readArchive(b[:n])
		if !errors.Is(err, vma.ErrFormat) {
			t.Fatalf("cut at %d of %d: %v, want a FormatError", n, len(b), err)
		}
	}
	// Cut at the last extent boundary: the disks are incomplete.
	ext := splitExtents(b)
	err := readArchive(b[:ext[len(ext)-1].off])
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("cut at the last extent: %v", err)
	}
}

// failingReader returns an I/O error after n bytes.
type failingReader struct {
	r io.Reader
	n int
}

var errLine = errors.New("connection reset")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errLine
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestPassesStreamErrors: an I/O error of the stream is returned as such
// (wrapped), not dressed up as a malformed archive.
func TestPassesStreamErrors(t *testing.T) {
	b := small(t)
	for _, n := range []int{10, 20000, len(b) / 2} {
		r, err := vma.NewReader(&failingReader{r: bytes.NewReader(b), n: n})
		if err == nil {
			_, err = r.Extract(context.Background(), vma.ExtractOptions{Open: func(vma.Device) (io.WriterAt, error) { return nil, nil }})
		}
		if !errors.Is(err, errLine) || errors.Is(err, vma.ErrFormat) {
			t.Fatalf("error after %d bytes: %v", n, err)
		}
	}
}
