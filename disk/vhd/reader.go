package vhd

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/bits"
	"slices"

	"github.com/hypersdk/hypersdk/disk"
)

// Detect reports whether a file looks like a VHD: head is the start of the
// file (at least 8 bytes; a dynamic disk's footer copy is there), tail its
// last 512 bytes (fewer when the file is shorter). A fixed disk is known
// only by its tail: the footer in the last 512 bytes, or in the last 511
// as some old tools wrote it.
func Detect(head, tail []byte) bool {
	hasCookie := func(b []byte) bool { return len(b) >= 8 && string(b[:8]) == footerCookie }
	switch {
	case hasCookie(head):
		return true
	case len(tail) >= footerSize && hasCookie(tail[len(tail)-footerSize:]):
		return true
	case len(tail) >= footerSize-1 && hasCookie(tail[len(tail)-(footerSize-1):]):
		return true
	}
	return false
}

// Image is an opened fixed or dynamic VHD. ReadAt is safe for concurrent
// use: the image holds no mutable state after Open.
type Image struct {
	f    *disk.File
	info disk.Info
	ft   footer
	// footerAt is the file offset of the footer in use (0 when the copy at
	// the front stood in for a damaged footer at the end).
	footerAt int64
	// dataEnd is where the area for data ends: the footer at the end, or the
	// end of the file when no footer is there.
	dataEnd int64
	// tolerated are the problems Open worked around; Check reports them.
	tolerated []error

	// Dynamic disks only.
	hdrAt      int64
	hdr        header
	blockSize  int64
	bitmapSize int64    // a block's sector bitmap, padded to a sector
	bat        []uint32 // the entries that cover the virtual size
}

var (
	_ disk.Image   = (*Image)(nil)
	_ disk.Checker = (*Image)(nil)
)

// Open reads f's footer (the one at the end; the copy at the front of a
// dynamic disk when the end one is damaged) and, for a dynamic disk, its
// header and block allocation table, checking every offset and size against
// the file and the specification's limits. Differencing disks are refused:
// they need their parent, and the error names it.
func Open(f *disk.File) (*Image, error) {
	im := &Image{f: f}
	if err := im.readFooter(); err != nil {
		return nil, err
	}
	if im.ft.CurrentSize > uint64(disk.MaxVirtualSize) {
		return nil, im.errorf("footer Current Size", im.footerAt+48, "virtual size %d is beyond the %d-byte limit", im.ft.CurrentSize, disk.MaxVirtualSize)
	}
	size := int64(im.ft.CurrentSize)
	if err := disk.CheckVirtualSize(f, disk.VHD, "footer Current Size", im.footerAt+48, size, disk.SectorSize); err != nil {
		return nil, err
	}
	im.info = disk.Info{Format: disk.VHD, VirtualSize: size}
	var err error
	switch im.ft.DiskType {
	case typeFixed:
		err = im.openFixed()
	case typeDynamic, typeDifferencing:
		err = im.openDynamic()
	default:
		err = im.errorf("footer", im.footerAt+60, "disk type %d is none of fixed (2), dynamic (3) or differencing (4)", im.ft.DiskType)
	}
	if err != nil {
		return nil, err
	}
	return im, nil
}

func (im *Image) errorf(structure string, off int64, problem string, args ...any) *disk.FormatError {
	return disk.Errorf(im.f, disk.VHD, structure, off, problem, args...)
}

// readAt reads exactly len(p) bytes at off; a short file is an
// io.ErrUnexpectedEOF.
func (im *Image) readAt(p []byte, off int64) error {
	n, err := im.f.R.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (im *Image) readError(structure string, off int64, err error) *disk.FormatError {
	e := im.errorf(structure, off, "cannot read it")
	e.Err = err
	return e
}

// readFooter finds the footer to trust: the one at the end when its cookie
// and checksum are right (a fixed disk has no other), else a dynamic disk's
// copy at the front.
func (im *Image) readFooter() error {
	size := im.f.Size
	if size < footerSize {
		return im.errorf("footer", 0, "the file is %d bytes, shorter than the %d-byte footer", size, footerSize)
	}
	tail := make([]byte, footerSize)
	if err := im.readAt(tail, size-footerSize); err != nil {
		return im.readError("footer", size-footerSize, err)
	}
	endAt, end := size-footerSize, tail
	if string(tail[:8]) != footerCookie && string(tail[1:9]) == footerCookie {
		// Some old tools wrote a 511-byte footer; its last byte (reserved)
		// reads as zero.
		endAt, end = size-(footerSize-1), append(tail[1:], 0)
	}
	ft, endProblem := parseFooter(end)
	im.ft, im.footerAt, im.dataEnd = ft, endAt, endAt
	if endProblem == "" && ft.DiskType == typeFixed {
		return nil
	}

	head := make([]byte, footerSize)
	if err := im.readAt(head, 0); err != nil {
		return im.readError("footer copy", 0, err)
	}
	cp, copyProblem := parseFooter(head)
	switch {
	case endProblem == "":
		if copyProblem != "" {
			im.tolerated = append(im.tolerated, im.errorf("footer copy", 0, "%s; the footer at %d is used", copyProblem, endAt))
		} else if !bytes.Equal(head, end) {
			im.tolerated = append(im.tolerated, im.errorf("footer copy", 0, "differs from the footer at %d, which is used", endAt))
		}
		return nil
	case copyProblem == "" && (cp.DiskType == typeDynamic || cp.DiskType == typeDifferencing):
		im.tolerated = append(im.tolerated, im.errorf("footer", endAt, "%s; the copy at 0 is used", endProblem))
		im.ft, im.footerAt = cp, 0
		if string(end[:8]) != footerCookie {
			// No footer at the end at all (an interrupted append): blocks
			// may reach the end of the file.
			im.dataEnd = size
		}
		return nil
	case string(end[:8]) == footerCookie:
		return im.errorf("footer", endAt, "%s", endProblem)
	case string(head[:8]) == footerCookie:
		return im.errorf("footer copy", 0, "%s, and the footer at the end is missing (%s)", copyProblem, endProblem)
	}
	return im.errorf("footer", endAt, "no VHD footer: %s (a fixed VHD ends with one, a dynamic VHD also starts with a copy)", endProblem)
}

func (im *Image) openFixed() error {
	im.info.Subformat = "fixed"
	if im.info.VirtualSize > im.dataEnd {
		return im.errorf("footer Current Size", im.footerAt+48, "%d bytes, but only %d bytes of data precede the footer (truncated file?)",
			im.info.VirtualSize, im.dataEnd)
	}
	if im.dataEnd > im.info.VirtualSize {
		im.tolerated = append(im.tolerated, im.errorf("file", im.info.VirtualSize,
			"%d bytes between the disk's data and the footer belong to neither", im.dataEnd-im.info.VirtualSize))
	}
	return nil
}

func (im *Image) openDynamic() error {
	im.info.Subformat = "dynamic"
	at := im.ft.DataOffset
	if at < footerSize || at > uint64(im.dataEnd) || uint64(im.dataEnd)-at < headerSize {
		return im.errorf("footer Data Offset", im.footerAt+16, "puts the dynamic header at %d, outside [%d, %d) of the %d-byte file",
			at, footerSize, im.dataEnd, im.f.Size)
	}
	im.hdrAt = int64(at)
	b := make([]byte, headerSize)
	if err := im.readAt(b, im.hdrAt); err != nil {
		return im.readError("dynamic header", im.hdrAt, err)
	}
	h, problem := parseHeader(b)
	if im.ft.DiskType == typeDifferencing {
		parent := "its parent (the header does not say which: " + problem + ")"
		if problem == "" {
			parent = fmt.Sprintf("its parent %q", h.ParentName)
		}
		return im.errorf("footer Disk Type", im.footerAt+60,
			"a differencing disk holds only the changes against %s; merge it into the parent first (Hyper-V Merge-VHD, or qemu-img convert from the child, which reads the chain) and export the merged disk", parent)
	}
	if problem != "" {
		return im.errorf("dynamic header", im.hdrAt, "%s", problem)
	}
	im.hdr = h
	size := im.info.VirtualSize
	if size > maxDynamicSize {
		return im.errorf("footer Current Size", im.footerAt+48, "%d bytes is beyond the %d a dynamic VHD can hold", size, int64(maxDynamicSize))
	}
	bs := int64(h.BlockSize)
	if bs < minBlockSize || bits.OnesCount32(h.BlockSize) != 1 {
		return im.errorf("dynamic header Block Size", im.hdrAt+32, "%d is not a power of two of at least %d bytes", bs, minBlockSize)
	}
	im.blockSize = bs
	im.bitmapSize = roundUp(bs/disk.SectorSize/8, disk.SectorSize)
	im.info.ClusterSize = bs

	needed := (size + bs - 1) / bs
	if int64(h.MaxTableEntries) < needed {
		return im.errorf("dynamic header Max Table Entries", im.hdrAt+28, "%d blocks of %d bytes hold less than the virtual size %d",
			h.MaxTableEntries, bs, size)
	}
	if needed > maxBATEntries {
		return im.errorf("dynamic header Max Table Entries", im.hdrAt+28, "%d blocks of %d bytes are beyond the %d-entry limit of this reader",
			needed, bs, maxBATEntries)
	}
	tableLen := int64(h.MaxTableEntries) * 4
	if h.TableOffset < footerSize || h.TableOffset > uint64(im.dataEnd) || uint64(im.dataEnd)-h.TableOffset < uint64(tableLen) {
		return im.errorf("dynamic header Table Offset", im.hdrAt+16, "the %d-byte BAT at %d is not inside [%d, %d) of the file",
			tableLen, h.TableOffset, footerSize, im.dataEnd)
	}
	tableAt := int64(h.TableOffset)
	tableSpan := extent(tableAt, roundUp(tableLen, disk.SectorSize))
	if tableSpan.overlaps(extent(im.hdrAt, headerSize)) {
		return im.errorf("dynamic header Table Offset", im.hdrAt+16, "the BAT at %d overlaps the dynamic header at %d", tableAt, im.hdrAt)
	}

	raw := make([]byte, needed*4)
	if err := im.readAt(raw, tableAt); err != nil {
		return im.readError("BAT", tableAt, err)
	}
	im.bat = make([]uint32, needed)
	for i := range im.bat {
		im.bat[i] = binary.BigEndian.Uint32(raw[4*i:])
	}
	return im.checkBlocks()
}

// span is a byte range of the file, for overlap checks.
type span struct{ at, end int64 }

func extent(at, length int64) span  { return span{at, at + length} }
func (s span) overlaps(o span) bool { return s.at < o.end && o.at < s.end }
func roundUp(n, unit int64) int64   { return (n + unit - 1) / unit * unit }
func (im *Image) blockSpan(entry uint32) span {
	return extent(int64(entry)*disk.SectorSize, im.bitmapSize+im.blockSize)
}

// checkBlocks refuses BAT entries whose blocks (sector bitmap and data) lie
// outside the data area, over the metadata, or over each other.
func (im *Image) checkBlocks() error {
	meta := []struct {
		name string
		span span
	}{
		{"the footer copy", extent(0, footerSize)},
		{"the dynamic header", extent(im.hdrAt, headerSize)},
		{"the BAT", extent(int64(im.hdr.TableOffset), roundUp(int64(im.hdr.MaxTableEntries)*4, disk.SectorSize))},
	}
	tableAt := int64(im.hdr.TableOffset)
	var used []uint32 // indices of allocated entries
	for i, e := range im.bat {
		if e == batUnused {
			continue
		}
		b := im.blockSpan(e)
		if b.end > im.dataEnd {
			return im.errorf(fmt.Sprintf("BAT entry %d", i), tableAt+4*int64(i), "block at %d (%d bytes with its bitmap) reaches past %d, the end of the data area",
				b.at, b.end-b.at, im.dataEnd)
		}
		for _, m := range meta {
			if b.overlaps(m.span) {
				return im.errorf(fmt.Sprintf("BAT entry %d", i), tableAt+4*int64(i), "block at %d overlaps %s at %d", b.at, m.name, m.span.at)
			}
		}
		used = append(used, uint32(i))
	}
	slices.SortFunc(used, func(a, b uint32) int { return cmp.Compare(im.bat[a], im.bat[b]) })
	for k := 1; k < len(used); k++ {
		prev, cur := used[k-1], used[k]
		if im.blockSpan(im.bat[prev]).overlaps(im.blockSpan(im.bat[cur])) {
			return im.errorf(fmt.Sprintf("BAT entry %d", cur), tableAt+4*int64(cur), "block at %d overlaps the block of entry %d at %d",
				int64(im.bat[cur])*disk.SectorSize, prev, int64(im.bat[prev])*disk.SectorSize)
		}
	}
	return nil
}

// Info describes the image: format VHD, subformat "fixed" or "dynamic",
// the footer's Current Size, the block size of a dynamic disk.
func (im *Image) Info() disk.Info { return im.info }

// Close releases nothing: the image opened no file of its own.
func (im *Image) Close() error { return nil }

// ReadAt reads the virtual disk: a fixed disk's data in place; in a dynamic
// disk, sectors of unallocated blocks and sectors whose bitmap bit is clear
// read as zeros.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	size := im.info.VirtualSize
	if off < 0 {
		return 0, fmt.Errorf("%s: read at negative offset %d", im.f.Name, off)
	}
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p, eof = p[:size-off], io.EOF
	}
	if im.bat == nil { // a fixed disk: the data in place
		if err := im.readAt(p, off); err != nil {
			return 0, im.readError("data", off, err)
		}
		return len(p), eof
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		blk, in := pos/im.blockSize, pos%im.blockSize
		n := int(min(int64(len(p)-done), im.blockSize-in))
		chunk := p[done : done+n]
		if e := im.bat[blk]; e == batUnused {
			clear(chunk)
		} else if err := im.readBlock(e, in, chunk); err != nil {
			return done, err
		}
		done += n
	}
	return len(p), eof
}

// readBlock fills p from offset in of the block whose BAT entry is e: the
// sectors its bitmap marks present from the file, the others as zeros.
func (im *Image) readBlock(e uint32, in int64, p []byte) error {
	at := int64(e) * disk.SectorSize
	first, last := in/disk.SectorSize, (in+int64(len(p))-1)/disk.SectorSize
	bm := make([]byte, last/8-first/8+1)
	if err := im.readAt(bm, at+first/8); err != nil {
		return im.readError("sector bitmap", at+first/8, err)
	}
	bit := func(s int64) bool { s -= first / 8 * 8; return bm[s/8]&(0x80>>(s%8)) != 0 }
	for s := first; s <= last; {
		present := bit(s)
		t := s + 1
		for t <= last && bit(t) == present {
			t++
		}
		lo, hi := max(s*disk.SectorSize, in), min(t*disk.SectorSize, in+int64(len(p)))
		dst := p[lo-in : hi-in]
		if present {
			if err := im.readAt(dst, at+im.bitmapSize+lo); err != nil {
				return im.readError("block data", at+im.bitmapSize+lo, err)
			}
		} else {
			clear(dst)
		}
		s = t
	}
	return nil
}

// Extents yields the runs holding data: for a fixed disk the data area
// less the holes the file system reports; for a dynamic disk the sectors
// that allocated blocks' bitmaps mark present.
func (im *Image) Extents() iter.Seq2[disk.Extent, error] {
	if im.bat == nil {
		data := &disk.File{Name: im.f.Name, R: im.f.R, Size: im.info.VirtualSize}
		raw, err := disk.OpenRaw(data)
		if err != nil {
			return func(yield func(disk.Extent, error) bool) { yield(disk.Extent{}, err) }
		}
		return raw.Extents()
	}
	return im.dynamicExtents
}

func (im *Image) dynamicExtents(yield func(disk.Extent, error) bool) {
	size := im.info.VirtualSize
	var bm []byte       // made at the first block, which proves its size fits the file
	var run disk.Extent // pending, merged across blocks
	for i, e := range im.bat {
		if e == batUnused {
			continue
		}
		if bm == nil {
			bm = make([]byte, (im.blockSize/disk.SectorSize+7)/8)
		}
		base := int64(i) * im.blockSize
		sectors := min(im.blockSize, size-base) / disk.SectorSize
		b := bm[:(sectors+7)/8]
		at := int64(e) * disk.SectorSize
		if err := im.readAt(b, at); err != nil {
			yield(disk.Extent{}, im.readError(fmt.Sprintf("block %d sector bitmap", i), at, err))
			return
		}
		for s := int64(0); s < sectors; {
			if b[s/8] == 0 && s%8 == 0 {
				s += 8
				continue
			}
			if b[s/8]&(0x80>>(s%8)) == 0 {
				s++
				continue
			}
			t := s + 1
			for t < sectors && b[t/8]&(0x80>>(t%8)) != 0 {
				t++
			}
			next := disk.Extent{Offset: base + s*disk.SectorSize, Length: (t - s) * disk.SectorSize}
			switch {
			case run.Length == 0:
				run = next
			case run.End() == next.Offset:
				run.Length += next.Length
			default:
				if !yield(run, nil) {
					return
				}
				run = next
			}
			s = t
		}
	}
	if run.Length > 0 {
		yield(run, nil)
	}
}

// Check reports what Open tolerated (a footer copy that disagrees with the
// footer, bytes between a fixed disk's data and its footer), format
// versions other than 1.0, and allocated BAT entries past the virtual size;
// Open has already refused BAT entries out of range or overlapping.
func (im *Image) Check(ctx context.Context) error {
	problems := slices.Clone(im.tolerated)
	if im.ft.Version != formatVersion {
		problems = append(problems, im.errorf("footer File Format Version", im.footerAt+12, "%#08x, not 1.0 (%#08x)", im.ft.Version, formatVersion))
	}
	if im.bat != nil {
		if im.hdr.Version != formatVersion {
			problems = append(problems, im.errorf("dynamic header Header Version", im.hdrAt+24, "%#08x, not 1.0 (%#08x)", im.hdr.Version, formatVersion))
		}
		if err := im.checkSpareEntries(ctx); err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
}

// checkSpareEntries reads the BAT entries Max Table Entries declares beyond
// the virtual size (Open never needs them), a chunk at a time.
func (im *Image) checkSpareEntries(ctx context.Context) error {
	tableAt := int64(im.hdr.TableOffset)
	buf := make([]byte, 64<<10)
	for i := int64(len(im.bat)); i < int64(im.hdr.MaxTableEntries); {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(buf))/4, int64(im.hdr.MaxTableEntries)-i)
		b := buf[:n*4]
		if err := im.readAt(b, tableAt+4*i); err != nil {
			return im.readError("BAT", tableAt+4*i, err)
		}
		for k := int64(0); k < n; k++ {
			if !bytes.Equal(b[4*k:4*k+4], []byte{0xFF, 0xFF, 0xFF, 0xFF}) {
				return im.errorf(fmt.Sprintf("BAT entry %d", i+k), tableAt+4*(i+k), "allocated, but its block lies past the virtual size %d", im.info.VirtualSize)
			}
		}
		i += n
	}
	return nil
}
