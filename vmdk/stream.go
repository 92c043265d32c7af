package vmdk

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// StreamReader decodes a streamOptimized VMDK read front to back — as it
// arrives over the network — into the virtual disk's bytes. It needs no
// seeking and no grain directory: it follows the grain markers, which
// writers (vSphere NFC, qemu-img, WriteStreamOptimized) emit in ascending
// LBA order, and reads gaps between grains as zeros. Memory is one
// compressed and one inflated grain whatever the disk size.
//
// Read returns exactly Info.Capacity bytes, then io.EOF once the
// end-of-stream marker has been seen.
type StreamReader struct {
	Info

	r   *bufio.Reader
	pos int64 // bytes consumed from r

	off      int64  // virtual disk offset of the next byte Read returns
	grainOff int64  // virtual disk offset of data
	data     []byte // current grain (inflated), nil when none pending
	eos      bool

	comp  []byte
	grain []byte
	zr    io.ReadCloser
}

// NewStreamReader reads the header and embedded descriptor of the
// streamOptimized VMDK in r.
func NewStreamReader(r io.Reader) (*StreamReader, error) {
	s := &StreamReader{r: bufio.NewReaderSize(r, 64<<10)}
	b := make([]byte, SectorSize)
	if err := s.readFull(b); err != nil {
		return nil, fmt.Errorf("vmdk: read header: %w", err)
	}
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Flags&flagCompressed == 0 || h.Flags&flagMarkers == 0 || h.CompressAlgorithm != compressionDeflate {
		return nil, errors.New("vmdk: not a streamOptimized extent (want deflate-compressed grains behind markers)")
	}
	if h.GrainSize == 0 || h.GrainSize&(h.GrainSize-1) != 0 || h.GrainSize > 1<<16 {
		return nil, fmt.Errorf("vmdk: invalid grain size %d sectors", h.GrainSize)
	}
	s.Version, s.Flags = h.Version, h.Flags
	s.Capacity = int64(h.Capacity) * SectorSize
	s.GrainSize = int64(h.GrainSize) * SectorSize
	s.Compressed = true
	// The descriptor, then anything up to the overhead, precede the grains.
	start := max(int64(h.Overhead), int64(h.DescriptorOffset+h.DescriptorSize), 1) * SectorSize
	if h.DescriptorOffset > 0 && h.DescriptorSize > 0 && h.DescriptorSize <= descriptorSectors*64 {
		if err := s.skipTo(int64(h.DescriptorOffset) * SectorSize); err != nil {
			return nil, err
		}
		d := make([]byte, h.DescriptorSize*SectorSize)
		if err := s.readFull(d); err != nil {
			return nil, fmt.Errorf("vmdk: read descriptor: %w", err)
		}
		if i := bytes.IndexByte(d, 0); i >= 0 {
			d = d[:i]
		}
		s.Descriptor = string(d)
		s.CreateType = descriptorValue(s.Descriptor, "createType")
	}
	if err := s.skipTo(start); err != nil {
		return nil, err
	}
	s.grain = make([]byte, s.GrainSize)
	return s, nil
}

func (s *StreamReader) readFull(b []byte) error {
	n, err := io.ReadFull(s.r, b)
	s.pos += int64(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (s *StreamReader) skipTo(pos int64) error {
	if pos < s.pos {
		return fmt.Errorf("vmdk: structure at byte %d lies behind the stream position %d", pos, s.pos)
	}
	n, err := s.r.Discard(int(pos - s.pos))
	s.pos += int64(n)
	if err != nil {
		return fmt.Errorf("vmdk: truncated stream at byte %d: %w", s.pos, io.ErrUnexpectedEOF)
	}
	return nil
}

// next reads markers up to the next grain (or the end of the stream).
func (s *StreamReader) next() error {
	for {
		// Markers start on sector boundaries.
		if err := s.skipTo((s.pos + SectorSize - 1) / SectorSize * SectorSize); err != nil {
			return err
		}
		var m [16]byte
		if err := s.readFull(m[:grainMarkerSize]); err != nil {
			return fmt.Errorf("vmdk: read marker at byte %d: %w", s.pos, err)
		}
		val := binary.LittleEndian.Uint64(m[0:])
		size := int64(binary.LittleEndian.Uint32(m[8:]))
		if size == 0 { // metadata marker: a whole sector, then val sectors
			if err := s.readFull(m[grainMarkerSize:16]); err != nil {
				return fmt.Errorf("vmdk: read marker: %w", err)
			}
			typ := binary.LittleEndian.Uint32(m[12:])
			if typ == markerEOS {
				s.eos = true
				return s.skipTo(s.pos - 16 + SectorSize) // the whole marker sector
			}
			if typ != markerGT && typ != markerGD && typ != markerFooter {
				return fmt.Errorf("vmdk: unknown marker type %d at byte %d", typ, s.pos-16)
			}
			if err := s.skipTo(s.pos - 16 + SectorSize + int64(val)*SectorSize); err != nil {
				return err
			}
			continue
		}
		off := int64(val) * SectorSize
		if off < s.off || off >= s.Capacity || off%s.GrainSize != 0 {
			return fmt.Errorf("vmdk: grain at LBA %d out of order or out of bounds (stream at disk byte %d)", val, s.off)
		}
		if size > 2*s.GrainSize+1024 {
			return fmt.Errorf("vmdk: grain at LBA %d: compressed size %d out of bounds", val, size)
		}
		if int64(cap(s.comp)) < size {
			s.comp = make([]byte, size)
		}
		comp := s.comp[:size]
		if err := s.readFull(comp); err != nil {
			return fmt.Errorf("vmdk: read grain at LBA %d: %w", val, err)
		}
		if s.zr == nil {
			zr, err := zlib.NewReader(bytes.NewReader(comp))
			if err != nil {
				return fmt.Errorf("vmdk: grain at LBA %d: %w", val, err)
			}
			s.zr = zr
		} else if err := s.zr.(zlib.Resetter).Reset(bytes.NewReader(comp), nil); err != nil {
			return fmt.Errorf("vmdk: grain at LBA %d: %w", val, err)
		}
		want := min(s.GrainSize, s.Capacity-off)
		k, err := io.ReadFull(s.zr, s.grain[:want])
		if err != nil {
			return fmt.Errorf("vmdk: inflate grain at LBA %d (%d of %d bytes): %w", val, k, want, err)
		}
		s.grainOff, s.data = off, s.grain[:want]
		return nil
	}
}

// Read implements io.Reader over the virtual disk.
func (s *StreamReader) Read(p []byte) (int, error) {
	if s.off >= s.Capacity {
		if !s.eos && s.data == nil {
			// Consume the trailing metadata so a truncated stream fails.
			if err := s.next(); err != nil {
				return 0, err
			}
			if !s.eos {
				return 0, fmt.Errorf("vmdk: grain beyond the capacity")
			}
		}
		return 0, io.EOF
	}
	if s.data == nil && !s.eos {
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n := int(min(int64(len(p)), s.Capacity-s.off))
	switch {
	case s.data == nil || s.off < s.grainOff: // a gap: zeros
		if s.data != nil {
			n = int(min(int64(n), s.grainOff-s.off))
		}
		clear(p[:n])
	default:
		n = copy(p[:n], s.data[s.off-s.grainOff:])
	}
	s.off += int64(n)
	if s.data != nil && s.off >= s.grainOff+int64(len(s.data)) {
		s.data = nil
	}
	return n, nil
}
