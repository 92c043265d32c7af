package gcpfake

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
)

const (
	gib = int64(1) << 30
	// cell is the unit the disk model stores written bytes in.
	cell = int64(1) << 20
)

// A Disk is a persistent disk's content: SizeGB GiB of virtual size (Compute
// Engine's sizeGb is in GiB), of which only the 1 MiB cells ever written are
// stored, so a multi-GiB disk costs what it holds. Stored cells are
// immutable (a write replaces the cell): a snapshot is a copy of the map.
// A Disk is safe for concurrent use.
type Disk struct {
	Name   string
	SizeGB int64
	// Type is the disk type's name ("pd-balanced" when empty).
	Type   string
	Labels map[string]string
	// Licenses are license URLs (the OS licence of a public image); a
	// disk with licences is exported with a manifest.json before
	// disk.raw, as the real builder writes it.
	Licenses []string
	// UEFI marks the disk's image UEFI_COMPATIBLE.
	UEFI bool

	mu    sync.RWMutex
	cells map[int64][]byte
}

// NewDisk returns an empty (all-zero) disk of sizeGB GiB.
func NewDisk(name string, sizeGB int64) *Disk {
	return &Disk{Name: name, SizeGB: sizeGB, cells: map[int64][]byte{}}
}

// Size is the disk's virtual size in bytes.
func (d *Disk) Size() int64 { return d.SizeGB * gib }

// WriteAt writes p at off; it refuses writes past the size.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || int64(len(p)) > d.Size()-off {
		return 0, fmt.Errorf("gcpfake: disk %s: write of %d bytes at %d past its size %d", d.Name, len(p), off, d.Size())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for done := 0; done < len(p); {
		pos := off + int64(done)
		idx, within := pos/cell, pos%cell
		c := make([]byte, cell)
		copy(c, d.cells[idx])
		n := copy(c[within:], p[done:])
		d.cells[idx] = c
		done += n
	}
	return len(p), nil
}

// WriteRandom writes n pseudo-random bytes at off derived from seed.
func (d *Disk) WriteRandom(off, n int64, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(off)))
	buf := make([]byte, min(n, cell))
	for done := int64(0); done < n; {
		b := buf[:min(n-done, int64(len(buf)))]
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if _, err := d.WriteAt(b, off+done); err != nil {
			return err
		}
		done += int64(len(b))
	}
	return nil
}

// ReadAt reads the disk's bytes (zeros where nothing was written).
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.Size() {
		return 0, io.EOF
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := 0
	for n < len(p) && off+int64(n) < d.Size() {
		pos := off + int64(n)
		idx, within := pos/cell, pos%cell
		m := int(min(int64(len(p)-n), cell-within, d.Size()-pos))
		if c, ok := d.cells[idx]; ok {
			copy(p[n:n+m], c[within:])
		} else {
			clear(p[n : n+m])
		}
		n += m
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// snapshot returns a frozen copy of the disk's content.
func (d *Disk) snapshot() *Disk {
	d.mu.RLock()
	defer d.mu.RUnlock()
	c := &Disk{Name: d.Name, SizeGB: d.SizeGB, Type: d.Type, Licenses: slices.Clone(d.Licenses), UEFI: d.UEFI, cells: make(map[int64][]byte, len(d.cells))}
	for k, v := range d.cells {
		c.cells[k] = v
	}
	return c
}

// SHA256 is the digest of the disk's whole content.
func (d *Disk) SHA256() [32]byte {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(d, 0, d.Size())); err != nil {
		panic(err) // reading memory does not fail
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// WriteRawImage writes the disk's content to path as a sparse raw image.
func (d *Disk) WriteRawImage(path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	d.mu.RLock()
	defer d.mu.RUnlock()
	for idx, c := range d.cells {
		if _, err := f.WriteAt(c[:min(cell, d.Size()-idx*cell)], idx*cell); err != nil {
			return err
		}
	}
	return f.Truncate(d.Size())
}

// NewSampleDisk returns a disk of sizeGB GiB laid out like a real one:
// a partition table's worth at the start, random regions (one ending
// unaligned), a region written with zeros, and holes between, all derived
// from seed.
func NewSampleDisk(name string, sizeGB int64, seed uint64) (*Disk, error) {
	d := NewDisk(name, sizeGB)
	for _, w := range []struct{ off, n int64 }{
		{0, 64 << 10},
		{3 << 20, 5<<20 + 4096},
		{40<<20 + 512, 2<<20 + 1000},
		{d.Size() - 3<<20, 1 << 20},
	} {
		if err := d.WriteRandom(w.off, w.n, seed); err != nil {
			return nil, err
		}
	}
	if _, err := d.WriteAt(make([]byte, 1<<20), 20<<20); err != nil {
		return nil, err
	}
	return d, nil
}
