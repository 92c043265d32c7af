package azurefake

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
)

// PageSize is a page blob's page: writes and page ranges are whole pages.
const PageSize = 512

// chunkSize is the unit Content stores: 128 pages.
const chunkSize = 64 << 10

const (
	mib = 1 << 20
	gib = 1 << 30
)

// chunk is chunkSize bytes of a disk and which of its pages were written.
type chunk struct {
	data    []byte
	written [chunkSize / PageSize / 64]uint64
}

// Content is a managed disk's bytes: a virtual size (a whole number of
// MiB, as Azure requires) of which only the pages ever written are stored,
// in 64 KiB chunks, so a large disk costs what it holds. Written pages are
// what Get Page Ranges lists, zeros included, as Azure lists a page once
// written whatever it holds.
//
// A Content is safe for concurrent use; Clone copies it (a snapshot).
type Content struct {
	size int64

	mu     sync.RWMutex
	chunks map[int64]*chunk
}

// NewContent returns an all-hole disk of size bytes, a positive multiple of
// 1 MiB.
func NewContent(size int64) (*Content, error) {
	if size <= 0 || size%mib != 0 {
		return nil, fmt.Errorf("azurefake: a disk size of %d bytes is not a positive whole number of MiB", size)
	}
	return &Content{size: size, chunks: map[int64]*chunk{}}, nil
}

// Size is the disk's virtual size in bytes.
func (c *Content) Size() int64 { return c.size }

// WriteAt writes p at off; both must be whole pages, inside the disk.
func (c *Content) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off%PageSize != 0 || len(p)%PageSize != 0 || off+int64(len(p)) > c.size {
		return 0, fmt.Errorf("azurefake: write of %d bytes at %d: not whole pages inside the %d-byte disk", len(p), off, c.size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for done := 0; done < len(p); {
		pos := off + int64(done)
		idx, within := pos/chunkSize, pos%chunkSize
		ch := c.chunks[idx]
		if ch == nil {
			ch = &chunk{data: make([]byte, chunkSize)}
			c.chunks[idx] = ch
		}
		n := copy(ch.data[within:], p[done:])
		for pg := within / PageSize; pg < (within+int64(n))/PageSize; pg++ {
			ch.written[pg/64] |= 1 << (pg % 64)
		}
		done += n
	}
	return len(p), nil
}

// WriteRandom writes n pseudo-random bytes (whole pages) at off, derived
// from seed: the same call always writes the same bytes.
func (c *Content) WriteRandom(off, n int64, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(off)))
	buf := make([]byte, min(n, mib))
	for done := int64(0); done < n; {
		part := buf[:min(n-done, int64(len(buf)))]
		for i := 0; i+8 <= len(part); i += 8 {
			v := rng.Uint64()
			for k := range 8 {
				part[i+k] = byte(v >> (8 * k))
			}
		}
		if _, err := c.WriteAt(part, off+done); err != nil {
			return err
		}
		done += int64(len(part))
	}
	return nil
}

// ReadAt reads the disk's bytes (zeros where never written).
func (c *Content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > c.size {
		return 0, fmt.Errorf("azurefake: read at %d outside the %d-byte disk", off, c.size)
	}
	n := len(p)
	var err error
	if int64(n) > c.size-off {
		n, err = int(c.size-off), io.EOF
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for done := 0; done < n; {
		pos := off + int64(done)
		idx, within := pos/chunkSize, pos%chunkSize
		k := min(n-done, int(chunkSize-within))
		if ch := c.chunks[idx]; ch != nil {
			copy(p[done:done+k], ch.data[within:])
		} else {
			clear(p[done : done+k])
		}
		done += k
	}
	return n, err
}

// Range is a run of written pages: [Offset, Offset+Length).
type Range struct{ Offset, Length int64 }

// End is the first byte after the range.
func (r Range) End() int64 { return r.Offset + r.Length }

// Ranges are the runs of written pages, ascending and merged: what Get Page
// Ranges reports of the disk's blob.
func (c *Content) Ranges() []Range {
	c.mu.RLock()
	idxs := make([]int64, 0, len(c.chunks))
	for i := range c.chunks {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	var out []Range
	for _, i := range idxs {
		ch := c.chunks[i]
		for w, word := range ch.written {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &^= 1 << b
				off := i*chunkSize + int64(w*64+b)*PageSize
				if n := len(out); n > 0 && out[n-1].End() == off {
					out[n-1].Length += PageSize
				} else {
					out = append(out, Range{Offset: off, Length: PageSize})
				}
			}
		}
	}
	c.mu.RUnlock()
	return out
}

// Clone returns a copy of the disk as it is now.
func (c *Content) Clone() *Content {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := &Content{size: c.size, chunks: make(map[int64]*chunk, len(c.chunks))}
	for i, ch := range c.chunks {
		cp := &chunk{data: slices.Clone(ch.data), written: ch.written}
		out.chunks[i] = cp
	}
	return out
}

// SHA256 is the digest of the disk's whole virtual content.
func (c *Content) SHA256() [32]byte {
	h := sha256.New()
	buf := make([]byte, mib)
	for off := int64(0); off < c.size; off += int64(len(buf)) {
		n, _ := c.ReadAt(buf, off)
		h.Write(buf[:n])
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// WriteRawImage writes the disk as a sparse raw image at path (the written
// pages as data, the rest holes), for qemu-img compare.
func (c *Content) WriteRawImage(path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := f.Truncate(c.size); err != nil {
		return err
	}
	buf := make([]byte, mib)
	for _, r := range c.Ranges() {
		for off := r.Offset; off < r.End(); {
			n := min(r.End()-off, int64(len(buf)))
			if _, err := c.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return err
			}
			off += n
		}
	}
	return nil
}

// NewSampleContent returns a disk of sizeMiB laid out like a real one for
// the tests and the demo: a boot region at the start, data regions whose
// ends fall inside 4 MiB cells and away from any power of two, a run of
// written zero pages (listed by Get Page Ranges, holding nothing), and
// data in the disk's last partial megabyte up to its very last page.
func NewSampleContent(sizeMiB int64, seed uint64) (*Content, error) {
	if sizeMiB < 16 {
		return nil, fmt.Errorf("azurefake: a sample disk needs at least 16 MiB, not %d", sizeMiB)
	}
	c, err := NewContent(sizeMiB * mib)
	if err != nil {
		return nil, err
	}
	size := c.size
	for _, w := range []struct{ off, n int64 }{
		{0, 1 * mib}, // boot sector and partition table region
		{3*mib + 17*PageSize, 2*mib + 5*PageSize}, // ends inside the second 4 MiB cell
		{size/2 + 3*PageSize, 700 * PageSize},     // in the middle, unaligned both ends
		{size - 3*mib - 9*PageSize, 2 * mib},      // crosses a cell boundary near the end
		{size - 4*PageSize, 4 * PageSize},         // the disk's very last pages
	} {
		if err := c.WriteRandom(w.off, w.n, seed+uint64(w.off)); err != nil {
			return nil, err
		}
	}
	// Written zeros: listed, not data.
	if _, err := c.WriteAt(make([]byte, 64*PageSize), 9*mib); err != nil {
		return nil, err
	}
	return c, nil
}
