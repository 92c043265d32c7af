package vhdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"

	"github.com/hypersdk/hypersdk/disk"
)

// Detect reports whether head (the first bytes of a file) starts with the
// VHDX file type identifier.
func Detect(head []byte) bool { return bytes.HasPrefix(head, sigFile) }

// Image is an opened VHDX image. It implements disk.Image and disk.Checker.
type Image struct {
	f        *disk.File
	r        io.ReaderAt // the file, or the file with its log replayed
	fileSize int64       // of r
	replayed bool

	header       header
	headerOffset int64
	regions      []region
	logRegion    region
	bat          region
	metadata     region

	info          disk.Info
	blockSize     int64
	logicalSector int64
	ratio         int64 // chunk ratio
	blocks        int64
	entries       []uint64 // the BAT: payload entries with bitmap entries interleaved
	params        uint32   // File Parameters flags
	locator       map[string]string

	parent     *Image
	parentFile *disk.File
}

var _ disk.Image = (*Image)(nil)
var _ disk.Checker = (*Image)(nil)

// Open opens f as a VHDX image: it checks the headers, replays a pending
// log in memory, checks the region tables, the metadata and the BAT, and
// opens the parent chain of a differencing image through f.Open.
func Open(f *disk.File) (*Image, error) {
	return open(f, nil)
}

func open(f *disk.File, chain []string) (*Image, error) {
	m := &Image{f: f, r: f.R, fileSize: f.Size}
	if err := m.readHeaders(); err != nil {
		return nil, err
	}
	if err := m.readRegions(); err != nil {
		return nil, err
	}
	if err := m.readMetadata(); err != nil {
		return nil, err
	}
	if err := m.readBAT(); err != nil {
		return nil, err
	}
	if m.params&paramHasParent != 0 {
		if err := m.openParent(chain); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Image) errorf(structure string, off int64, problem string, args ...any) *disk.FormatError {
	return disk.Errorf(m.f, disk.VHDX, structure, off, problem, args...)
}

// readAt reads exactly len(p) bytes of structure at off, refusing a read
// past the end of the file as a truncated file.
func (m *Image) readAt(p []byte, off int64, structure string) error {
	if off < 0 || off > m.fileSize || int64(len(p)) > m.fileSize-off {
		return m.errorf(structure, off, "%d bytes at this offset lie past the end of the %d-byte file (truncated?)", len(p), m.fileSize)
	}
	n, err := m.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &disk.FormatError{File: m.f.Name, Format: disk.VHDX, Structure: structure, Offset: off, Problem: "cannot read", Err: err}
}

// checkHeader says what is wrong with the 4 KiB header b, or "".
func checkHeader(b []byte) string {
	switch {
	case !bytes.Equal(b[:4], sigHeader):
		return "no \"head\" signature"
	case !validChecksum(b, 4):
		return "bad CRC-32C checksum"
	}
	return ""
}

// readHeaders reads the file type identifier and both headers, picks the
// current one and replays the log it names.
func (m *Image) readHeaders() error {
	if m.fileSize < headerSection {
		return m.errorf("header section", 0, "the file is %d bytes, shorter than the 1 MiB header section (truncated?)", m.fileSize)
	}
	id := make([]byte, 8)
	if err := m.readAt(id, fileIDOffset, "file type identifier"); err != nil {
		return err
	}
	if !Detect(id) {
		return m.errorf("file type identifier", 0, "no \"vhdxfile\" signature: not a VHDX image")
	}
	var problems []string
	found := false
	for _, off := range []int64{header1Offset, header2Offset} {
		b := make([]byte, headerSize)
		if err := m.readAt(b, off, "header"); err != nil {
			return err
		}
		if p := checkHeader(b); p != "" {
			problems = append(problems, fmt.Sprintf("header at %d: %s", off, p))
			continue
		}
		if h := parseHeader(b); !found || h.sequence > m.header.sequence {
			m.header, m.headerOffset, found = h, off, true
		}
	}
	if !found {
		return m.errorf("headers", header1Offset, "neither header is valid (%s)", strings.Join(problems, "; "))
	}
	h := m.header
	switch {
	case h.version != 1:
		return m.errorf("header", m.headerOffset, "version %d is not the VHDX version 1 this reader knows", h.version)
	case h.logVersion != 0:
		return m.errorf("header", m.headerOffset, "log version %d is not the version 0 this reader knows", h.logVersion)
	}
	m.logRegion = region{offset: int64(h.logOffset & (1<<62 - 1)), length: int64(h.logLength)}
	if h.logLength > 0 {
		if err := m.checkPlacement("log", m.headerOffset+72, m.logRegion); err != nil {
			return err
		}
	}
	if h.logGUID.isZero() {
		return nil
	}
	if h.logLength == 0 {
		return m.errorf("header", m.headerOffset, "the header names a log to replay (LogGuid %s) but the log is empty; the file is corrupt", h.logGUID)
	}
	v, err := replayLog(m.f, h)
	if err != nil {
		return err
	}
	m.r, m.fileSize, m.replayed = v, v.size, true
	return nil
}

// checkPlacement refuses a region that is not 1 MiB aligned, lies in the
// header section or runs past the end of the file.
func (m *Image) checkPlacement(structure string, at int64, r region) error {
	switch {
	case r.offset%mib != 0 || r.length%mib != 0:
		return m.errorf(structure, at, "offset %d or length %d is not a multiple of 1 MiB", r.offset, r.length)
	case r.offset < headerSection:
		return m.errorf(structure, at, "offset %d lies inside the 1 MiB header section", r.offset)
	case r.length == 0:
		return m.errorf(structure, at, "length is zero")
	case r.offset > m.fileSize || r.length > m.fileSize-r.offset:
		return m.errorf(structure, at, "%d bytes at offset %d run past the end of the %d-byte file (truncated?)", r.length, r.offset, m.fileSize)
	}
	return nil
}

// parseRegionTable says what is wrong with the region table b, or returns
// its entries.
func parseRegionTable(b []byte) ([]region, string) {
	le := binary.LittleEndian
	switch {
	case !bytes.Equal(b[:4], sigRegion):
		return nil, "no \"regi\" signature"
	case !validChecksum(b, 4):
		return nil, "bad CRC-32C checksum"
	}
	n := le.Uint32(b[8:])
	if n > maxRegionEntries {
		return nil, fmt.Sprintf("%d entries, more than the %d allowed", n, maxRegionEntries)
	}
	regions := make([]region, n)
	for i := range regions {
		e := b[16+32*i:]
		copy(regions[i].id[:], e[:16])
		regions[i].offset = int64(le.Uint64(e[16:]) & (1<<62 - 1))
		if le.Uint64(e[16:]) > uint64(maxFileSize) {
			return nil, fmt.Sprintf("entry %d: offset %d is beyond any VHDX", i, le.Uint64(e[16:]))
		}
		regions[i].length = int64(le.Uint32(e[24:]))
		regions[i].required = le.Uint32(e[28:])&1 != 0
	}
	return regions, ""
}

// readRegions reads the region table (the first copy, or the second when
// the first is damaged) and places the BAT and metadata regions.
func (m *Image) readRegions() error {
	var problems []string
	for _, off := range []int64{region1Offset, region2Offset} {
		b := make([]byte, regionTableSize)
		if err := m.readAt(b, off, "region table"); err != nil {
			return err
		}
		regions, p := parseRegionTable(b)
		if p != "" {
			problems = append(problems, fmt.Sprintf("region table at %d: %s", off, p))
			continue
		}
		return m.placeRegions(off, regions)
	}
	return m.errorf("region tables", region1Offset, "neither region table is valid (%s)", strings.Join(problems, "; "))
}

func (m *Image) placeRegions(table int64, regions []region) error {
	var haveBAT, haveMeta bool
	for i, r := range regions {
		at := table + 16 + 32*int64(i)
		name := fmt.Sprintf("region table entry %d", i)
		switch r.id {
		case regionBAT:
			if haveBAT {
				return m.errorf(name, at, "a second BAT region")
			}
			m.bat, haveBAT = r, true
		case regionMetadata:
			if haveMeta {
				return m.errorf(name, at, "a second metadata region")
			}
			m.metadata, haveMeta = r, true
		default:
			if r.required {
				return m.errorf(name, at, "region %s is marked required but is unknown to this reader (a newer VHDX feature); it cannot be read safely", r.id)
			}
			continue // an optional region this reader has no use for
		}
		if err := m.checkPlacement(name, at, r); err != nil {
			return err
		}
	}
	if !haveBAT || !haveMeta {
		return m.errorf("region table", table, "no BAT or no metadata region")
	}
	m.regions = regions
	// Regions, the log and the header section must not overlap.
	spans := []span{{0, headerSection, "header section"}}
	if m.logRegion.length > 0 {
		spans = append(spans, span{m.logRegion.offset, m.logRegion.length, "log"})
	}
	for i, r := range regions {
		if r.id == regionBAT || r.id == regionMetadata || r.length > 0 {
			spans = append(spans, span{r.offset, r.length, fmt.Sprintf("region %d", i)})
		}
	}
	if a, b, ok := overlap(spans); ok {
		return m.errorf("region table", table, "%s and %s overlap", a.what, b.what)
	}
	return nil
}

// span is a run of the file some structure occupies.
type span struct {
	off, length int64
	what        string
}

// overlap sorts spans and returns the first two that overlap.
func overlap(spans []span) (span, span, bool) {
	slices.SortFunc(spans, func(a, b span) int { return cmpInt(a.off, b.off) })
	for i := 1; i < len(spans); i++ {
		if spans[i].off < spans[i-1].off+spans[i-1].length {
			return spans[i-1], spans[i], true
		}
	}
	return span{}, span{}, false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// metadataItem is a metadata table entry (MS-VHDX 2.6.1.2).
type metadataItem struct {
	id     guid
	offset int64 // in the metadata region
	length int64
	flags  uint32
}

// readMetadata reads the metadata table and the items this reader needs.
func (m *Image) readMetadata() error {
	le := binary.LittleEndian
	base := m.metadata.offset
	table := make([]byte, metadataTableSize)
	if err := m.readAt(table, base, "metadata table"); err != nil {
		return err
	}
	if !bytes.Equal(table[:8], sigMetadata) {
		return m.errorf("metadata table", base, "no \"metadata\" signature")
	}
	n := int(le.Uint16(table[10:]))
	if n > maxMetadataEntries {
		return m.errorf("metadata table", base, "%d entries, more than the %d allowed", n, maxMetadataEntries)
	}
	items := map[guid]metadataItem{}
	var spans []span
	for i := range n {
		e := table[32+32*i:]
		it := metadataItem{offset: int64(le.Uint32(e[16:])), length: int64(le.Uint32(e[20:])), flags: le.Uint32(e[24:])}
		copy(it.id[:], e[:16])
		at := base + 32 + 32*int64(i)
		name := fmt.Sprintf("metadata entry %d", i)
		switch {
		case it.length > maxMetadataItem:
			return m.errorf(name, at, "item length %d is more than 1 MiB", it.length)
		case it.length == 0 && it.offset != 0:
			return m.errorf(name, at, "an empty item with offset %d", it.offset)
		case it.length > 0 && (it.offset < metadataTableSize || it.offset+it.length > m.metadata.length):
			return m.errorf(name, at, "item at %d+%d lies outside the metadata region after its table", it.offset, it.length)
		}
		if it.length > 0 {
			spans = append(spans, span{it.offset, it.length, name})
		}
		if it.flags&metaIsUser != 0 {
			continue // user metadata: not this reader's business
		}
		if _, dup := items[it.id]; dup {
			return m.errorf(name, at, "item %s appears twice", it.id)
		}
		switch it.id {
		case itemFileParameters, itemVirtualDiskSize, itemVirtualDiskID, itemLogicalSectorSize, itemPhysicalSectorSize, itemParentLocator:
		default:
			if it.flags&metaIsRequired != 0 {
				return m.errorf(name, at, "item %s is marked required but is unknown to this reader; it cannot be read safely", it.id)
			}
		}
		items[it.id] = it
	}
	if a, b, ok := overlap(spans); ok {
		return m.errorf("metadata table", base, "%s and %s overlap", a.what, b.what)
	}

	read := func(id guid, name string, min int64) ([]byte, int64, error) {
		it, ok := items[id]
		if !ok {
			return nil, base, m.errorf("metadata table", base, "no %s item", name)
		}
		if it.length < min {
			return nil, base + it.offset, m.errorf(name, base+it.offset, "item is %d bytes, want at least %d", it.length, min)
		}
		b := make([]byte, it.length)
		return b, base + it.offset, m.readAt(b, base+it.offset, name)
	}
	b, at, err := read(itemFileParameters, "file parameters", 8)
	if err != nil {
		return err
	}
	m.blockSize, m.params = int64(le.Uint32(b)), le.Uint32(b[4:])
	if m.blockSize < minBlockSize || m.blockSize > maxBlockSize || !isPowerOfTwo(m.blockSize) {
		return m.errorf("file parameters", at, "block size %d is not a power of two from 1 MiB to 256 MiB", m.blockSize)
	}
	if b, at, err = read(itemLogicalSectorSize, "logical sector size", 4); err != nil {
		return err
	}
	m.logicalSector = int64(le.Uint32(b))
	if m.logicalSector != 512 && m.logicalSector != 4096 {
		return m.errorf("logical sector size", at, "%d is neither 512 nor 4096", m.logicalSector)
	}
	if b, at, err = read(itemVirtualDiskSize, "virtual disk size", 8); err != nil {
		return err
	}
	size := le.Uint64(b)
	if size > uint64(disk.MaxVirtualSize) {
		return m.errorf("virtual disk size", at, "virtual size %d is beyond the %d-byte limit", size, disk.MaxVirtualSize)
	}
	if err := disk.CheckVirtualSize(m.f, disk.VHDX, "virtual disk size", at, int64(size), m.logicalSector); err != nil {
		return err
	}
	if it, ok := items[itemPhysicalSectorSize]; ok && it.length >= 4 {
		if b, at, err = read(itemPhysicalSectorSize, "physical sector size", 4); err != nil {
			return err
		}
		if p := le.Uint32(b); p != 512 && p != 4096 {
			return m.errorf("physical sector size", at, "%d is neither 512 nor 4096", p)
		}
	}
	m.ratio = chunkRatio(m.blockSize, m.logicalSector)
	m.info = disk.Info{Format: disk.VHDX, Subformat: "dynamic", VirtualSize: int64(size), ClusterSize: m.blockSize}
	switch {
	case m.params&paramHasParent != 0:
		m.info.Subformat = "differencing"
		if b, at, err = read(itemParentLocator, "parent locator", 20); err != nil {
			return err
		}
		if m.locator, err = m.parseLocator(b, at); err != nil {
			return err
		}
		m.info.Parent = m.parentPath()
	case m.params&paramLeaveBlocksAllocated != 0:
		m.info.Subformat = "fixed"
	}
	return nil
}

// parseLocator reads a VHDX parent locator (MS-VHDX 2.6.2.6) into its
// key-value pairs.
func (m *Image) parseLocator(b []byte, at int64) (map[string]string, error) {
	le := binary.LittleEndian
	var typ guid
	copy(typ[:], b[:16])
	if typ != locatorTypeVHDX {
		return nil, m.errorf("parent locator", at, "locator type %s is not the VHDX parent locator; the parent is not a VHDX file this reader can follow", typ)
	}
	n := int64(le.Uint16(b[18:]))
	if 20+12*n > int64(len(b)) {
		return nil, m.errorf("parent locator", at, "%d key-value entries do not fit in the %d-byte item", n, len(b))
	}
	kv := map[string]string{}
	for i := range n {
		e := b[20+12*i:]
		ko, vo := int64(le.Uint32(e)), int64(le.Uint32(e[4:]))
		kl, vl := int64(le.Uint16(e[8:])), int64(le.Uint16(e[10:]))
		if ko == 0 || vo == 0 || kl == 0 || vl == 0 || ko+kl > int64(len(b)) || vo+vl > int64(len(b)) {
			return nil, m.errorf(fmt.Sprintf("parent locator entry %d", i), at+20+12*i, "key or value lies outside the item")
		}
		k := fromUTF16LE(b[ko : ko+kl])
		if _, dup := kv[k]; dup {
			return nil, m.errorf(fmt.Sprintf("parent locator entry %d", i), at+20+12*i, "key %q appears twice", k)
		}
		kv[k] = fromUTF16LE(b[vo : vo+vl])
	}
	if _, ok := parseGUID(kv["parent_linkage"]); !ok {
		return nil, m.errorf("parent locator", at, "no valid parent_linkage (got %q)", kv["parent_linkage"])
	}
	if kv["relative_path"] == "" && kv["volume_path"] == "" && kv["absolute_win32_path"] == "" {
		return nil, m.errorf("parent locator", at, "no relative_path, volume_path or absolute_win32_path names the parent")
	}
	return kv, nil
}

// parentPath is the parent as the image records it, in the order the spec
// says to try: relative path, volume path, absolute path. Info reports
// the relative or absolute path a user recognises before a volume GUID.
func (m *Image) parentPath() string {
	for _, k := range []string{"relative_path", "absolute_win32_path", "volume_path"} {
		if p := m.locator[k]; p != "" {
			return p
		}
	}
	return ""
}

// readBAT reads the BAT entries the virtual size needs and refuses entries
// in a state the image type forbids, blocks outside the file and blocks
// that overlap each other or the file's structures.
func (m *Image) readBAT() error {
	differencing := m.params&paramHasParent != 0
	m.blocks = (m.info.VirtualSize + m.blockSize - 1) / m.blockSize
	n := batEntries(m.info.VirtualSize, m.blockSize, m.ratio, differencing)
	if n*8 > m.bat.length {
		return m.errorf("BAT", m.bat.offset, "the %d-byte BAT region cannot hold the %d entries a %d-byte disk with %d-byte blocks needs",
			m.bat.length, n, m.info.VirtualSize, m.blockSize)
	}
	raw := make([]byte, n*8)
	if err := m.readAt(raw, m.bat.offset, "BAT"); err != nil {
		return err
	}
	m.entries = make([]uint64, n)
	for i := range m.entries {
		m.entries[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	var first error
	m.checkBAT(false, func(err *disk.FormatError) bool {
		first = err
		return false
	})
	return first
}

// checkBAT reports the BAT's problems to report until it returns false.
// Open refuses what would make reads wrong or unsafe; strict (Check) also
// reports what the spec forbids but reads survive: reserved bits, sector
// bitmap entries in a disk without a parent, 0.95-draft states.
func (m *Image) checkBAT(strict bool, report func(*disk.FormatError) bool) {
	differencing := m.params&paramHasParent != 0
	spans := []span{{0, headerSection, "the header section"}, {m.bat.offset, m.bat.length, "the BAT region"}, {m.metadata.offset, m.metadata.length, "the metadata region"}}
	if m.logRegion.length > 0 {
		spans = append(spans, span{m.logRegion.offset, m.logRegion.length, "the log"})
	}
	entryAt := func(i int64) int64 { return m.bat.offset + 8*i }
	for b := range m.blocks {
		i := payloadIndex(b, m.ratio)
		e := m.entries[i]
		name := fmt.Sprintf("BAT entry %d (block %d)", i, b)
		if strict && batReserved(e) != 0 && !report(m.errorf(name, entryAt(i), "reserved bits set (%#x)", e)) {
			return
		}
		switch batState(e) {
		case payloadNotPresent, payloadUndefined, payloadZero, payloadUnmapped:
		case payloadUnmappedV095:
			if strict && !report(m.errorf(name, entryAt(i), "state 5 (UNMAPPED in the 0.95 draft, reserved since; read as zeros)")) {
				return
			}
		case payloadPartiallyPresent:
			if !differencing {
				if !report(m.errorf(name, entryAt(i), "PARTIALLY_PRESENT in a disk without a parent")) {
					return
				}
				continue
			}
			c := b / m.ratio
			sb := m.entries[bitmapIndex(c, m.ratio)]
			if batState(sb) != bitmapPresent {
				if !report(m.errorf(name, entryAt(i), "PARTIALLY_PRESENT but the sector bitmap of chunk %d is not present", c)) {
					return
				}
				continue
			}
			fallthrough
		case payloadFullyPresent:
			off := batOffset(e)
			used := min(m.blockSize, m.info.VirtualSize-b*m.blockSize)
			if off < headerSection || off > m.fileSize || used > m.fileSize-off {
				if !report(m.errorf(name, entryAt(i), "block at file offset %d lies outside the %d-byte file", off, m.fileSize)) {
					return
				}
				continue
			}
			spans = append(spans, span{off, m.blockSize, fmt.Sprintf("block %d", b)})
		default:
			if !report(m.errorf(name, entryAt(i), "unknown state %d", batState(e))) {
				return
			}
		}
	}
	for c := range int64(len(m.entries)) / (m.ratio + 1) {
		i := bitmapIndex(c, m.ratio)
		e := m.entries[i]
		name := fmt.Sprintf("BAT entry %d (sector bitmap %d)", i, c)
		if strict && batReserved(e) != 0 && !report(m.errorf(name, entryAt(i), "reserved bits set (%#x)", e)) {
			return
		}
		switch {
		case batState(e) == bitmapNotPresent:
		case !differencing:
			// Readers never look at these; Check names them.
			if strict && !report(m.errorf(name, entryAt(i), "state %d in a disk without a parent, where only NOT_PRESENT is valid", batState(e))) {
				return
			}
		case batState(e) == bitmapPresent:
			off := batOffset(e)
			if off < headerSection || off > m.fileSize || bitmapBlockSize > m.fileSize-off {
				if !report(m.errorf(name, entryAt(i), "sector bitmap at file offset %d lies outside the %d-byte file", off, m.fileSize)) {
					return
				}
				continue
			}
			spans = append(spans, span{off, bitmapBlockSize, fmt.Sprintf("sector bitmap %d", c)})
		default:
			if !report(m.errorf(name, entryAt(i), "unknown sector bitmap state %d", batState(e))) {
				return
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmpInt(a.off, b.off) })
	for k := 1; k < len(spans); k++ {
		prev := spans[k-1]
		if spans[k].off < prev.off+prev.length {
			if !report(m.errorf("BAT", m.bat.offset, "%s at file offset %d overlaps %s at %d", spans[k].what, spans[k].off, prev.what, prev.off)) {
				return
			}
		}
	}
}

// openParent opens the parent of a differencing image beside it and checks
// that it is the parent the image was made against.
func (m *Image) openParent(chain []string) error {
	chain = append(chain, m.f.Name)
	if len(chain) > maxChainDepth {
		return m.errorf("parent locator", -1, "the differencing chain is deeper than %d images", maxChainDepth)
	}
	recorded := m.parentPath()
	if m.f.Open == nil {
		return m.errorf("parent locator", -1, "a differencing image whose parent %q cannot be looked up here; %s", recorded, mergeAdvice(recorded))
	}
	var pf *disk.File
	var openErr error
	for _, k := range []string{"relative_path", "volume_path", "absolute_win32_path"} {
		if p := m.locator[k]; p != "" {
			if pf, openErr = m.f.Open(p); openErr == nil {
				break
			}
		}
	}
	if pf == nil {
		return &disk.FormatError{File: m.f.Name, Format: disk.VHDX, Structure: "parent locator", Offset: -1,
			Problem: fmt.Sprintf("the parent %s (recorded as %q) is not beside the image; %s", baseName(recorded), recorded, mergeAdvice(recorded)),
			Err:     openErr}
	}
	if slices.Contains(chain, pf.Name) {
		pf.Close()
		return m.errorf("parent locator", -1, "the parent %s is already in the chain (%s): a loop", pf.Name, strings.Join(chain, " → "))
	}
	parent, err := open(pf, chain)
	if err != nil {
		pf.Close()
		return err
	}
	linkage, _ := parseGUID(m.locator["parent_linkage"])
	linkage2, ok2 := parseGUID(m.locator["parent_linkage2"])
	if got := parent.header.dataWriteGUID; got != linkage && !(ok2 && got == linkage2) {
		parent.Close()
		pf.Close()
		return m.errorf("parent locator", -1,
			"the parent %s has DataWriteGuid %s but this image was made against %s: the parent was modified after this image was created or is another disk; refusing to read a mismatched chain",
			pf.Name, got, linkage)
	}
	if parent.logicalSector != m.logicalSector {
		parent.Close()
		pf.Close()
		return m.errorf("logical sector size", -1, "%d bytes, but the parent %s has %d-byte sectors", m.logicalSector, pf.Name, parent.logicalSector)
	}
	m.parent, m.parentFile = parent, pf
	return nil
}

func mergeAdvice(parent string) string {
	// qemu-img cannot help here: it does not read differencing VHDX.
	return fmt.Sprintf("put %s beside the image, or merge the chain into one disk where the parent is present (Hyper-V: Merge-VHD, or hyperctl disk convert with the parent beside the image)", baseName(parent))
}

// baseName is the last element of a Windows or slash path.
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Info describes the image.
func (m *Image) Info() disk.Info { return m.info }

// Close closes the parent chain this image opened.
func (m *Image) Close() error {
	if m.parent == nil {
		return nil
	}
	return errors.Join(m.parent.Close(), m.parentFile.Close())
}

// ReadAt reads the virtual disk. It is safe for concurrent use: it only
// reads the file and the in-memory BAT.
func (m *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("vhdx: negative offset")
	}
	size := m.info.VirtualSize
	if off >= size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	for done := 0; done < n; {
		pos := off + int64(done)
		b, in := pos/m.blockSize, pos%m.blockSize
		k := int(min(int64(n-done), m.blockSize-in))
		if err := m.readBlock(p[done:done+k], b, pos); err != nil {
			return done, err
		}
		done += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readBlock fills p from block b, p starting at virtual offset pos.
func (m *Image) readBlock(p []byte, b, pos int64) error {
	e := m.entries[payloadIndex(b, m.ratio)]
	switch batState(e) {
	case payloadFullyPresent:
		return m.readAt(p, batOffset(e)+pos-b*m.blockSize, fmt.Sprintf("block %d", b))
	case payloadPartiallyPresent:
		return m.readPartial(p, b, pos, batOffset(e))
	case payloadNotPresent:
		if m.parent != nil {
			return m.readParent(p, pos)
		}
	}
	clear(p) // ZERO, UNMAPPED, UNDEFINED: zeros, never stale data
	return nil
}

// readParent reads p from the parent at pos; past the parent's end
// (a child grown after it was forked) the disk reads as zeros.
func (m *Image) readParent(p []byte, pos int64) error {
	n, err := m.parent.ReadAt(p, pos)
	if err == io.EOF {
		err = nil
	}
	clear(p[n:])
	return err
}

// sectorBitmap reads the bits of block b's sector bitmap for the sectors
// from virtual offset pos through end, whole bytes around them; first is
// the sector of bit 0 of the result.
func (m *Image) sectorBitmap(b, pos, end int64) (bits []byte, first int64, err error) {
	ss := m.logicalSector
	c := b / m.ratio
	sb := batOffset(m.entries[bitmapIndex(c, m.ratio)])
	s0, s1 := pos/ss, (end+ss-1)/ss // sectors [s0, s1)
	chunkFirst := c * sectorsPerBitmapBlock
	lo, hi := (s0-chunkFirst)/8, (s1-chunkFirst+7)/8
	bits = make([]byte, hi-lo)
	if err := m.readAt(bits, sb+lo, fmt.Sprintf("sector bitmap %d", c)); err != nil {
		return nil, 0, err
	}
	return bits, chunkFirst + lo*8, nil
}

// readPartial reads a PARTIALLY_PRESENT block: sectors whose bitmap bit is
// set from this file, the others from the parent.
func (m *Image) readPartial(p []byte, b, pos int64, blockOff int64) error {
	ss := m.logicalSector
	end := pos + int64(len(p))
	bits, first, err := m.sectorBitmap(b, pos, end)
	if err != nil {
		return err
	}
	present := func(s int64) bool { i := s - first; return bits[i/8]>>(i%8)&1 != 0 }
	for at := pos; at < end; {
		here := present(at / ss)
		runEnd := (at/ss + 1) * ss
		for runEnd < end && present(runEnd/ss) == here {
			runEnd += ss
		}
		runEnd = min(runEnd, end)
		q := p[at-pos : runEnd-pos]
		if here {
			err = m.readAt(q, blockOff+at-b*m.blockSize, fmt.Sprintf("block %d", b))
		} else {
			err = m.readParent(q, at)
		}
		if err != nil {
			return err
		}
		at = runEnd
	}
	return nil
}

// Extents yields the runs holding data: fully present blocks, the present
// sectors of partially present blocks and, for a differencing image, the
// parent's extents (a superset of what shows through, which is allowed:
// extents may hold zeros). ZERO, UNMAPPED, UNDEFINED and, without a
// parent, NOT_PRESENT blocks are holes.
func (m *Image) Extents() iter.Seq2[disk.Extent, error] {
	own := m.ownExtents()
	if m.parent == nil {
		return own
	}
	return mergeExtents(own, clipExtents(m.parent.Extents(), m.info.VirtualSize))
}

func (m *Image) ownExtents() iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		var cur disk.Extent
		emit := func(e disk.Extent) bool {
			if cur.Length > 0 && cur.End() == e.Offset {
				cur.Length += e.Length
				return true
			}
			if cur.Length > 0 && !yield(cur, nil) {
				return false
			}
			cur = e
			return true
		}
		size := m.info.VirtualSize
		for b := range m.blocks {
			start := b * m.blockSize
			end := min(start+m.blockSize, size)
			switch batState(m.entries[payloadIndex(b, m.ratio)]) {
			case payloadFullyPresent:
				if !emit(disk.Extent{Offset: start, Length: end - start}) {
					return
				}
			case payloadPartiallyPresent:
				bits, first, err := m.sectorBitmap(b, start, end)
				if err != nil {
					yield(disk.Extent{}, err)
					return
				}
				ss := m.logicalSector
				for s := start / ss; s*ss < end; s++ {
					if i := s - first; bits[i/8]>>(i%8)&1 != 0 {
						if !emit(disk.Extent{Offset: s * ss, Length: min(ss, end-s*ss)}) {
							return
						}
					}
				}
			}
		}
		if cur.Length > 0 {
			yield(cur, nil)
		}
	}
}

// clipExtents cuts extents at size.
func clipExtents(seq iter.Seq2[disk.Extent, error], size int64) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		for e, err := range seq {
			if err != nil {
				yield(e, err)
				return
			}
			if e.Offset >= size {
				return
			}
			e.Length = min(e.Length, size-e.Offset)
			if !yield(e, nil) {
				return
			}
		}
	}
}

// mergeExtents is the union of two ascending extent sequences, ascending
// and merged where they touch.
func mergeExtents(a, b iter.Seq2[disk.Extent, error]) iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		nextA, stopA := iter.Pull2(a)
		defer stopA()
		nextB, stopB := iter.Pull2(b)
		defer stopB()
		ea, errA, okA := nextA()
		eb, errB, okB := nextB()
		var cur disk.Extent
		for okA || okB {
			if errA != nil && okA {
				yield(disk.Extent{}, errA)
				return
			}
			if errB != nil && okB {
				yield(disk.Extent{}, errB)
				return
			}
			var e disk.Extent
			if okA && (!okB || ea.Offset <= eb.Offset) {
				e = ea
				ea, errA, okA = nextA()
			} else {
				e = eb
				eb, errB, okB = nextB()
			}
			switch {
			case cur.Length == 0:
				cur = e
			case e.Offset <= cur.End():
				cur.Length = max(cur.End(), e.End()) - cur.Offset
			default:
				if !yield(cur, nil) {
					return
				}
				cur = e
			}
		}
		if cur.Length > 0 {
			yield(cur, nil)
		}
	}
}

// Check re-reads the image's structures and reports every problem: damaged
// header or region table copies (Open needs only one of each), metadata
// items the spec requires that Open does without, and every BAT entry
// out of range, in a forbidden state, with reserved bits, or overlapping
// another block or structure. The parent chain is checked too.
func (m *Image) Check(ctx context.Context) error {
	var problems []error
	const maxProblems = 100
	add := func(err *disk.FormatError) bool {
		problems = append(problems, err)
		return len(problems) < maxProblems && ctx.Err() == nil
	}
	for _, off := range []int64{header1Offset, header2Offset} {
		b := make([]byte, headerSize)
		if err := m.readAt(b, off, "header"); err != nil {
			return err
		}
		if p := checkHeader(b); p != "" {
			add(m.errorf("header", off, "%s", p))
		}
	}
	for _, off := range []int64{region1Offset, region2Offset} {
		b := make([]byte, regionTableSize)
		if err := m.readAt(b, off, "region table"); err != nil {
			return err
		}
		if _, p := parseRegionTable(b); p != "" {
			add(m.errorf("region table", off, "%s", p))
		}
	}
	if err := m.checkMetadata(); err != nil {
		add(err)
	}
	m.checkBAT(true, add)
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.parent != nil {
		if err := m.parent.Check(ctx); err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
}

// checkMetadata names what Open tolerates in the metadata: missing
// Virtual Disk ID or Physical Sector Size items, reserved flag bits.
func (m *Image) checkMetadata() *disk.FormatError {
	le := binary.LittleEndian
	base := m.metadata.offset
	table := make([]byte, metadataTableSize)
	if err := m.readAt(table, base, "metadata table"); err != nil {
		return err.(*disk.FormatError)
	}
	seen := map[guid]bool{}
	for i := range int(le.Uint16(table[10:])) {
		e := table[32+32*i:]
		var id guid
		copy(id[:], e[:16])
		if le.Uint32(e[24:])&metaIsUser == 0 {
			seen[id] = true
		}
	}
	for _, want := range []struct {
		id   guid
		name string
	}{{itemVirtualDiskID, "virtual disk ID"}, {itemPhysicalSectorSize, "physical sector size"}} {
		if !seen[want.id] {
			return m.errorf("metadata table", base, "no %s item", want.name)
		}
	}
	if m.params&^(paramLeaveBlocksAllocated|paramHasParent) != 0 {
		return m.errorf("file parameters", -1, "reserved flag bits set (%#x)", m.params)
	}
	return nil
}
