package disk

import (
	"bytes"
	"fmt"
	"io"
	"iter"
)

// zeros is a read-only reference for IsZero.
var zeros [64 << 10]byte

// IsZero reports whether b holds only zero bytes: a cluster writers leave
// out, a hole a raw image seeks over.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// FromImage is img as a Source: its extents, read through ReadAt.
func FromImage(img Image) Source {
	next, stop := iter.Pull2(img.Extents())
	return &imageSource{img: img, next: next, stop: stop}
}

type imageSource struct {
	img  Image
	next func() (Extent, error, bool)
	stop func()
	cur  Extent
	pos  int64 // next offset to read within cur
	prev int64 // end of the previous extent
}

func (s *imageSource) Size() int64 { return s.img.Info().VirtualSize }

func (s *imageSource) NextExtent() (Extent, error) {
	e, err, ok := s.next()
	if !ok {
		s.stop()
		return Extent{}, io.EOF
	}
	if err != nil {
		s.stop()
		return Extent{}, err
	}
	if e.Offset < s.prev || e.Length <= 0 || e.End() > s.Size() {
		s.stop()
		return Extent{}, &FormatError{File: "", Format: s.img.Info().Format, Structure: "extent list", Offset: -1,
			Problem: "extents out of order or past the virtual size (reader bug)"}
	}
	s.cur, s.pos, s.prev = e, e.Offset, e.End()
	return e, nil
}

func (s *imageSource) Read(p []byte) (int, error) {
	left := s.cur.End() - s.pos
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := s.img.ReadAt(p, s.pos)
	s.pos += int64(n)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// FromReader is a Source over the whole virtual disk read front to back
// from r (a stream with no extent map, such as a decoded download): one
// extent of size bytes; writers find the zeros in it themselves. A short r
// is an io.ErrUnexpectedEOF. Asked for the extent after the last, it reads
// r to its end: bytes beyond size are an error, and so is an error r
// reports there (a stream that verifies a checksum at its end).
func FromReader(r io.Reader, size int64) Source {
	return &readerSource{r: r, size: size}
}

type readerSource struct {
	r       io.Reader
	size    int64
	started bool
	left    int64
}

func (s *readerSource) Size() int64 { return s.size }

func (s *readerSource) NextExtent() (Extent, error) {
	if s.started || s.size == 0 {
		if s.left > 0 {
			return Extent{}, io.EOF // the writer stopped early; not our end to check
		}
		var probe [1]byte
		switch n, err := io.ReadFull(s.r, probe[:]); {
		case n > 0:
			return Extent{}, fmt.Errorf("the stream holds more than the disk's %d bytes", s.size)
		case err == io.EOF: //nolint:errorlint // io.ReadFull's own marker
			return Extent{}, io.EOF
		default:
			return Extent{}, err
		}
	}
	s.started, s.left = true, s.size
	return Extent{Offset: 0, Length: s.size}, nil
}

func (s *readerSource) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if err == io.EOF {
		if s.left > 0 {
			return n, io.ErrUnexpectedEOF
		}
		err = nil
	}
	return n, err
}
