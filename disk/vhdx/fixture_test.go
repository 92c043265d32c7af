package vhdx

// Fixtures built from [MS-VHDX] in the layout Hyper-V writes, with no code
// from the package under test: their own GUID encoding, checksums and
// structure layout, so a misreading of the spec shared by reader and
// writer would not cancel out.

import (
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"unicode/utf16"
)

// specGUID is a GUID's on-disk form (first three fields little-endian).
func specGUID(s string) [16]byte {
	s = strings.NewReplacer("{", "", "}", "", "-", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		panic("bad GUID " + s)
	}
	var g [16]byte
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g
}

func specUTF16(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

// specCRC stores the CRC-32C of b, taken with its field at off zeroed.
func specCRC(b []byte, off int) {
	binary.LittleEndian.PutUint32(b[off:], 0)
	binary.LittleEndian.PutUint32(b[off:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// BAT entry states and Hyper-V's placement: log at 1 MiB (1 MiB long),
// metadata region at 2 MiB (1 MiB), BAT at 3 MiB, payload from 4 MiB on.
const (
	fxNotPresent = 0
	fxZero       = 2
	fxFull       = 6
	fxPartial    = 7
	fxSBPresent  = 6

	fxLogOffset  = 1 << 20
	fxMetaOffset = 2 << 20
	fxBATOffset  = 3 << 20
	fxDataOffset = 4 << 20
)

type fxRegion struct {
	guid     string
	offset   uint64
	length   uint32
	required uint32
}

type fxItem struct {
	guid  string
	flags uint32 // bit 0 IsUser, bit 1 IsVirtualDisk, bit 2 IsRequired
	data  []byte
}

// fixture describes a VHDX file; image lays it out.
type fixture struct {
	virtualSize   uint64
	blockSize     uint32
	logicalSector uint32
	params        uint32 // bit 0 LeaveBlockAllocated, bit 1 HasParent
	dataWriteGUID string
	logGUID       string
	locator       [][2]string // parent locator key-value pairs
	regions       []fxRegion  // nil: Hyper-V's BAT and metadata regions
	extraItems    []fxItem
	bat           map[int]uint64 // BAT index → entry
	writes        map[int64][]byte
	size          int64
}

func fxEntry(state uint64, off int64) uint64 { return state | uint64(off>>20)<<20 }

// items are the metadata items in the order Hyper-V writes them.
func (fx *fixture) items() []fxItem {
	le := binary.LittleEndian
	params := le.AppendUint32(le.AppendUint32(nil, fx.blockSize), fx.params)
	items := []fxItem{
		{"CAA16737-FA36-4D43-B3B6-33F0AA44E76B", 4, params},
		{"2FA54224-CD1B-4876-B211-5DBED83BF4B8", 6, le.AppendUint64(nil, fx.virtualSize)},
		{"BECA12AB-B2E6-4523-93EF-C309E000C746", 6, func() []byte { g := specGUID("6B1C3E2A-52F6-4C6B-9D3A-2F1E0C5B7A91"); return g[:] }()},
		{"8141BF1D-A96F-4709-BA47-F233A8FAAB5F", 6, le.AppendUint32(nil, fx.logicalSector)},
		{"CDA348C7-445D-4471-9CC9-E9885251C556", 6, le.AppendUint32(nil, 4096)},
	}
	if len(fx.locator) > 0 {
		items = append(items, fxItem{"A8D35F2D-B30B-454D-ABF7-D3D84834AB0C", 4, fx.parentLocator()})
	}
	return append(items, fx.extraItems...)
}

// parentLocator is a VHDX parent locator: header, entries, then the keys
// and values as UTF-16LE.
func (fx *fixture) parentLocator() []byte {
	le := binary.LittleEndian
	typ := specGUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")
	b := append([]byte{}, typ[:]...)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, uint16(len(fx.locator)))
	strs := []byte{}
	base := 20 + 12*len(fx.locator)
	for _, kv := range fx.locator {
		k, v := specUTF16(kv[0]), specUTF16(kv[1])
		b = le.AppendUint32(b, uint32(base+len(strs)))
		b = le.AppendUint32(b, uint32(base+len(strs)+len(k)))
		b = le.AppendUint16(b, uint16(len(k)))
		b = le.AppendUint16(b, uint16(len(v)))
		strs = append(append(strs, k...), v...)
	}
	return append(b, strs...)
}

func (fx *fixture) header(seq uint64) []byte {
	le := binary.LittleEndian
	h := make([]byte, 4096)
	copy(h, "head")
	le.PutUint64(h[8:], seq)
	fw := specGUID("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")
	copy(h[16:], fw[:])
	dw := specGUID(fx.dataWriteGUID)
	copy(h[32:], dw[:])
	if fx.logGUID != "" {
		lg := specGUID(fx.logGUID)
		copy(h[48:], lg[:])
	}
	le.PutUint16(h[66:], 1)     // Version
	le.PutUint32(h[68:], 1<<20) // LogLength
	le.PutUint64(h[72:], 1<<20) // LogOffset
	specCRC(h, 4)
	return h
}

// image is the file the fixture describes.
func (fx *fixture) image() []byte {
	le := binary.LittleEndian
	if fx.dataWriteGUID == "" {
		fx.dataWriteGUID = "3B2F6A4C-9D1E-4F7A-8C5B-1E2D3F4A5B6C"
	}
	if fx.logicalSector == 0 {
		fx.logicalSector = 512
	}
	b := make([]byte, fx.size)
	copy(b, "vhdxfile")
	copy(b[8:], specUTF16("Microsoft Windows 10.0.17763.0"))
	copy(b[64<<10:], fx.header(10))
	copy(b[128<<10:], fx.header(11))

	regions := fx.regions
	if regions == nil {
		regions = []fxRegion{
			{"2DC27766-F623-4200-9D64-115E9BFD4A08", fxBATOffset, 1 << 20, 1},
			{"8B7CA206-4790-4B9A-B8FE-575F050F886E", fxMetaOffset, 1 << 20, 1},
		}
	}
	rt := make([]byte, 64<<10)
	copy(rt, "regi")
	le.PutUint32(rt[8:], uint32(len(regions)))
	for i, r := range regions {
		e := rt[16+32*i:]
		g := specGUID(r.guid)
		copy(e, g[:])
		le.PutUint64(e[16:], r.offset)
		le.PutUint32(e[24:], r.length)
		le.PutUint32(e[28:], r.required)
	}
	specCRC(rt, 4)
	copy(b[192<<10:], rt)
	copy(b[256<<10:], rt)

	md := b[fxMetaOffset:]
	copy(md, "metadata")
	items := fx.items()
	le.PutUint16(md[10:], uint16(len(items)))
	at := 64 << 10
	for i, it := range items {
		e := md[32+32*i:]
		g := specGUID(it.guid)
		copy(e, g[:])
		le.PutUint32(e[16:], uint32(at))
		le.PutUint32(e[20:], uint32(len(it.data)))
		le.PutUint32(e[24:], it.flags)
		copy(md[at:], it.data)
		at += len(it.data)
	}
	for i, e := range fx.bat {
		le.PutUint64(b[fxBATOffset+8*i:], e)
	}
	for off, data := range fx.writes {
		copy(b[off:], data)
	}
	return b
}

// pattern is reproducible non-zero test data.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32()) | 1
	}
	return b
}

// hyperVDynamic is a dynamic disk as Hyper-V makes it: 32 MiB blocks,
// 72 MiB and 9 sectors. Blocks 0 and 2 hold data, block 1 is
// NOT_PRESENT; block 2 is the partial last block (the disk ends 8 MiB and
// 9 sectors into it), allocated whole as Hyper-V does.
func hyperVDynamic() (img, want []byte) {
	const size = 72<<20 + 4608
	want = make([]byte, size)
	copy(want[0:], pattern(1, 1<<20))
	copy(want[20<<20:], pattern(2, 4096))
	copy(want[64<<20:], pattern(3, 1<<20))
	copy(want[size-512:], pattern(4, 512))
	fx := &fixture{virtualSize: size, blockSize: 32 << 20, size: fxDataOffset + 64<<20,
		bat: map[int]uint64{0: fxEntry(fxFull, fxDataOffset), 1: fxEntry(fxNotPresent, 0), 2: fxEntry(fxFull, fxDataOffset+32<<20)},
		writes: map[int64][]byte{
			fxDataOffset:          want[0 : 32<<20],
			fxDataOffset + 32<<20: want[64<<20 : size],
		}}
	return fx.image(), want
}

// hyperVFixed is a fixed disk: 2 MiB blocks, all FULLY_PRESENT in order
// after the BAT, LeaveBlockAllocated set.
func hyperVFixed() (img, want []byte) {
	const size = 10 << 20
	want = pattern(5, size)
	clear(want[4<<20 : 6<<20]) // a zero block is still allocated in a fixed disk
	fx := &fixture{virtualSize: size, blockSize: 2 << 20, params: 1, size: fxDataOffset + size,
		bat: map[int]uint64{}, writes: map[int64][]byte{fxDataOffset: want}}
	for i := range 5 {
		fx.bat[i] = fxEntry(fxFull, fxDataOffset+int64(i)*2<<20)
	}
	return fx.image(), want
}

const (
	parentDataWrite = "{8a3c4d2e-1b5f-4e6a-9c7d-0e1f2a3b4c5d}"
	diffBlock       = 2 << 20
	diffSize        = 8 << 20
)

// differencingPair is a parent (dynamic, 2 MiB blocks: blocks 0, 1 and 3
// present, 2 not) and a child against it: block 0 PARTIALLY_PRESENT with a
// sector bitmap (sectors 0–7 and 100–103 of the child's own), block 1
// FULLY_PRESENT, block 2 NOT_PRESENT (the parent's hole), block 3 ZERO
// (zeros over the parent's data). want is the merged disk.
func differencingPair(linkage string) (parent, child, want []byte) {
	parent, fx, want := differencingFixture(linkage)
	return parent, fx.image(), want
}

// differencingFixture is differencingPair with the child still a
// description.
func differencingFixture(linkage string) (parent []byte, child *fixture, want []byte) {
	pdata := pattern(6, diffSize)
	clear(pdata[2*diffBlock : 3*diffBlock])
	pfx := &fixture{virtualSize: diffSize, blockSize: diffBlock, dataWriteGUID: parentDataWrite, size: fxDataOffset + 3*diffBlock,
		bat:    map[int]uint64{0: fxEntry(fxFull, fxDataOffset), 1: fxEntry(fxFull, fxDataOffset+diffBlock), 3: fxEntry(fxFull, fxDataOffset+2*diffBlock)},
		writes: map[int64][]byte{fxDataOffset: pdata[:2*diffBlock], fxDataOffset + 2*diffBlock: pdata[3*diffBlock:]}}
	parent = pfx.image()

	cdata := pattern(7, 2*diffBlock)
	want = append([]byte{}, pdata...)
	bitmap := make([]byte, 1<<20)
	for _, s := range []int{0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103} {
		bitmap[s/8] |= 1 << (s % 8)
		copy(want[s*512:(s+1)*512], cdata[s*512:])
	}
	copy(want[diffBlock:2*diffBlock], cdata[diffBlock:])
	clear(want[3*diffBlock:])
	// Chunk ratio 2^23 × 512 / 2 MiB = 2048: the sector bitmap entry of
	// chunk 0 follows 2048 payload entries.
	const sbOffset = fxDataOffset + 2*diffBlock
	cfx := &fixture{virtualSize: diffSize, blockSize: diffBlock, params: 2, dataWriteGUID: "5C4B3A29-1807-4F6E-8D5C-4B3A29180706",
		size: sbOffset + 1<<20,
		locator: [][2]string{
			{"parent_linkage", linkage},
			{"relative_path", `..\base\parent.vhdx`},
			{"volume_path", `\\?\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\VMs\base\parent.vhdx`},
			{"absolute_win32_path", `C:\Hyper-V\VMs\base\parent.vhdx`},
		},
		bat: map[int]uint64{
			0:    fxEntry(fxPartial, fxDataOffset),
			1:    fxEntry(fxFull, fxDataOffset+diffBlock),
			2:    fxEntry(fxNotPresent, 0),
			3:    fxEntry(fxZero, 0),
			2048: fxEntry(fxSBPresent, sbOffset),
		},
		writes: map[int64][]byte{fxDataOffset: cdata, sbOffset: bitmap}}
	return parent, cfx, want
}

// logEntry is one log entry: a header sector with its descriptors, then
// one data sector per data descriptor.
type fxWrite struct {
	offset uint64
	zero   uint64 // length of a zero descriptor; 0 for a data descriptor
	data   []byte // 4 KiB
}

func fxLogEntry(logGUID string, seq uint64, tail uint32, writes []fxWrite) []byte {
	le := binary.LittleEndian
	descSectors := (len(writes) + 2 + 127) / 128
	nData := 0
	for _, w := range writes {
		if w.zero == 0 {
			nData++
		}
	}
	b := make([]byte, (descSectors+nData)*4096)
	copy(b, "loge")
	le.PutUint32(b[8:], uint32(len(b)))
	le.PutUint32(b[12:], tail)
	le.PutUint64(b[16:], seq)
	le.PutUint32(b[24:], uint32(len(writes)))
	g := specGUID(logGUID)
	copy(b[32:], g[:])
	le.PutUint64(b[48:], 8<<20) // FlushedFileOffset
	le.PutUint64(b[56:], 8<<20) // LastFileOffset
	data := descSectors * 4096
	for i, w := range writes {
		d := b[64+32*i:]
		le.PutUint64(d[16:], w.offset)
		le.PutUint64(d[24:], seq)
		if w.zero > 0 {
			copy(d, "zero")
			le.PutUint64(d[8:], w.zero)
			continue
		}
		copy(d, "desc")
		copy(d[4:8], w.data[4092:])
		copy(d[8:16], w.data[:8])
		s := b[data : data+4096]
		copy(s, "data")
		le.PutUint32(s[4:], uint32(seq>>32))
		copy(s[8:4092], w.data[8:4092])
		le.PutUint32(s[4092:], uint32(seq))
		data += 4096
	}
	specCRC(b, 4)
	return b
}

// logged is a dynamic disk (1 MiB blocks, 4 MiB) whose BAT on disk says
// block 0 is NOT_PRESENT, with a pending log: entry 1 rewrites the BAT's
// first sector to make block 0 FULLY_PRESENT at 5 MiB, entry 2 zeroes the
// first 8 KiB of block 1. The log sits 12 KiB into the log region with a
// stale entry of another log before it.
func logged() (img, want []byte) { return loggedWith(1 << 20) }

// loggedWith is logged with n bytes of data at the start of blocks 0 and 1.
func loggedWith(n int) (img, want []byte) {
	const logGUID = "7D6C5B4A-3928-4716-A5F4-E3D2C1B0A998"
	const size = 4 << 20
	want = make([]byte, size)
	copy(want, pattern(8, n))
	b1 := make([]byte, 1<<20)
	copy(b1, pattern(9, n))
	copy(want[1<<20:], b1)
	clear(want[1<<20 : 1<<20+8192])

	fx := &fixture{virtualSize: size, blockSize: 1 << 20, logGUID: logGUID, size: 8 << 20,
		bat:    map[int]uint64{1: fxEntry(fxFull, fxDataOffset)},
		writes: map[int64][]byte{fxDataOffset: b1, 5 << 20: want[:1<<20]}}
	b := fx.image()
	sector := append([]byte{}, b[fxBATOffset:fxBATOffset+4096]...)
	binary.LittleEndian.PutUint64(sector, fxEntry(fxFull, 5<<20))
	stale := fxLogEntry("11111111-2222-3333-4444-555555555555", 3, 0, []fxWrite{{offset: fxBATOffset, zero: 4096}})
	e1 := fxLogEntry(logGUID, 41, 12<<10, []fxWrite{{offset: fxBATOffset, data: sector}})
	e2 := fxLogEntry(logGUID, 42, 12<<10, []fxWrite{{offset: fxDataOffset, zero: 8192}})
	copy(b[fxLogOffset:], stale)
	copy(b[fxLogOffset+12<<10:], e1)
	copy(b[fxLogOffset+12<<10+len(e1):], e2)
	return b, want
}
