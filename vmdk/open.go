package vmdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/hypersdk/hypersdk/disk"
)

// extent is one extent of a virtual disk as the image reads it: a hosted
// sparse extent, a flat extent or a zero extent. Offsets are relative to the
// extent's start in the virtual disk, within its length.
type extent interface {
	readAt(p []byte, off int64) error
	// data yields the runs holding data, ascending, relative to the extent.
	data(yield func(disk.Extent, error) bool)
	check(ctx context.Context) error
}

// part places an extent in the virtual disk.
type part struct {
	start, length int64
	ext           extent
}

// image is an opened VMDK: one or more extents concatenated.
type image struct {
	info  disk.Info
	parts []part
	files []*disk.File // extent files this image opened, closed by Close
}

// Open opens the VMDK in f: a hosted sparse extent (monolithicSparse,
// streamOptimized, or one extent of a split disk) or a text descriptor whose
// extents — FLAT, VMFS, SPARSE or ZERO, one or several, concatenated — are
// opened through f.Open beside it. Snapshots (delta disks naming a parent),
// device-backed disks and other extent types (VMFSSPARSE, SESPARSE, raw
// device mappings) are refused with a *disk.FormatError that says why. The
// image also implements disk.Checker.
func Open(f *disk.File) (disk.Image, error) {
	head := make([]byte, min(f.Size, SectorSize))
	if _, err := f.R.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, &disk.FormatError{File: f.Name, Format: disk.VMDK, Structure: "header", Offset: 0, Problem: "cannot read", Err: err}
	}
	if hasMagic(head) {
		return openMonolithic(f)
	}
	if !Detect(head) {
		return nil, disk.Errorf(f, disk.VMDK, "header", 0, "neither a sparse extent (magic \"KDMV\") nor a text descriptor")
	}
	if f.Size > maxDescriptorFile {
		return nil, disk.Errorf(f, disk.VMDK, "descriptor", 0, "a %d-byte descriptor file is beyond the %d-byte limit", f.Size, maxDescriptorFile)
	}
	text := make([]byte, f.Size)
	if _, err := f.R.ReadAt(text, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, &disk.FormatError{File: f.Name, Format: disk.VMDK, Structure: "descriptor", Offset: 0, Problem: "cannot read", Err: err}
	}
	d, err := parseDescriptor(f, text, 0)
	if err != nil {
		return nil, err
	}
	return openDescribed(f, d)
}

// openMonolithic opens a sparse extent file on its own: the disk is this
// one extent, whatever its embedded descriptor's extent line says.
func openMonolithic(f *disk.File) (disk.Image, error) {
	s, err := openSparse(f, -1)
	if err != nil {
		return nil, err
	}
	d := s.desc
	if err := refuseDelta(f, d, s.descOff); err != nil {
		return nil, err
	}
	createType := d.createType
	if createType == "" { // a split disk's extent, opened on its own
		createType = "monolithicSparse"
		if s.compressed {
			createType = "streamOptimized"
		}
	}
	return &image{
		info: disk.Info{Format: disk.VMDK, Subformat: createType, VirtualSize: s.length,
			ClusterSize: s.grainBytes, Compressed: s.compressed},
		parts: []part{{0, s.length, s}},
	}, nil
}

// deviceTypes are createTypes whose extents are devices or raw LUNs, not
// files an export can read.
var deviceTypes = map[string]bool{
	"fulldevice": true, "partitioneddevice": true, "vmfsraw": true,
	"vmfsrdm": true, "vmfsrawdevicemap": true, "vmfspassthroughrawdevicemap": true,
}

// openDescribed opens the extents a descriptor file lists.
func openDescribed(f *disk.File, d descriptor) (_ disk.Image, err error) {
	if err := refuseDelta(f, d, 0); err != nil {
		return nil, err
	}
	if d.createType == "" {
		return nil, disk.Errorf(f, disk.VMDK, "descriptor", 0, "no createType")
	}
	if deviceTypes[strings.ToLower(d.createType)] {
		return nil, disk.Errorf(f, disk.VMDK, "descriptor", 0, "createType %q is backed by a device or raw LUN, not by files", d.createType)
	}
	if len(d.extents) == 0 {
		return nil, disk.Errorf(f, disk.VMDK, "descriptor", 0, "no extents")
	}
	im := &image{info: disk.Info{Format: disk.VMDK, Subformat: d.createType}}
	defer func() {
		if err != nil {
			_ = im.Close()
		}
	}()
	var start int64
	for _, e := range d.extents {
		where := fmt.Sprintf("descriptor extent line %d", e.line)
		if e.access == "NOACCESS" {
			return nil, disk.Errorf(f, disk.VMDK, where, 0, "extent %q is marked NOACCESS", e.file)
		}
		if e.sectors > (disk.MaxVirtualSize-start)/SectorSize {
			return nil, disk.Errorf(f, disk.VMDK, where, 0, "extents add up to more than the %d-byte limit", disk.MaxVirtualSize)
		}
		length := e.sectors * SectorSize
		var ext extent
		switch e.typ {
		case "ZERO":
			ext = zeroExtent{}
		case "FLAT", "VMFS":
			ef, err := im.openFile(f, where, e.file)
			if err != nil {
				return nil, err
			}
			if ext, err = openFlat(ef, e.offset, length, where); err != nil {
				return nil, err
			}
		case "SPARSE":
			ef, err := im.openFile(f, where, e.file)
			if err != nil {
				return nil, err
			}
			s, err := openSparse(ef, length)
			if err != nil {
				return nil, err
			}
			im.info.ClusterSize = max(im.info.ClusterSize, s.grainBytes)
			im.info.Compressed = im.info.Compressed || s.compressed
			ext = s
		case "VMFSSPARSE", "SESPARSE":
			return nil, disk.Errorf(f, disk.VMDK, where, 0, "%s extent %q is an ESXi snapshot (delta) format this reader does not read; consolidate the disk first", e.typ, e.file)
		default:
			return nil, disk.Errorf(f, disk.VMDK, where, 0, "unsupported extent type %q", e.typ)
		}
		im.parts = append(im.parts, part{start, length, ext})
		start += length
	}
	if err := disk.CheckVirtualSize(f, disk.VMDK, "descriptor", 0, start, 0); err != nil {
		return nil, err
	}
	im.info.VirtualSize = start
	return im, nil
}

// openFile opens an extent file named by f's descriptor. An extent file
// must be a sparse extent or raw data, never another descriptor: that
// would be a loop or an indirection VMware does not write.
func (im *image) openFile(f *disk.File, where, name string) (*disk.File, error) {
	if name == "" {
		return nil, disk.Errorf(f, disk.VMDK, where, 0, "extent has no file name")
	}
	if f.Open == nil {
		return nil, disk.Errorf(f, disk.VMDK, where, 0, "extent file %q cannot be opened (no directory to look in)", name)
	}
	ef, err := f.Open(name)
	if err != nil {
		return nil, &disk.FormatError{File: f.Name, Format: disk.VMDK, Structure: where, Offset: 0,
			Problem: fmt.Sprintf("cannot open extent file %q", name), Err: err}
	}
	im.files = append(im.files, ef)
	head := make([]byte, min(ef.Size, SectorSize))
	if _, err := ef.R.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, &disk.FormatError{File: ef.Name, Format: disk.VMDK, Structure: "extent file", Offset: 0, Problem: "cannot read", Err: err}
	}
	if !hasMagic(head) && Detect(head) {
		return nil, disk.Errorf(f, disk.VMDK, where, 0, "extent file %q is itself a descriptor", name)
	}
	return ef, nil
}

// refuseDelta refuses a snapshot: a disk holding only the changes against a
// parent, which reads correctly only through the parent.
func refuseDelta(f *disk.File, d descriptor, off int64) error {
	if d.parentHint != "" {
		return disk.Errorf(f, disk.VMDK, "descriptor", off,
			"delta disk (snapshot) of parent %q: consolidate the snapshots (or merge the delta into its parent) and export the result", d.parentHint)
	}
	if d.parentCID != "" && !strings.EqualFold(d.parentCID, "ffffffff") {
		return disk.Errorf(f, disk.VMDK, "descriptor", off,
			"delta disk (snapshot) of a parent with CID %s: consolidate the snapshots (or merge the delta into its parent) and export the result", d.parentCID)
	}
	return nil
}

func (im *image) Info() disk.Info { return im.info }

// Close closes the extent files the image opened, not the File it was
// opened from.
func (im *image) Close() error {
	var errs []error
	for _, f := range im.files {
		errs = append(errs, f.Close())
	}
	im.files = nil
	return errors.Join(errs...)
}

// ReadAt reads the virtual disk; it is safe for concurrent use.
func (im *image) ReadAt(p []byte, off int64) (int, error) {
	size := im.info.VirtualSize
	if off < 0 {
		return 0, errors.New("vmdk: negative offset")
	}
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p, eof = p[:size-off], io.EOF
	}
	n := 0
	for _, pt := range im.parts {
		if n == len(p) {
			break
		}
		pos := off + int64(n)
		if pos >= pt.start+pt.length {
			continue
		}
		k := int(min(int64(len(p)-n), pt.start+pt.length-pos))
		if err := pt.ext.readAt(p[n:n+k], pos-pt.start); err != nil {
			return n, err
		}
		n += k
	}
	return n, eof
}

// Extents yields the allocated runs of every extent, merged across grains
// and extents.
func (im *image) Extents() iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		var run disk.Extent // pending, not yet yielded
		stopped := false
		for _, pt := range im.parts {
			pt.ext.data(func(e disk.Extent, err error) bool {
				if err != nil {
					stopped = true
					yield(disk.Extent{}, err)
					return false
				}
				e.Offset += pt.start
				e.Length = min(e.Length, pt.start+pt.length-e.Offset)
				if e.Length <= 0 {
					return true
				}
				if run.Length > 0 && run.End() == e.Offset {
					run.Length += e.Length
					return true
				}
				if run.Length > 0 && !yield(run, nil) {
					stopped = true
					return false
				}
				run = e
				return true
			})
			if stopped {
				return
			}
		}
		if run.Length > 0 {
			yield(run, nil)
		}
	}
}

// Check checks every extent's tables and grains (see sparseExtent.check),
// returning every problem found, joined.
func (im *image) Check(ctx context.Context) error {
	var errs []error
	for _, pt := range im.parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		errs = append(errs, pt.ext.check(ctx))
	}
	return errors.Join(errs...)
}

// zeroExtent is a ZERO extent: all zeros, no file.
type zeroExtent struct{}

func (zeroExtent) readAt(p []byte, _ int64) error     { clear(p); return nil }
func (zeroExtent) data(func(disk.Extent, error) bool) {}
func (zeroExtent) check(context.Context) error        { return nil }

// flatExtent is a FLAT (or VMFS) extent: the disk's bytes as they are, at
// an offset in the extent file.
type flatExtent struct {
	f      *disk.File
	raw    disk.Image // the file as a raw image: where its holes are
	offset int64      // bytes
	length int64
}

func openFlat(f *disk.File, offSectors, length int64, where string) (*flatExtent, error) {
	if offSectors > (disk.MaxVirtualSize-length)/SectorSize {
		return nil, disk.Errorf(f, disk.VMDK, where, 0, "extent offset of %d sectors is beyond the %d-byte limit", offSectors, disk.MaxVirtualSize)
	}
	off := offSectors * SectorSize
	if f.Size < off+length {
		return nil, disk.Errorf(f, disk.VMDK, "flat extent", 0, "file is %d bytes, the descriptor (%s) needs %d", f.Size, where, off+length)
	}
	raw, err := disk.OpenRaw(f)
	if err != nil {
		return nil, err
	}
	return &flatExtent{f: f, raw: raw, offset: off, length: length}, nil
}

func (x *flatExtent) readAt(p []byte, off int64) error {
	n, err := x.f.R.ReadAt(p, x.offset+off)
	if n == len(p) {
		return nil
	}
	return &disk.FormatError{File: x.f.Name, Format: disk.VMDK, Structure: "flat extent", Offset: x.offset + off, Problem: "cannot read", Err: err}
}

// data yields the file's data runs (holes found by the file system) within
// the extent's window.
func (x *flatExtent) data(yield func(disk.Extent, error) bool) {
	end := x.offset + x.length
	for e, err := range x.raw.Extents() {
		if err != nil {
			yield(disk.Extent{}, err)
			return
		}
		if e.End() <= x.offset {
			continue
		}
		if e.Offset >= end {
			return
		}
		lo, hi := max(e.Offset, x.offset), min(e.End(), end)
		if !yield(disk.Extent{Offset: lo - x.offset, Length: hi - lo}, nil) {
			return
		}
	}
}

func (x *flatExtent) check(context.Context) error { return nil }
