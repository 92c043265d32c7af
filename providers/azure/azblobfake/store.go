package azblobfake

import (
	"io"
	"sort"
)

// extent is a run of stored bytes of a blob. Extents are immutable once made:
// a write or clear replaces the extents it overlaps with trimmed copies that
// share their buffers, so a reader that took a copy of the extent slice under
// the server lock can stream from it afterwards without holding the lock.
type extent struct {
	off int64 // offset in the blob
	n   int64 // length
	// data holds the bytes when the extent was written through the API;
	// otherwise src at srcOff provides them (seeded blobs, see PutPageBlobFrom).
	data   []byte
	src    io.ReaderAt
	srcOff int64
}

func (e extent) end() int64 { return e.off + e.n }

// slice returns the part of e within [from, to), which must overlap e.
func (e extent) slice(from, to int64) extent {
	from = max(from, e.off)
	to = min(to, e.end())
	out := extent{off: from, n: to - from, src: e.src}
	skip := from - e.off
	if e.data != nil {
		out.data = e.data[skip : skip+out.n]
	} else {
		out.srcOff = e.srcOff + skip
	}
	return out
}

// content is the sparse content of a blob: sorted, non-overlapping extents.
// Only stored bytes cost memory; everything between extents reads as zeros.
type content struct {
	ext []extent
}

// first returns the index of the first extent ending after off.
func (c *content) first(off int64) int {
	return sort.Search(len(c.ext), func(i int) bool { return c.ext[i].end() > off })
}

// cut removes [from, to) from the content, keeping the parts of the extents
// it overlaps that lie outside it, and returns the index where the range was.
func (c *content) cut(from, to int64) int {
	i := c.first(from)
	j := i
	for j < len(c.ext) && c.ext[j].off < to {
		j++
	}
	if i == j {
		return i
	}
	var keep []extent
	if c.ext[i].off < from {
		keep = append(keep, c.ext[i].slice(c.ext[i].off, from))
	}
	if last := c.ext[j-1]; last.end() > to {
		keep = append(keep, last.slice(to, last.end()))
	}
	c.ext = append(c.ext[:i], append(keep, c.ext[j:]...)...)
	if len(keep) > 0 && keep[0].off < from {
		return i + 1
	}
	return i
}

// write stores e, replacing whatever was stored in its range.
func (c *content) write(e extent) {
	if e.n <= 0 {
		return
	}
	i := c.cut(e.off, e.end())
	c.ext = append(c.ext, extent{})
	copy(c.ext[i+1:], c.ext[i:])
	c.ext[i] = e
}

// clear removes the stored bytes of [from, to).
func (c *content) clear(from, to int64) {
	if to > from {
		c.cut(from, to)
	}
}

// truncate drops everything at or after size.
func (c *content) truncate(size int64) { c.clear(size, 1<<62) }

// view returns the extents overlapping [from, to), trimmed to it. The result
// does not alias c's slice, so it stays valid when c changes.
func (c *content) view(from, to int64) []extent {
	var out []extent
	if to <= from {
		return nil
	}
	for i := c.first(from); i < len(c.ext) && c.ext[i].off < to; i++ {
		out = append(out, c.ext[i].slice(from, to))
	}
	return out
}

// stored is the number of bytes held in memory (extents read from a seed
// source are not).
func (c *content) stored() int64 {
	var n int64
	for _, e := range c.ext {
		if e.data != nil {
			n += e.n
		}
	}
	return n
}

// ranges returns the stored ranges overlapping [from, to), clipped to it,
// adjacent ones coalesced, as inclusive [start, end] pairs.
func (c *content) ranges(from, to int64) []PageRange {
	var out []PageRange
	for _, e := range c.view(from, to) {
		if k := len(out); k > 0 && out[k-1].End+1 == e.off {
			out[k-1].End = e.end() - 1
			continue
		}
		out = append(out, PageRange{Start: e.off, End: e.end() - 1})
	}
	return out
}

// PageRange is an inclusive byte range, as Get Page Ranges reports them.
type PageRange struct {
	Start int64
	End   int64
}

// zeros is read-only; it fills holes when streaming.
var zeros = make([]byte, 64<<10)

// copyView writes the bytes of [from, to) described by v (from content.view)
// to w, holes as zeros, and returns the number of bytes written.
func copyView(w io.Writer, v []extent, from, to int64) (int64, error) {
	var written int64
	pos := from
	emitZeros := func(n int64) error {
		for n > 0 {
			k := min(n, int64(len(zeros)))
			m, err := w.Write(zeros[:k])
			written += int64(m)
			if err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
	var buf []byte
	for _, e := range v {
		if err := emitZeros(e.off - pos); err != nil {
			return written, err
		}
		if e.data != nil {
			m, err := w.Write(e.data)
			written += int64(m)
			if err != nil {
				return written, err
			}
		} else {
			if buf == nil {
				buf = make([]byte, 256<<10)
			}
			for done := int64(0); done < e.n; {
				k := min(e.n-done, int64(len(buf)))
				// A source shorter than its extent reads as zeros past its end.
				if r, err := e.src.ReadAt(buf[:k], e.srcOff+done); int64(r) < k {
					if err != nil && err != io.EOF {
						return written, err
					}
					clear(buf[r:k])
				}
				m, err := w.Write(buf[:k])
				written += int64(m)
				if err != nil {
					return written, err
				}
				done += k
			}
		}
		pos = e.end()
	}
	if err := emitZeros(to - pos); err != nil {
		return written, err
	}
	return written, nil
}
