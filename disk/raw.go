package disk

import (
	"context"
	"errors"
	"io"
	"iter"
	"syscall"
)

// Linux lseek whences for sparse files; other systems answer EINVAL and the
// raw image is then one extent.
const (
	seekData = 3
	seekHole = 4
)

// OpenRaw opens f as a raw image: the file is the disk. Where the file
// system can say where the holes are (SEEK_DATA/SEEK_HOLE), they are not
// extents.
func OpenRaw(f *File) (Image, error) {
	if err := CheckVirtualSize(f, Raw, "file", -1, f.Size, 0); err != nil {
		return nil, err
	}
	return &rawImage{f: f}, nil
}

type rawImage struct{ f *File }

func (r *rawImage) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.f.Size {
		return 0, io.EOF
	}
	return r.f.R.ReadAt(p, off)
}

func (r *rawImage) Info() Info   { return Info{Format: Raw, VirtualSize: r.f.Size} }
func (r *rawImage) Close() error { return nil }

func (r *rawImage) Extents() iter.Seq2[Extent, error] {
	return func(yield func(Extent, error) bool) {
		size := r.f.Size
		fh := r.f.OS()
		if fh == nil {
			yield(Extent{0, size}, nil)
			return
		}
		for off := int64(0); off < size; {
			data, err := fh.Seek(off, seekData)
			if err != nil {
				if errors.Is(err, syscall.ENXIO) { // no data past off
					return
				}
				if off == 0 { // the file system cannot tell: all data
					yield(Extent{0, size}, nil)
				} else {
					yield(Extent{}, &FormatError{File: r.f.Name, Format: Raw, Structure: "file", Offset: off, Problem: "cannot find data", Err: err})
				}
				return
			}
			hole, err := fh.Seek(data, seekHole)
			if err != nil {
				yield(Extent{}, &FormatError{File: r.f.Name, Format: Raw, Structure: "file", Offset: data, Problem: "cannot find hole", Err: err})
				return
			}
			hole = min(hole, size)
			if hole <= data {
				return
			}
			if !yield(Extent{data, hole - data}, nil) {
				return
			}
			off = hole
		}
	}
}

// WriteRaw writes src to t as a raw image: data extents written in place,
// all-zero blocks and holes seeked over (sparse), the file exactly
// src.Size() bytes long.
func WriteRaw(ctx context.Context, t Target, src Source, _ WriteOptions) error {
	buf := make([]byte, 64<<10)
	c := Cursor{T: t}
	for {
		e, err := src.NextExtent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		off := e.Offset
		for off < e.End() {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), e.End()-off)
			if _, err := io.ReadFull(src, buf[:n]); err != nil {
				return err
			}
			if !IsZero(buf[:n]) {
				if err := c.Put(buf[:n], off); err != nil {
					return err
				}
			}
			off += n
		}
	}
	return t.Truncate(src.Size())
}
