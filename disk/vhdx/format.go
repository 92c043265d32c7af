package vhdx

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf16"
)

// Sizes and offsets fixed by [MS-VHDX].
const (
	mib = 1 << 20
	kib = 1 << 10

	fileIDOffset    = 0
	header1Offset   = 64 * kib
	header2Offset   = 128 * kib
	region1Offset   = 192 * kib
	region2Offset   = 256 * kib
	headerSize      = 4 * kib  // the checksummed part of a header
	regionTableSize = 64 * kib // the checksummed region table
	headerSection   = 1 * mib  // everything above lives in the first MiB

	maxRegionEntries   = 2047
	maxMetadataEntries = 2047
	metadataTableSize  = 64 * kib
	maxMetadataItem    = 1 * mib

	minBlockSize = 1 * mib
	maxBlockSize = 256 * mib

	// A sector bitmap block covers 2^23 sectors whatever the sector size.
	sectorsPerBitmapBlock = 1 << 23
	bitmapBlockSize       = 1 * mib

	logSectorSize = 4 * kib

	// maxChainDepth bounds differencing chains (Hyper-V's own limit is far
	// below this); a longer chain is refused rather than followed.
	maxChainDepth = 16
)

// Payload and sector bitmap BAT entry states (MS-VHDX 2.5.1).
const (
	payloadNotPresent       = 0
	payloadUndefined        = 1
	payloadZero             = 2
	payloadUnmapped         = 3
	payloadUnmappedV095     = 5 // UNMAPPED in the 0.95 draft; still found in old files
	payloadFullyPresent     = 6
	payloadPartiallyPresent = 7

	bitmapNotPresent = 0
	bitmapPresent    = 6
)

// batState and batOffset split a BAT entry: the state in bits 0–2, 17
// reserved bits, the file offset in MiB in bits 20–63.
func batState(e uint64) uint64                { return e & 7 }
func batOffset(e uint64) int64                { return int64(e>>20) * mib }
func batReserved(e uint64) uint64             { return e & 0xffff8 }
func batEntry(state uint64, off int64) uint64 { return state | uint64(off/mib)<<20 }

// guid is a GUID in its on-disk form: the first three fields little-endian.
type guid [16]byte

// mustGUID parses the canonical text form ("CAA16737-FA36-…").
func mustGUID(s string) guid {
	g, ok := parseGUID(s)
	if !ok {
		panic("vhdx: bad GUID literal " + s)
	}
	return g
}

// parseGUID parses a GUID written as text, with or without braces, in
// either case.
func parseGUID(s string) (guid, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	var g guid
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, false
	}
	b, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
	if err != nil {
		return g, false
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g, true
}

// String is the lowercase braced form parent locators use.
func (g guid) String() string {
	return fmt.Sprintf("{%08x-%04x-%04x-%x-%x}",
		binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

func (g guid) isZero() bool { return g == guid{} }

// Region, metadata item and parent locator type GUIDs (MS-VHDX 2.2.3, 2.6.2).
var (
	regionBAT      = mustGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	regionMetadata = mustGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")

	itemFileParameters     = mustGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	itemVirtualDiskSize    = mustGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	itemVirtualDiskID      = mustGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	itemLogicalSectorSize  = mustGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	itemPhysicalSectorSize = mustGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
	itemParentLocator      = mustGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")

	locatorTypeVHDX = mustGUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")
)

// Signatures, as the little-endian integers the spec names them by.
var (
	sigFile     = []byte("vhdxfile")
	sigHeader   = []byte("head")
	sigRegion   = []byte("regi")
	sigMetadata = []byte("metadata")
	sigLogEntry = []byte("loge")
	sigZeroDesc = []byte("zero")
	sigDataDesc = []byte("desc")
	sigData     = []byte("data")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of b with the 4-byte checksum field at off
// taken as zero, as every VHDX checksum is computed.
func checksum(b []byte, off int) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:off])
	c = crc32.Update(c, castagnoli, zero[:])
	return crc32.Update(c, castagnoli, b[off+4:])
}

// putChecksum stores the checksum of b at off.
func putChecksum(b []byte, off int) {
	binary.LittleEndian.PutUint32(b[off:], checksum(b, off))
}

// validChecksum reports whether the checksum stored at off matches b.
func validChecksum(b []byte, off int) bool {
	return binary.LittleEndian.Uint32(b[off:]) == checksum(b, off)
}

// header is the part of a VHDX header (MS-VHDX 2.2.2) readers use.
type header struct {
	sequence      uint64
	fileWriteGUID guid
	dataWriteGUID guid
	logGUID       guid
	logVersion    uint16
	version       uint16
	logLength     uint32
	logOffset     uint64
}

func parseHeader(b []byte) header {
	le := binary.LittleEndian
	var h header
	h.sequence = le.Uint64(b[8:])
	copy(h.fileWriteGUID[:], b[16:32])
	copy(h.dataWriteGUID[:], b[32:48])
	copy(h.logGUID[:], b[48:64])
	h.logVersion = le.Uint16(b[64:])
	h.version = le.Uint16(b[66:])
	h.logLength = le.Uint32(b[68:])
	h.logOffset = le.Uint64(b[72:])
	return h
}

// marshal is the 4 KiB header with its checksum.
func (h header) marshal() []byte {
	le := binary.LittleEndian
	b := make([]byte, headerSize)
	copy(b, sigHeader)
	le.PutUint64(b[8:], h.sequence)
	copy(b[16:], h.fileWriteGUID[:])
	copy(b[32:], h.dataWriteGUID[:])
	copy(b[48:], h.logGUID[:])
	le.PutUint16(b[64:], h.logVersion)
	le.PutUint16(b[66:], h.version)
	le.PutUint32(b[68:], h.logLength)
	le.PutUint64(b[72:], h.logOffset)
	putChecksum(b, 4)
	return b
}

// region is a region table entry (MS-VHDX 2.2.3.2).
type region struct {
	id       guid
	offset   int64
	length   int64
	required bool
}

// marshalRegionTable is a 64 KiB region table holding regions.
func marshalRegionTable(regions []region) []byte {
	le := binary.LittleEndian
	b := make([]byte, regionTableSize)
	copy(b, sigRegion)
	le.PutUint32(b[8:], uint32(len(regions)))
	for i, r := range regions {
		e := b[16+32*i:]
		copy(e, r.id[:])
		le.PutUint64(e[16:], uint64(r.offset))
		le.PutUint32(e[24:], uint32(r.length))
		if r.required {
			le.PutUint32(e[28:], 1)
		}
	}
	putChecksum(b, 4)
	return b
}

// Metadata table entry flags (MS-VHDX 2.6.1.2).
const (
	metaIsUser        = 1 << 0
	metaIsVirtualDisk = 1 << 1
	metaIsRequired    = 1 << 2
)

// File Parameters flags (MS-VHDX 2.6.2.1).
const (
	paramLeaveBlocksAllocated = 1 << 0
	paramHasParent            = 1 << 1
)

// utf16le encodes s as UTF-16 little-endian, as VHDX stores every string.
func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// fromUTF16LE decodes UTF-16 little-endian bytes (an odd length is cut).
func fromUTF16LE(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// chunkRatio is the number of payload blocks one sector bitmap block
// covers (MS-VHDX 2.4): 2^23 sectors' worth of blocks.
func chunkRatio(blockSize, logicalSector int64) int64 {
	return sectorsPerBitmapBlock * logicalSector / blockSize
}

// batEntries is how many BAT entries a disk needs (MS-VHDX 2.5): for a
// dynamic or fixed disk every payload entry with the bitmap entries
// interleaved before the last one; for a differencing disk also the bitmap
// entry after the last chunk.
func batEntries(virtualSize, blockSize, ratio int64, differencing bool) int64 {
	blocks := (virtualSize + blockSize - 1) / blockSize
	if differencing {
		chunks := (blocks + ratio - 1) / ratio
		return chunks * (ratio + 1)
	}
	return blocks + (blocks-1)/ratio
}

// payloadIndex is the BAT index of payload block b; bitmapIndex is the
// index of the sector bitmap entry for chunk c.
func payloadIndex(b, ratio int64) int64 { return b + b/ratio }
func bitmapIndex(c, ratio int64) int64  { return c*(ratio+1) + ratio }

func isPowerOfTwo(n int64) bool { return n > 0 && n&(n-1) == 0 }
