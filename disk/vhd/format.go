package vhd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf16"
)

// On-disk constants of the VHD specification (Microsoft Virtual Hard Disk
// Image Format Specification, version 1.0). Every integer is big-endian.
const (
	footerSize = 512  // the hard disk footer, and its copy at 0 in dynamic disks
	headerSize = 1024 // the dynamic disk header

	footerCookie = "conectix"
	headerCookie = "cxsparse"

	formatVersion = 0x00010000 // footer File Format Version and header Header Version
	featuresBase  = 0x00000002 // the "reserved" feature bit, always set

	typeFixed        = 2
	typeDynamic      = 3
	typeDifferencing = 4

	noDataOffset = ^uint64(0) // a fixed disk's footer Data Offset, a header's Data Offset
	batUnused    = 0xFFFFFFFF // a BAT entry for a block not in the file

	// maxDynamicSize is the largest dynamic disk the specification allows
	// (2040 GiB, 0xFF000000 sectors; qemu refuses more too). BAT entries are
	// 32-bit sector numbers, so a dynamic file cannot reach past 2 TiB anyway.
	maxDynamicSize = 0xFF000000 * 512

	// maxBATEntries bounds the BAT held in memory (16 MiB): the largest
	// dynamic disk in Virtual PC's smallest blocks (2040 GiB / 512 KiB) fits.
	maxBATEntries = 1 << 22

	// minBlockSize and maxBlockSize bound a dynamic disk's block: a power of
	// two from one sector (what qemu accepts) to 2 GiB (the 32-bit field's
	// largest power of two). Hyper-V and qemu write 2 MiB; Virtual PC 512 KiB.
	minBlockSize = 512
	maxBlockSize = 1 << 31

	// maxCHSSectors is the largest geometry the footer can express
	// (65535 cylinders, 16 heads, 255 sectors per track).
	maxCHSSectors = 65535 * 16 * 255
)

// epoch is the origin of VHD time stamps.
var epoch = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// footer is the hard disk footer, the only structure of a fixed disk.
type footer struct {
	Features        uint32
	Version         uint32
	DataOffset      uint64 // the dynamic header's file offset; noDataOffset for fixed disks
	Timestamp       uint32 // seconds since epoch
	CreatorApp      [4]byte
	CreatorVersion  uint32
	CreatorOS       [4]byte
	OriginalSize    uint64
	CurrentSize     uint64
	Cylinders       uint16
	Heads           uint8
	SectorsPerTrack uint8
	DiskType        uint32
	Checksum        uint32
	UniqueID        [16]byte
	SavedState      uint8
}

// checksum is the specification's checksum: the one's complement of the
// sum of every byte of b except the four at sumAt (the checksum field).
func checksum(b []byte, sumAt int) uint32 {
	var sum uint32
	for i, c := range b {
		if i < sumAt || i >= sumAt+4 {
			sum += uint32(c)
		}
	}
	return ^sum
}

const footerSumAt = 64

// parseFooter decodes a 512-byte footer. It returns the problem with it
// ("" when cookie and checksum are right) alongside what it decoded.
func parseFooter(b []byte) (footer, string) {
	be := binary.BigEndian
	var f footer
	if !bytes.Equal(b[:8], []byte(footerCookie)) {
		return f, fmt.Sprintf("cookie is %q, not %q", printable(b[:8]), footerCookie)
	}
	f.Features = be.Uint32(b[8:])
	f.Version = be.Uint32(b[12:])
	f.DataOffset = be.Uint64(b[16:])
	f.Timestamp = be.Uint32(b[24:])
	copy(f.CreatorApp[:], b[28:32])
	f.CreatorVersion = be.Uint32(b[32:])
	copy(f.CreatorOS[:], b[36:40])
	f.OriginalSize = be.Uint64(b[40:])
	f.CurrentSize = be.Uint64(b[48:])
	f.Cylinders = be.Uint16(b[56:])
	f.Heads = b[58]
	f.SectorsPerTrack = b[59]
	f.DiskType = be.Uint32(b[60:])
	f.Checksum = be.Uint32(b[64:])
	copy(f.UniqueID[:], b[68:84])
	f.SavedState = b[84]
	if sum := checksum(b[:footerSize], footerSumAt); sum != f.Checksum {
		return f, fmt.Sprintf("checksum is %#08x, the bytes sum to %#08x", f.Checksum, sum)
	}
	return f, ""
}

// marshal encodes f with its checksum computed.
func (f *footer) marshal() []byte {
	be := binary.BigEndian
	b := make([]byte, footerSize)
	copy(b, footerCookie)
	be.PutUint32(b[8:], f.Features)
	be.PutUint32(b[12:], f.Version)
	be.PutUint64(b[16:], f.DataOffset)
	be.PutUint32(b[24:], f.Timestamp)
	copy(b[28:], f.CreatorApp[:])
	be.PutUint32(b[32:], f.CreatorVersion)
	copy(b[36:], f.CreatorOS[:])
	be.PutUint64(b[40:], f.OriginalSize)
	be.PutUint64(b[48:], f.CurrentSize)
	be.PutUint16(b[56:], f.Cylinders)
	b[58] = f.Heads
	b[59] = f.SectorsPerTrack
	be.PutUint32(b[60:], f.DiskType)
	copy(b[68:], f.UniqueID[:])
	b[84] = f.SavedState
	f.Checksum = checksum(b, footerSumAt)
	be.PutUint32(b[footerSumAt:], f.Checksum)
	return b
}

// header is the dynamic disk header (differencing disks share it).
type header struct {
	DataOffset      uint64 // unused: noDataOffset
	TableOffset     uint64 // the BAT's file offset
	Version         uint32
	MaxTableEntries uint32
	BlockSize       uint32
	Checksum        uint32
	ParentID        [16]byte
	ParentTimestamp uint32
	ParentName      string // UTF-16BE in the file
}

const headerSumAt = 36

// parseHeader decodes a 1024-byte dynamic header, returning the problem
// with its cookie or checksum ("" when both are right).
func parseHeader(b []byte) (header, string) {
	be := binary.BigEndian
	var h header
	if !bytes.Equal(b[:8], []byte(headerCookie)) {
		return h, fmt.Sprintf("cookie is %q, not %q", printable(b[:8]), headerCookie)
	}
	h.DataOffset = be.Uint64(b[8:])
	h.TableOffset = be.Uint64(b[16:])
	h.Version = be.Uint32(b[24:])
	h.MaxTableEntries = be.Uint32(b[28:])
	h.BlockSize = be.Uint32(b[32:])
	h.Checksum = be.Uint32(b[36:])
	copy(h.ParentID[:], b[40:56])
	h.ParentTimestamp = be.Uint32(b[56:])
	h.ParentName = decodeUTF16BE(b[64:576])
	if sum := checksum(b[:headerSize], headerSumAt); sum != h.Checksum {
		return h, fmt.Sprintf("checksum is %#08x, the bytes sum to %#08x", h.Checksum, sum)
	}
	return h, ""
}

// marshal encodes a dynamic disk's header (no parent) with its checksum.
func (h *header) marshal() []byte {
	be := binary.BigEndian
	b := make([]byte, headerSize)
	copy(b, headerCookie)
	be.PutUint64(b[8:], h.DataOffset)
	be.PutUint64(b[16:], h.TableOffset)
	be.PutUint32(b[24:], h.Version)
	be.PutUint32(b[28:], h.MaxTableEntries)
	be.PutUint32(b[32:], h.BlockSize)
	h.Checksum = checksum(b, headerSumAt)
	be.PutUint32(b[headerSumAt:], h.Checksum)
	return b
}

// decodeUTF16BE decodes a NUL-terminated (or full) UTF-16BE field.
func decodeUTF16BE(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.BigEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// printable shows a magic that is not ours without control characters.
func printable(b []byte) string {
	return string(bytes.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '.'
		}
		return r
	}, b))
}

// geometry is the specification's CHS algorithm for a disk of size bytes:
// the largest geometry not beyond the size, capped at 65535/16/255. Guests
// of Virtual PC saw only cylinders × heads × sectors; everything else uses
// Current Size.
func geometry(size int64) (cylinders uint16, heads, sectorsPerTrack uint8) {
	total := min(size/512, maxCHSSectors)
	var spt, h, cth int64
	if total >= 65535*16*63 {
		spt, h = 255, 16
		cth = total / spt
	} else {
		spt = 17
		cth = total / spt
		h = max((cth+1023)/1024, 4)
		if cth >= h*1024 || h > 16 {
			spt, h = 31, 16
			cth = total / spt
		}
		if cth >= h*1024 {
			spt, h = 63, 16
			cth = total / spt
		}
	}
	return uint16(cth / h), uint8(h), uint8(spt)
}
