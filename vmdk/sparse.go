package vmdk

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/klauspost/compress/zlib"
)

// maxCachedGTs bounds the grain tables a sparse extent keeps decoded: 256
// tables of 2 KiB cover 8 GiB of disk with 64 KiB grains.
const maxCachedGTs = 256

// maxCheckErrors bounds the problems Check reports for one extent.
const maxCheckErrors = 50

// sparseExtent is a hosted sparse extent (header "KDMV"): grain directory,
// grain tables and grains, plain or deflate-compressed behind grain
// markers (streamOptimized).
type sparseExtent struct {
	f          *disk.File
	hdr        header // the header in effect: the footer's when the header defers to it
	desc       descriptor
	descOff    int64
	length     int64 // bytes of virtual disk served, at most the capacity
	capacity   int64 // bytes
	grainBytes int64
	compressed bool
	zeroed     bool // a grain table entry of 1 is a zeroed grain (version 2 and later)
	gd         []uint32
	reserved   []span // header, descriptor, directories, footer: no grain or table may lie there

	mu    sync.Mutex
	gts   map[int64][]uint32
	order []int64 // cached tables, oldest first
	last  struct {
		g    int64
		data []byte
	}
	grains sync.Pool // *[]byte of grainBytes+1
}

// span is a byte range of the extent file holding one structure.
type span struct {
	start, end int64
	what       string
}

// openSparse opens the sparse extent f. length is the part of it the disk
// uses (from the descriptor's extent line), or -1 for a monolithic file,
// whose embedded descriptor is then parsed.
func openSparse(f *disk.File, length int64) (*sparseExtent, error) {
	if f.Size < SectorSize {
		return nil, disk.Errorf(f, disk.VMDK, "header", 0, "file of %d bytes is shorter than a header", f.Size)
	}
	b := make([]byte, SectorSize)
	if err := readFull(f, b, 0, "header"); err != nil {
		return nil, err
	}
	h, err := parseHeader(f, b, 0, "header")
	if err != nil {
		return nil, err
	}
	s := &sparseExtent{f: f, reserved: []span{{0, SectorSize, "header"}}}
	if h.GDOffset == gdAtEnd {
		if h, err = s.readFooter(h); err != nil {
			return nil, err
		}
	}
	s.hdr = h
	s.capacity = int64(h.Capacity) * SectorSize
	s.grainBytes = int64(h.GrainSize) * SectorSize
	s.compressed = h.Flags&flagCompressed != 0
	s.zeroed = h.Version >= 2 && h.Flags&flagZeroedGrainGTE != 0
	s.grains.New = func() any { b := make([]byte, s.grainBytes+1); return &b }
	switch {
	case length < 0:
		s.length = s.capacity
	case length > s.capacity:
		return nil, disk.Errorf(f, disk.VMDK, "header", 12, "capacity of %d sectors, but the descriptor's extent line says %d", h.Capacity, length/SectorSize)
	default:
		s.length = length
	}

	if h.DescriptorOffset != 0 {
		off, size, err := s.region("embedded descriptor", 28, h.DescriptorOffset, int64(h.DescriptorSize)*SectorSize, maxEmbeddedDescriptor)
		if err != nil {
			return nil, err
		}
		if length < 0 {
			text := make([]byte, size)
			if err := readFull(f, text, off, "embedded descriptor"); err != nil {
				return nil, err
			}
			if s.desc, err = parseDescriptor(f, text, off); err != nil {
				return nil, err
			}
		}
		s.descOff = off
		s.reserved = append(s.reserved, span{off, off + size, "embedded descriptor"})
	}

	gdBytes := h.numGTs() * 4
	gdOff, _, err := s.region("grain directory", 56, h.GDOffset, gdBytes, gdBytes)
	if err != nil {
		return nil, err
	}
	s.reserved = append(s.reserved, span{gdOff, gdOff + gdBytes, "grain directory"})
	if h.Flags&flagRedundantGT != 0 && h.RGDOffset != 0 {
		rgdOff, _, err := s.region("redundant grain directory", 48, h.RGDOffset, gdBytes, gdBytes)
		if err != nil {
			return nil, err
		}
		s.reserved = append(s.reserved, span{rgdOff, rgdOff + gdBytes, "redundant grain directory"})
	}
	if s.gd, err = s.readDirectory(gdOff, "grain directory"); err != nil {
		return nil, err
	}
	return s, nil
}

// readFooter reads the footer a streamOptimized header defers to: the
// last three sectors are a footer marker, the footer (a header with the
// real grain directory offset) and the end-of-stream marker.
func (s *sparseExtent) readFooter(h header) (header, error) {
	f := s.f
	if f.Size < 4*SectorSize {
		return h, disk.Errorf(f, disk.VMDK, "footer", -1, "the header defers to a footer, but the file is only %d bytes", f.Size)
	}
	at := f.Size - 3*SectorSize
	tail := make([]byte, 3*SectorSize)
	if err := readFull(f, tail, at, "footer"); err != nil {
		return h, err
	}
	le := binary.LittleEndian
	if le.Uint64(tail) != 1 || le.Uint32(tail[8:]) != 0 || le.Uint32(tail[12:]) != markerFooter {
		return h, disk.Errorf(f, disk.VMDK, "footer marker", at, "missing (the header says the grain directory is at the end)")
	}
	if eos := tail[2*SectorSize:]; !disk.IsZero(eos[:16]) {
		return h, disk.Errorf(f, disk.VMDK, "end-of-stream marker", at+2*SectorSize, "missing after the footer")
	}
	ft, err := parseHeader(f, tail[SectorSize:2*SectorSize], at+SectorSize, "footer")
	if err != nil {
		return h, err
	}
	if ft.GDOffset == gdAtEnd {
		return h, disk.Errorf(f, disk.VMDK, "footer", at+SectorSize+56, "has no grain directory offset either")
	}
	if ft.Capacity != h.Capacity || ft.GrainSize != h.GrainSize || ft.Flags&flagCompressed != h.Flags&flagCompressed {
		return h, disk.Errorf(f, disk.VMDK, "footer", at+SectorSize, "disagrees with the header on capacity, grain size or compression")
	}
	s.reserved = append(s.reserved, span{at, f.Size, "footer"})
	return ft, nil
}

// region checks a structure of size bytes (at most limit) at sector
// sectors of the file, named by the header field at fieldOff: inside the
// file, past the header and clear of what is reserved so far.
func (s *sparseExtent) region(what string, fieldOff int64, sectors uint64, size, limit int64) (off, n int64, err error) {
	if size <= 0 || size > limit {
		return 0, 0, disk.Errorf(s.f, disk.VMDK, "header", fieldOff, "%s of %d bytes (want 1 to %d)", what, size, limit)
	}
	if sectors == 0 || sectors > uint64(s.f.Size/SectorSize) || int64(sectors)*SectorSize > s.f.Size-size {
		return 0, 0, disk.Errorf(s.f, disk.VMDK, "header", fieldOff, "%s at sector %d (%d bytes) lies past the end of the %d-byte file", what, sectors, size, s.f.Size)
	}
	off = int64(sectors) * SectorSize
	if r, ok := s.overlaps(off, off+size); ok {
		return 0, 0, disk.Errorf(s.f, disk.VMDK, "header", fieldOff, "%s at byte %d overlaps the %s", what, off, r.what)
	}
	return off, size, nil
}

// overlaps returns the reserved structure [start, end) overlaps, if any.
func (s *sparseExtent) overlaps(start, end int64) (span, bool) {
	for _, r := range s.reserved {
		if start < r.end && r.start < end {
			return r, true
		}
	}
	return span{}, false
}

// readDirectory reads a grain directory and checks that every grain table
// it points at lies inside the file, clear of the reserved structures.
func (s *sparseExtent) readDirectory(off int64, what string) ([]uint32, error) {
	n := s.hdr.numGTs()
	b := make([]byte, n*4)
	if err := readFull(s.f, b, off, what); err != nil {
		return nil, err
	}
	gd := make([]uint32, n)
	for i := range gd {
		gd[i] = binary.LittleEndian.Uint32(b[i*4:])
		if gd[i] == 0 {
			continue
		}
		start := int64(gd[i]) * SectorSize
		where := fmt.Sprintf("%s entry %d", what, i)
		if start > s.f.Size-gtBytes {
			return nil, disk.Errorf(s.f, disk.VMDK, where, off+int64(i)*4, "grain table at byte %d lies past the end of the %d-byte file", start, s.f.Size)
		}
		if r, ok := s.overlaps(start, start+gtBytes); ok {
			return nil, disk.Errorf(s.f, disk.VMDK, where, off+int64(i)*4, "grain table at byte %d overlaps the %s", start, r.what)
		}
	}
	return gd, nil
}

// table returns grain table gti through the bounded cache, or nil when
// the directory has none.
func (s *sparseExtent) table(gti int64) ([]uint32, error) {
	if s.gd[gti] == 0 {
		return nil, nil
	}
	s.mu.Lock()
	gt, ok := s.gts[gti]
	s.mu.Unlock()
	if ok {
		return gt, nil
	}
	gt, err := s.readTable(int64(s.gd[gti])*SectorSize, gti)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gts == nil {
		s.gts = make(map[int64][]uint32)
	}
	if _, ok := s.gts[gti]; !ok {
		if len(s.order) >= maxCachedGTs {
			delete(s.gts, s.order[0])
			s.order = s.order[1:]
		}
		s.gts[gti] = gt
		s.order = append(s.order, gti)
	}
	return gt, nil
}

func (s *sparseExtent) readTable(off, gti int64) ([]uint32, error) {
	b := make([]byte, gtBytes)
	if err := readFull(s.f, b, off, fmt.Sprintf("grain table %d", gti)); err != nil {
		return nil, err
	}
	gt := make([]uint32, gtesPerGT)
	for i := range gt {
		gt[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return gt, nil
}

// allocated reports whether grain table entry gte points at stored data.
func (s *sparseExtent) allocated(gte uint32) bool {
	return gte != 0 && !(gte == gteZeroed && s.zeroed)
}

// grainSpan checks where grain g's entry gte points and returns the bytes
// of the file the grain occupies (for a compressed grain, its marker only:
// the rest is known once the marker is read).
func (s *sparseExtent) grainSpan(g int64, gte uint32) (int64, int64, error) {
	start := int64(gte) * SectorSize
	n := int64(grainMarkerSize)
	if !s.compressed {
		n = min(s.grainBytes, s.capacity-g*s.grainBytes)
	}
	where := fmt.Sprintf("grain table entry for grain %d", g)
	if start > s.f.Size-n {
		return 0, 0, disk.Errorf(s.f, disk.VMDK, where, -1, "grain at byte %d lies past the end of the %d-byte file", start, s.f.Size)
	}
	if r, ok := s.overlaps(start, start+n); ok {
		return 0, 0, disk.Errorf(s.f, disk.VMDK, where, -1, "grain at byte %d overlaps the %s", start, r.what)
	}
	return start, start + n, nil
}

// readAt reads the extent's bytes at off.
func (s *sparseExtent) readAt(p []byte, off int64) error {
	for len(p) > 0 {
		g, in := off/s.grainBytes, off%s.grainBytes
		k := min(int64(len(p)), s.grainBytes-in)
		gte := uint32(0)
		gt, err := s.table(g / gtesPerGT)
		if err != nil {
			return err
		}
		if gt != nil {
			gte = gt[g%gtesPerGT]
		}
		switch {
		case !s.allocated(gte):
			clear(p[:k])
		case !s.compressed:
			start, _, err := s.grainSpan(g, gte)
			if err != nil {
				return err
			}
			if err := readFull(s.f, p[:k], start+in, fmt.Sprintf("grain %d", g)); err != nil {
				return err
			}
		default:
			if err := s.readCompressed(p[:k], g, gte, in); err != nil {
				return err
			}
		}
		p, off = p[k:], off+k
	}
	return nil
}

// readCompressed copies bytes from in of compressed grain g into p. The
// last grain inflated is kept: sequential readers read a grain in pieces.
func (s *sparseExtent) readCompressed(p []byte, g int64, gte uint32, in int64) error {
	s.mu.Lock()
	if s.last.data != nil && s.last.g == g {
		copy(p, s.last.data[in:])
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	bp := s.grains.Get().(*[]byte)
	data := (*bp)[:s.grainBytes]
	if _, err := s.inflate(data, g, gte); err != nil {
		s.grains.Put(bp)
		return err
	}
	copy(p, data[in:])
	s.mu.Lock()
	old := s.last.data
	s.last.g, s.last.data = g, data
	s.mu.Unlock()
	if old != nil {
		old = old[:cap(old)]
		s.grains.Put(&old)
	}
	return nil
}

var inflaters sync.Pool // io.ReadCloser implementing zlib.Resetter

// inflate reads compressed grain g, whose marker is where gte points, into
// data (grainBytes long) and returns the sectors it occupies in the file.
// The marker must name grain g, and the grain must inflate to exactly one
// grain (the last grain of the disk may stop at the disk's end).
func (s *sparseExtent) inflate(data []byte, g int64, gte uint32) (int64, error) {
	start, _, err := s.grainSpan(g, gte)
	if err != nil {
		return 0, err
	}
	where := fmt.Sprintf("grain marker of grain %d", g)
	var m [grainMarkerSize]byte
	if err := readFull(s.f, m[:], start, where); err != nil {
		return 0, err
	}
	lba, size := binary.LittleEndian.Uint64(m[:]), int64(binary.LittleEndian.Uint32(m[8:]))
	if want := uint64(g) * s.hdr.GrainSize; lba != want {
		return 0, disk.Errorf(s.f, disk.VMDK, where, start, "names sector %d, the grain table says grain %d (sector %d)", lba, g, want)
	}
	if size == 0 || size > maxCompressedGrain(s.grainBytes) {
		return 0, disk.Errorf(s.f, disk.VMDK, where, start, "compressed size %d out of range (1 to %d)", size, maxCompressedGrain(s.grainBytes))
	}
	if start+grainMarkerSize > s.f.Size-size {
		return 0, disk.Errorf(s.f, disk.VMDK, where, start, "compressed grain of %d bytes runs past the end of the %d-byte file", size, s.f.Size)
	}
	end := start + grainMarkerSize + size
	if r, ok := s.overlaps(start, end); ok {
		return 0, disk.Errorf(s.f, disk.VMDK, where, start, "compressed grain overlaps the %s", r.what)
	}
	comp := make([]byte, size)
	if err := readFull(s.f, comp, start+grainMarkerSize, fmt.Sprintf("grain %d", g)); err != nil {
		return 0, err
	}
	n, err := inflateGrain(data, comp)
	if err == nil && n != s.grainBytes && (g*s.grainBytes+n < s.capacity || n == 0) {
		err = fmt.Errorf("inflates to %d bytes, want %d", n, s.grainBytes)
	}
	if err != nil {
		return 0, disk.Errorf(s.f, disk.VMDK, fmt.Sprintf("grain %d", g), start, "%v", err)
	}
	clear(data[n:])
	return sectorsFor(end-start) * SectorSize, nil
}

// inflateGrain inflates the zlib stream comp into data, returning the
// inflated size; more than len(data) bytes is an error.
func inflateGrain(data, comp []byte) (int64, error) {
	br := bytes.NewReader(comp)
	zr, _ := inflaters.Get().(io.ReadCloser)
	var err error
	if zr == nil {
		zr, err = zlib.NewReader(br)
	} else {
		err = zr.(zlib.Resetter).Reset(br, nil)
	}
	if err != nil {
		return 0, err
	}
	defer inflaters.Put(zr)
	n, err := io.ReadFull(zr, data)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF: //nolint:errorlint // io.ReadFull's own values
		return int64(n), nil
	case err != nil:
		return 0, err
	}
	// A full grain: the stream must end here (reading on checks the
	// checksum too).
	var one [1]byte
	if k, err := zr.Read(one[:]); k > 0 {
		return 0, fmt.Errorf("inflates to more than %d bytes", len(data))
	} else if err != io.EOF { //nolint:errorlint
		if err == nil {
			err = errors.New("zlib stream does not end after one grain")
		}
		return 0, err
	}
	return int64(n), nil
}

// data yields every allocated grain within the extent's length.
func (s *sparseExtent) data(yield func(disk.Extent, error) bool) {
	limit := (s.length + s.grainBytes - 1) / s.grainBytes // grains in use
	for gti := int64(0); gti*gtesPerGT < limit; gti++ {
		gt, err := s.table(gti)
		if err != nil {
			yield(disk.Extent{}, err)
			return
		}
		for i, gte := range gt {
			g := gti*gtesPerGT + int64(i)
			if g >= limit {
				return
			}
			if !s.allocated(gte) {
				continue
			}
			if _, _, err := s.grainSpan(g, gte); err != nil {
				yield(disk.Extent{}, err)
				return
			}
			off := g * s.grainBytes
			if !yield(disk.Extent{Offset: off, Length: min(s.grainBytes, s.length-off)}, nil) {
				return
			}
		}
	}
}

// check reads every grain table and grain of the extent: every entry
// inside the file and clear of the header, descriptor and directories,
// compressed grains naming their own LBA and inflating to one grain, the
// redundant directory and tables (when kept) equal to the primary ones,
// and no two tables or grains sharing a byte of the file. It keeps 24
// bytes per allocated grain.
func (s *sparseExtent) check(ctx context.Context) error {
	var errs []error
	report := func(err error) bool {
		errs = append(errs, err)
		return len(errs) < maxCheckErrors
	}
	type use struct {
		start, end int64
		id         int64 // grain number, or -1-gti for a grain table, or -1-numGTs-gti for a redundant one
	}
	var uses []use
	numGTs := int64(len(s.gd))
	var rgd []uint32
	if s.hdr.Flags&flagRedundantGT != 0 && s.hdr.RGDOffset != 0 {
		var err error
		if rgd, err = s.readDirectory(int64(s.hdr.RGDOffset)*SectorSize, "redundant grain directory"); err != nil {
			return err
		}
	}
	data := make([]byte, s.grainBytes)
	for gti, e := range s.gd {
		if err := ctx.Err(); err != nil {
			return err
		}
		gti := int64(gti)
		var gt []uint32
		if e != 0 {
			var err error
			if gt, err = s.readTable(int64(e)*SectorSize, gti); err != nil {
				return err
			}
			uses = append(uses, use{int64(e) * SectorSize, int64(e)*SectorSize + gtBytes, -1 - gti})
		}
		if rgd != nil {
			if (rgd[gti] == 0) != (e == 0) {
				if !report(disk.Errorf(s.f, disk.VMDK, fmt.Sprintf("redundant grain directory entry %d", gti), -1, "disagrees with the grain directory on whether grain table %d exists", gti)) {
					break
				}
			} else if e != 0 {
				rgt, err := s.readTable(int64(rgd[gti])*SectorSize, gti)
				if err != nil {
					return err
				}
				uses = append(uses, use{int64(rgd[gti]) * SectorSize, int64(rgd[gti])*SectorSize + gtBytes, -1 - numGTs - gti})
				if !slices.Equal(gt, rgt) && !report(disk.Errorf(s.f, disk.VMDK, fmt.Sprintf("redundant grain table %d", gti), int64(rgd[gti])*SectorSize, "differs from grain table %d", gti)) {
					break
				}
			}
		}
		for i, gte := range gt {
			g := gti*gtesPerGT + int64(i)
			if !s.allocated(gte) {
				continue
			}
			if g*s.grainBytes >= s.capacity {
				if !report(disk.Errorf(s.f, disk.VMDK, fmt.Sprintf("grain table %d", gti), int64(e)*SectorSize+int64(i)*4, "entry for grain %d is past the capacity", g)) {
					break
				}
				continue
			}
			start, end, err := s.grainSpan(g, gte)
			if err == nil && s.compressed {
				var n int64
				n, err = s.inflate(data, g, gte)
				end = start + n
			}
			if err != nil {
				if !report(err) {
					break
				}
				continue
			}
			uses = append(uses, use{start, end, g})
		}
		if len(errs) >= maxCheckErrors {
			break
		}
	}
	name := func(id int64) string {
		switch {
		case id >= 0:
			return fmt.Sprintf("grain %d", id)
		case id >= -numGTs:
			return fmt.Sprintf("grain table %d", -1-id)
		default:
			return fmt.Sprintf("redundant grain table %d", -1-numGTs-id)
		}
	}
	slices.SortFunc(uses, func(a, b use) int { return cmp.Compare(a.start, b.start) })
	var reach use // the use reaching furthest so far
	for i, u := range uses {
		if len(errs) >= maxCheckErrors {
			break
		}
		if i > 0 && u.start < reach.end {
			errs = append(errs, disk.Errorf(s.f, disk.VMDK, name(u.id), u.start, "shares bytes of the file with %s", name(reach.id)))
		}
		if u.end > reach.end {
			reach = u
		}
	}
	return errors.Join(errs...)
}

// readFull reads len(b) bytes at off of f; a short file is a FormatError
// naming the structure.
func readFull(f *disk.File, b []byte, off int64, structure string) error {
	n, err := f.R.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &disk.FormatError{File: f.Name, Format: disk.VMDK, Structure: structure, Offset: off, Problem: "cannot read", Err: err}
}
