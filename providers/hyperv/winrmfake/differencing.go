package winrmfake

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"
)

// WriteDifferencing writes a differencing VHDX at path (a local file)
// whose parent is the VHDX at parentPath, in the same directory, as
// Hyper-V lays one out (MS-VHDX): 1 MiB blocks, 512-byte logical sectors,
// a parent locator with parent_linkage (the parent's DataWriteGuid) and
// relative_path. Each block of the child holding a byte of changes (a map
// from block-aligned offsets to 1 MiB of data) is FULLY_PRESENT; the rest
// are NOT_PRESENT and read from the parent. Written from the
// specification, independently of package vhdx's writer, so the two check
// each other.
func WriteDifferencing(path, parentPath string, changes map[int64][]byte) error {
	if filepath.Dir(path) != filepath.Dir(parentPath) {
		return errors.New("winrmfake: a differencing disk's parent must be beside it")
	}
	parent, err := os.ReadFile(parentPath)
	if err != nil {
		return err
	}
	linkage, size, err := parentInfo(parent)
	if err != nil {
		return err
	}
	const (
		mib        = 1 << 20
		blockSize  = mib
		sector     = 512
		batOffset  = 3 * mib
		metaOffset = 2 * mib
		logOffset  = 1 * mib
		firstBlock = 4 * mib
	)
	ratio := int64(1<<23) * sector / blockSize
	blocks := (size + blockSize - 1) / blockSize
	chunks := (blocks + ratio - 1) / ratio
	entries := chunks * (ratio + 1)
	batLen := (entries*8 + mib - 1) / mib * mib
	dataStart := max(int64(firstBlock), batOffset+batLen)

	le := binary.LittleEndian
	var f bytes.Buffer
	grow := func(n int64) {
		if int64(f.Len()) < n {
			f.Write(make([]byte, n-int64(f.Len())))
		}
	}
	grow(dataStart)
	b := f.Bytes()
	copy(b, "vhdxfile")
	for i, u := range utf16.Encode([]rune("winrmfake")) {
		le.PutUint16(b[8+2*i:], u)
	}
	fileWrite, dataWrite, diskID := randomGUID(), randomGUID(), randomGUID()
	for i, off := range []int{64 << 10, 128 << 10} {
		h := b[off : off+4096]
		copy(h, "head")
		le.PutUint64(h[8:], uint64(i+1))
		copy(h[16:], fileWrite[:])
		copy(h[32:], dataWrite[:])
		le.PutUint16(h[64:], 0) // log version
		le.PutUint16(h[66:], 1) // version
		le.PutUint32(h[68:], mib)
		le.PutUint64(h[72:], logOffset)
		le.PutUint32(h[4:], crc32c(h))
	}
	for _, off := range []int{192 << 10, 256 << 10} {
		r := b[off : off+64<<10]
		copy(r, "regi")
		le.PutUint32(r[8:], 2)
		put := func(i int, id string, at, n int64) {
			e := r[16+32*i:]
			g := mustParseGUID(id)
			copy(e, g[:])
			le.PutUint64(e[16:], uint64(at))
			le.PutUint32(e[24:], uint32(n))
			le.PutUint32(e[28:], 1) // required
		}
		put(0, "2DC27766-F623-4200-9D64-115E9BFD4A08", batOffset, batLen) // BAT
		put(1, "8B7CA206-4790-4B9A-B8FE-575F050F886E", metaOffset, mib)   // metadata
		le.PutUint32(r[4:], crc32c(r))
	}

	// Metadata: table, then the items from 64 KiB.
	md := b[metaOffset : metaOffset+mib]
	copy(md, "metadata")
	type item struct {
		id    string
		flags uint32
		data  []byte
	}
	u32 := func(v uint32) []byte { return le.AppendUint32(nil, v) }
	items := []item{
		{"CAA16737-FA36-4D43-B3B6-33F0AA44E76B", 4, le.AppendUint32(u32(blockSize), 2)}, // file parameters: HasParent
		{"2FA54224-CD1B-4876-B211-5DBED83BF4B8", 6, le.AppendUint64(nil, uint64(size))},
		{"BECA12AB-B2E6-4523-93EF-C309E000C746", 6, diskID[:]},
		{"8141BF1D-A96F-4709-BA47-F233A8FAAB5F", 6, u32(sector)},
		{"CDA348C7-445D-4471-9CC9-E9885251C556", 6, u32(4096)},
		{"A8D35F2D-B30B-454D-ABF7-D3D84834AB0C", 4, parentLocator(linkage, filepath.Base(parentPath))},
	}
	le.PutUint16(md[10:], uint16(len(items)))
	at := 64 << 10
	for i, it := range items {
		e := md[32+32*i:]
		g := mustParseGUID(it.id)
		copy(e, g[:])
		le.PutUint32(e[16:], uint32(at))
		le.PutUint32(e[20:], uint32(len(it.data)))
		le.PutUint32(e[24:], it.flags)
		copy(md[at:], it.data)
		at += (len(it.data) + 7) / 8 * 8
	}

	// BAT and payload blocks.
	next := dataStart
	var payload [][]byte
	for blk := int64(0); blk < blocks; blk++ {
		data, ok := changes[blk*blockSize]
		if !ok {
			continue
		}
		if int64(len(data)) != blockSize {
			return fmt.Errorf("winrmfake: change at %d is %d bytes, want one block of %d", blk*blockSize, len(data), blockSize)
		}
		idx := blk + blk/ratio
		le.PutUint64(b[batOffset+8*idx:], 6|uint64(next/mib)<<20) // FULLY_PRESENT
		payload = append(payload, data)
		next += blockSize
	}
	for off := range changes {
		if off%blockSize != 0 || off < 0 || off >= size {
			return fmt.Errorf("winrmfake: change at %d is not a block of the %d-byte disk", off, size)
		}
	}
	for _, p := range payload {
		f.Write(p)
	}
	return os.WriteFile(path, f.Bytes(), 0o644)
}

// parentInfo reads the parent's current DataWriteGuid and virtual size.
func parentInfo(p []byte) (linkage [16]byte, size int64, err error) {
	le := binary.LittleEndian
	if len(p) < 3<<20 || !bytes.HasPrefix(p, []byte("vhdxfile")) {
		return linkage, 0, errors.New("winrmfake: the parent is not a VHDX file")
	}
	var seq uint64
	for _, off := range []int{64 << 10, 128 << 10} {
		h := p[off : off+4096]
		if string(h[:4]) == "head" && le.Uint64(h[8:]) >= seq {
			seq = le.Uint64(h[8:])
			copy(linkage[:], h[32:48])
		}
	}
	// The virtual size item, through the first region table's metadata
	// region.
	r := p[192<<10:]
	for i := 0; i < int(le.Uint32(r[8:])); i++ {
		e := r[16+32*i:]
		if [16]byte(e[:16]) != mustParseGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E") {
			continue
		}
		md := p[le.Uint64(e[16:]):]
		for j := 0; j < int(le.Uint16(md[10:])); j++ {
			me := md[32+32*j:]
			if [16]byte(me[:16]) == mustParseGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8") {
				return linkage, int64(le.Uint64(md[le.Uint32(me[16:]):])), nil
			}
		}
	}
	return linkage, 0, errors.New("winrmfake: no virtual disk size in the parent")
}

// parentLocator is the VHDX parent locator item (MS-VHDX 2.6.2.6).
func parentLocator(linkage [16]byte, parentName string) []byte {
	le := binary.LittleEndian
	kv := [][2]string{{"parent_linkage", guidString(linkage)}, {"relative_path", `.\` + parentName}}
	head := 20 + 12*len(kv)
	b := make([]byte, head)
	g := mustParseGUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")
	copy(b, g[:])
	le.PutUint16(b[18:], uint16(len(kv)))
	for i, e := range kv {
		k, v := utf16le(e[0]), utf16le(e[1])
		ent := b[20+12*i:]
		le.PutUint32(ent[0:], uint32(len(b)))
		le.PutUint32(ent[4:], uint32(len(b)+len(k)))
		le.PutUint16(ent[8:], uint16(len(k)))
		le.PutUint16(ent[10:], uint16(len(v)))
		b = append(append(b, k...), v...)
	}
	return b
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

func crc32c(b []byte) uint32 {
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}

// mustParseGUID turns the text form into the on-disk (mixed-endian) bytes.
func mustParseGUID(s string) [16]byte {
	h, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(h) != 16 {
		panic("winrmfake: bad GUID " + s)
	}
	var g [16]byte
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(h[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(h[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(h[6:]))
	copy(g[8:], h[8:])
	return g
}

func guidString(g [16]byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("{%08x-%04x-%04x-%x-%x}", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:10], g[10:16])
}

func randomGUID() [16]byte {
	var g [16]byte
	if _, err := rand.Read(g[:]); err != nil {
		panic(err)
	}
	g[7] = g[7]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}
