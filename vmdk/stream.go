package vmdk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hypersdk/hypersdk/disk"
)

// StreamReader decodes a streamOptimized VMDK read front to back — as it
// arrives over the network — with no seeking and no grain directory: it
// follows the grain markers, which writers (vSphere NFC, qemu-img, Write)
// emit in ascending LBA order, and skips the metadata between them. Memory
// is one compressed and one inflated grain whatever the disk size.
//
// A StreamReader is a disk.Source: Size, then NextExtent and Read, one
// extent per stored grain (the grain's run of the disk, cut at the disk's
// end) as its marker arrives, so a converter never zero-checks the holes
// between grains. NextExtent reports io.EOF only after the end-of-stream
// marker: a stream cut short is an error wrapping io.ErrUnexpectedEOF.
// Raw reads the same stream as the whole disk's bytes instead; use one
// or the other.
type StreamReader struct {
	file *disk.File // names the stream in errors; no data behind it
	r    *bufio.Reader
	pos  int64 // bytes consumed from r

	info         disk.Info
	grainSectors uint64
	gdSectors    int64  // sectors of a grain directory for this capacity
	next         int64  // the next grain must start at or after this disk offset
	data         []byte // the unread rest of the current extent
	eos          bool

	comp, grain []byte
}

// NewStreamReader reads the header and embedded descriptor of the
// streamOptimized VMDK arriving on r; name names it in errors. A delta
// disk (its descriptor naming a parent) is refused.
func NewStreamReader(r io.Reader, name string) (*StreamReader, error) {
	s := &StreamReader{file: &disk.File{Name: name}, r: bufio.NewReaderSize(r, 256<<10)}
	b := make([]byte, SectorSize)
	if err := s.readFull(b, "header"); err != nil {
		return nil, err
	}
	h, err := parseHeader(s.file, b, 0, "header")
	if err != nil {
		return nil, err
	}
	if h.Flags&flagCompressed == 0 || h.Flags&flagMarkers == 0 {
		return nil, disk.Errorf(s.file, disk.VMDK, "header", 8, "flags %#x: not a streamOptimized extent (want compressed grains behind markers)", h.Flags)
	}
	grainBytes := int64(h.GrainSize) * SectorSize
	s.info = disk.Info{Format: disk.VMDK, Subformat: "streamOptimized", VirtualSize: int64(h.Capacity) * SectorSize,
		ClusterSize: grainBytes, Compressed: true}
	s.grainSectors = h.GrainSize
	s.gdSectors = sectorsFor(h.numGTs() * 4)
	if h.DescriptorOffset != 0 && h.DescriptorSize != 0 && h.DescriptorSize <= maxEmbeddedDescriptor/SectorSize {
		at := int64(h.DescriptorOffset) * SectorSize
		if err := s.skipTo(at); err != nil {
			return nil, err
		}
		text := make([]byte, h.DescriptorSize*SectorSize)
		if err := s.readFull(text, "embedded descriptor"); err != nil {
			return nil, err
		}
		d, err := parseDescriptor(s.file, text, at)
		if err != nil {
			return nil, err
		}
		if err := refuseDelta(s.file, d, at); err != nil {
			return nil, err
		}
		if d.createType != "" {
			s.info.Subformat = d.createType
		}
	}
	// Grains start after the overhead (qemu keeps its tables there).
	if h.Overhead > uint64(disk.MaxVirtualSize/SectorSize) {
		return nil, disk.Errorf(s.file, disk.VMDK, "header", 64, "overhead of %d sectors is absurd", h.Overhead)
	}
	if err := s.skipTo(max(s.pos, int64(h.Overhead)*SectorSize)); err != nil {
		return nil, err
	}
	s.grain = make([]byte, grainBytes)
	return s, nil
}

// Size is the virtual disk's size.
func (s *StreamReader) Size() int64 { return s.info.VirtualSize }

// Info describes the stream as its header and descriptor do.
func (s *StreamReader) Info() disk.Info { return s.info }

// NextExtent moves to the next stored grain: its run of the disk. It
// returns io.EOF after the end-of-stream marker.
func (s *StreamReader) NextExtent() (disk.Extent, error) {
	s.data = nil
	if s.eos {
		return disk.Extent{}, io.EOF
	}
	e, err := s.nextGrain()
	if err != nil {
		return disk.Extent{}, err
	}
	if s.eos {
		return disk.Extent{}, io.EOF
	}
	return e, nil
}

// Read reads the current extent's bytes, then io.EOF.
func (s *StreamReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func (s *StreamReader) errorf(structure string, off int64, problem string, args ...any) error {
	return disk.Errorf(s.file, disk.VMDK, structure, off, problem, args...)
}

func (s *StreamReader) readFull(b []byte, structure string) error {
	at := s.pos
	n, err := io.ReadFull(s.r, b)
	s.pos += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return &disk.FormatError{File: s.file.Name, Format: disk.VMDK, Structure: structure, Offset: at, Problem: "stream ends early", Err: err}
	}
	return nil
}

// skipTo consumes the stream up to byte pos.
func (s *StreamReader) skipTo(pos int64) error {
	if pos < s.pos {
		return s.errorf("layout", pos, "structure lies behind the stream position %d", s.pos)
	}
	for s.pos < pos {
		n, err := s.r.Discard(int(min(pos-s.pos, 1<<30)))
		s.pos += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return &disk.FormatError{File: s.file.Name, Format: disk.VMDK, Structure: "stream", Offset: s.pos, Problem: "stream ends early", Err: err}
		}
	}
	return nil
}

// nextGrain reads markers up to the next grain, which it inflates, or to
// the end-of-stream marker (s.eos).
func (s *StreamReader) nextGrain() (disk.Extent, error) {
	for {
		// Markers start on sector boundaries.
		if err := s.skipTo((s.pos + SectorSize - 1) / SectorSize * SectorSize); err != nil {
			return disk.Extent{}, err
		}
		at := s.pos
		var m [16]byte
		if err := s.readFull(m[:grainMarkerSize], "marker"); err != nil {
			return disk.Extent{}, err
		}
		val := binary.LittleEndian.Uint64(m[0:])
		size := int64(binary.LittleEndian.Uint32(m[8:]))
		if size == 0 { // a metadata marker: one sector, then val sectors
			if err := s.readFull(m[grainMarkerSize:], "marker"); err != nil {
				return disk.Extent{}, err
			}
			typ := binary.LittleEndian.Uint32(m[12:])
			var limit uint64
			switch typ {
			case markerEOS:
				s.eos = true
				return disk.Extent{}, s.skipTo(at + SectorSize)
			case markerGT:
				limit = gtBytes / SectorSize
			case markerGD:
				limit = uint64(s.gdSectors)
			case markerFooter:
				limit = 1
			default:
				return disk.Extent{}, s.errorf("marker", at, "unknown marker type %d", typ)
			}
			if val > limit {
				return disk.Extent{}, s.errorf("marker", at, "type %d marker announces %d sectors, at most %d fit", typ, val, limit)
			}
			if err := s.skipTo(at + SectorSize + int64(val)*SectorSize); err != nil {
				return disk.Extent{}, err
			}
			continue
		}
		where := fmt.Sprintf("grain marker for sector %d", val)
		capSectors := uint64(s.info.VirtualSize / SectorSize)
		if val >= capSectors || val%s.grainSectors != 0 {
			return disk.Extent{}, s.errorf(where, at, "not a grain boundary inside the %d-sector disk", capSectors)
		}
		off := int64(val) * SectorSize
		if off < s.next {
			return disk.Extent{}, s.errorf(where, at, "grain out of order (the previous one ends at disk byte %d)", s.next)
		}
		grainBytes := int64(len(s.grain))
		if size > maxCompressedGrain(grainBytes) {
			return disk.Extent{}, s.errorf(where, at, "compressed size %d is beyond %d", size, maxCompressedGrain(grainBytes))
		}
		if int64(cap(s.comp)) < size {
			s.comp = make([]byte, size)
		}
		comp := s.comp[:size]
		if err := s.readFull(comp, where); err != nil {
			return disk.Extent{}, err
		}
		n, err := inflateGrain(s.grain, comp)
		want := min(grainBytes, s.info.VirtualSize-off)
		if err == nil && n < want {
			err = fmt.Errorf("inflates to %d bytes, want %d", n, grainBytes)
		}
		if err != nil {
			return disk.Extent{}, s.errorf(where, at, "%v", err)
		}
		s.next = off + grainBytes
		s.data = s.grain[:want]
		return disk.Extent{Offset: off, Length: want}, nil
	}
}

// Raw returns the stream as the whole virtual disk: Size() bytes, the
// holes between grains as zeros, then io.EOF once the end-of-stream marker
// has been read. Use it instead of NextExtent and Read, not with them.
func (s *StreamReader) Raw() io.Reader { return &streamDisk{s: s} }

type streamDisk struct {
	s    *StreamReader
	off  int64       // disk offset of the next byte
	cur  disk.Extent // the pending extent, when have
	have bool
	done bool // the end-of-stream marker has been read
}

func (d *streamDisk) Read(p []byte) (int, error) {
	size := d.s.Size()
	if !d.have && !d.done {
		e, err := d.s.NextExtent()
		switch {
		case err == io.EOF: //nolint:errorlint // NextExtent's own end
			d.done = true
		case err != nil:
			return 0, err
		default:
			d.cur, d.have = e, true
		}
	}
	if d.off >= size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), size-d.off)
	if d.have && d.off >= d.cur.Offset {
		k, _ := d.s.Read(p[:min(n, d.cur.End()-d.off)])
		d.off += int64(k)
		if d.off >= d.cur.End() {
			d.have = false
		}
		return k, nil
	}
	if d.have {
		n = min(n, d.cur.Offset-d.off)
	}
	clear(p[:n])
	d.off += n
	return int(n), nil
}
