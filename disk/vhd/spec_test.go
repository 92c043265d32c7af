package vhd

import (
	"encoding/binary"
	"unicode/utf16"
)

// Fixtures built straight from the specification's tables, independent of
// the package's own encoders, so the reader is tested against the format
// and not against the writer.

var be = binary.BigEndian

// specSum stores at b[at:at+4] the one's complement of the sum of all of
// b's bytes with that field taken as zero.
func specSum(b []byte, at int) {
	be.PutUint32(b[at:], 0)
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	be.PutUint32(b[at:], ^s)
}

// specFooterFields are the footer fields fixtures vary.
type specFooterFields struct {
	creatorApp     string // four bytes, NUL-padded
	creatorVersion uint32
	creatorOS      string
	size           uint64
	cylinders      uint16
	heads, spt     uint8
	diskType       uint32
	dataOffset     uint64
}

// specFooter lays out the 512-byte hard disk footer (specification,
// "Hard Disk Footer Format").
func specFooter(f specFooterFields) []byte {
	b := make([]byte, 512)
	copy(b[0:], "conectix")
	be.PutUint32(b[8:], 2)           // Features: reserved bit
	be.PutUint32(b[12:], 0x00010000) // File Format Version
	be.PutUint64(b[16:], f.dataOffset)
	be.PutUint32(b[24:], 0x2C5F1E00) // Time Stamp: some day in 2023
	copy(b[28:32], f.creatorApp)
	be.PutUint32(b[32:], f.creatorVersion)
	copy(b[36:40], f.creatorOS)
	be.PutUint64(b[40:], f.size) // Original Size
	be.PutUint64(b[48:], f.size) // Current Size
	be.PutUint16(b[56:], f.cylinders)
	b[58], b[59] = f.heads, f.spt
	be.PutUint32(b[60:], f.diskType)
	copy(b[68:84], "0123456789abcdef") // Unique Id
	specSum(b, 64)
	return b
}

// specBlock is one block of a dynamic fixture: its BAT index, sector
// bitmap (padded by the builder) and data (blockSize bytes).
type specBlock struct {
	index  int
	bitmap []byte
	data   []byte
}

// specDynamicLayout is where specDynamic put things.
type specDynamicLayout struct {
	headerAt, tableAt int64
	blockAt           []int64 // per specBlock, in order
	footerAt          int64
}

// specDynamic lays out a dynamic (or, with diskType 4, differencing) disk:
// footer copy, header at 512, BAT at 1536 padded to a sector, the blocks in
// the given order, footer.
func specDynamic(size int64, blockSize uint32, diskType uint32, parent string, blocks []specBlock) ([]byte, specDynamicLayout) {
	entries := (size + int64(blockSize) - 1) / int64(blockSize)
	l := specDynamicLayout{headerAt: 512, tableAt: 1536}
	batLen := (entries*4 + 511) / 512 * 512
	bitmapLen := (int64(blockSize)/512/8 + 511) / 512 * 512

	hdr := make([]byte, 1024)
	copy(hdr, "cxsparse")
	be.PutUint64(hdr[8:], ^uint64(0)) // Data Offset: unused
	be.PutUint64(hdr[16:], uint64(l.tableAt))
	be.PutUint32(hdr[24:], 0x00010000)
	be.PutUint32(hdr[28:], uint32(entries))
	be.PutUint32(hdr[32:], blockSize)
	for i, u := range utf16.Encode([]rune(parent)) {
		be.PutUint16(hdr[64+2*i:], u)
	}
	specSum(hdr, 36)

	bat := make([]byte, batLen)
	for i := range bat {
		bat[i] = 0xFF
	}
	file := make([]byte, l.tableAt+batLen)
	at := int64(len(file))
	for _, b := range blocks {
		be.PutUint32(bat[4*b.index:], uint32(at/512))
		bm := make([]byte, bitmapLen)
		copy(bm, b.bitmap)
		file = append(file, bm...)
		file = append(file, b.data...)
		l.blockAt = append(l.blockAt, at)
		at = int64(len(file))
	}
	// The reader ignores the geometry; geometry() itself is tested
	// against qemu-img's.
	c, h, s := geometry(size)
	ft := specFooter(specFooterFields{creatorApp: "win ", creatorVersion: 0x000a0000, creatorOS: "Wi2k",
		size: uint64(size), cylinders: c, heads: h, spt: s, diskType: diskType, dataOffset: 512})
	copy(file, ft)
	copy(file[l.headerAt:], hdr)
	copy(file[l.tableAt:], bat)
	l.footerAt = int64(len(file))
	return append(file, ft...), l
}
