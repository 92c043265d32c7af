package vhd

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"time"

	"github.com/hypersdk/hypersdk/disk"
)

const (
	// DefaultBlockSize is a dynamic disk's block unless WriteOptions.ClusterSize
	// says otherwise: 2 MiB, what Hyper-V and qemu write.
	DefaultBlockSize = 2 << 20
	// maxWriteBlockSize bounds the one block the writer holds in memory.
	maxWriteBlockSize = 256 << 20
	// fixedAlign is what a fixed disk's size is rounded up to: Azure takes
	// only sizes that are whole MiB.
	fixedAlign = 1 << 20
)

// The creator fields we write. qemu (before 10.0 only for a few creator
// applications, since 10.0 for all but "vpc " and "qemu") and Hyper-V take
// the footer's Current Size as the disk size when the creator is "win ";
// for "vpc " and "qemu" qemu takes the CHS geometry, which rounds the size
// down. So the creator says "Hyper-V semantics", not who we are.
var (
	creatorApp     = [4]byte{'w', 'i', 'n', ' '}
	creatorOS      = [4]byte{'W', 'i', '2', 'k'}
	creatorVersion = uint32(0x000a0000) // 10.0, as Windows writes it
)

// Write writes src to t as a VHD: o.Subformat "fixed" or "dynamic" (the
// default); o.ClusterSize sets a dynamic disk's block size (a power of two
// from 512 bytes to 256 MiB; 2 MiB by default).
func Write(ctx context.Context, t disk.Target, src disk.Source, o disk.WriteOptions) error {
	switch o.Subformat {
	case "fixed":
		return writeFixed(ctx, t, src, o)
	case "dynamic", "":
		return writeDynamic(ctx, t, src, o)
	}
	return fmt.Errorf("vhd: subformat %q: want \"fixed\" or \"dynamic\"", o.Subformat)
}

// newFooter is the footer of a new disk of size bytes.
func newFooter(diskType uint32, size int64, dataOffset uint64) (*footer, error) {
	f := &footer{
		Features:       featuresBase,
		Version:        formatVersion,
		DataOffset:     dataOffset,
		Timestamp:      uint32(time.Since(epoch) / time.Second),
		CreatorApp:     creatorApp,
		CreatorVersion: creatorVersion,
		CreatorOS:      creatorOS,
		OriginalSize:   uint64(size),
		CurrentSize:    uint64(size),
		DiskType:       diskType,
	}
	f.Cylinders, f.Heads, f.SectorsPerTrack = geometry(size)
	// A random (version 4) UUID, as every VHD writer makes one.
	if _, err := rand.Read(f.UniqueID[:]); err != nil {
		return nil, err
	}
	f.UniqueID[6] = f.UniqueID[6]&0x0f | 0x40
	f.UniqueID[8] = f.UniqueID[8]&0x3f | 0x80
	return f, nil
}

// writeFixed writes the data in place, as a raw image (holes seeked over),
// then zeros up to the next whole MiB (a hole) and the footer.
func writeFixed(ctx context.Context, t disk.Target, src disk.Source, o disk.WriteOptions) error {
	size := roundUp(src.Size(), fixedAlign)
	if size <= 0 || size > disk.MaxVirtualSize {
		return fmt.Errorf("vhd: a fixed VHD holds 1 byte to %d TiB, not %d bytes", disk.MaxVirtualSize>>40, src.Size())
	}
	ft, err := newFooter(typeFixed, size, noDataOffset)
	if err != nil {
		return err
	}
	if err := disk.WriteRaw(ctx, t, src, o); err != nil {
		return err
	}
	if _, err := t.Seek(size, io.SeekStart); err != nil {
		return err
	}
	if _, err := t.Write(ft.marshal()); err != nil {
		return err
	}
	return t.Truncate(size + footerSize)
}

// dynamicLayout is where a new dynamic disk's structures go: the footer
// copy at 0, the header after it, the BAT after that, blocks from
// firstBlock on in the order their data arrives.
type dynamicLayout struct {
	size, blockSize, bitmapSize int64
	entries                     int64
	tableAt, firstBlock         int64
}

func newDynamicLayout(srcSize, blockSize int64) (dynamicLayout, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if blockSize < minBlockSize || blockSize > maxWriteBlockSize || bits.OnesCount64(uint64(blockSize)) != 1 {
		return dynamicLayout{}, fmt.Errorf("vhd: block size %d: want a power of two from %d bytes to %d MiB", blockSize, minBlockSize, maxWriteBlockSize>>20)
	}
	size := roundUp(srcSize, disk.SectorSize)
	if size <= 0 || size > maxDynamicSize {
		return dynamicLayout{}, fmt.Errorf("vhd: a dynamic VHD holds 512 bytes to %d GiB, not %d bytes (VHDX holds more)", int64(maxDynamicSize)>>30, srcSize)
	}
	l := dynamicLayout{size: size, blockSize: blockSize, bitmapSize: roundUp(blockSize/disk.SectorSize/8, disk.SectorSize)}
	l.entries = (size + blockSize - 1) / blockSize
	if l.entries > maxBATEntries {
		return dynamicLayout{}, fmt.Errorf("vhd: %d blocks of %d bytes are more than the %d a BAT may have here: use larger blocks", l.entries, blockSize, maxBATEntries)
	}
	l.tableAt = footerSize + headerSize
	l.firstBlock = l.tableAt + roundUp(l.entries*4, disk.SectorSize)
	return l, nil
}

// writeDynamic streams the source into blocks appended in order, leaving
// out all-zero blocks and, inside a block, all-zero sectors (file holes
// whose bitmap bits stay clear), then writes the BAT back and appends the
// footer.
func writeDynamic(ctx context.Context, t disk.Target, src disk.Source, o disk.WriteOptions) error {
	l, err := newDynamicLayout(src.Size(), o.ClusterSize)
	if err != nil {
		return err
	}
	ft, err := newFooter(typeDynamic, l.size, footerSize)
	if err != nil {
		return err
	}
	hdr := header{DataOffset: noDataOffset, TableOffset: uint64(l.tableAt), Version: formatVersion,
		MaxTableEntries: uint32(l.entries), BlockSize: uint32(l.blockSize)}
	w := &blockWriter{Cursor: disk.Cursor{T: t}, l: l, next: l.firstBlock, bat: make([]uint32, l.entries)}
	for i := range w.bat {
		w.bat[i] = batUnused
	}
	foot := ft.marshal()
	if err := w.Put(foot, 0); err != nil {
		return err
	}
	if err := w.Put(hdr.marshal(), footerSize); err != nil {
		return err
	}

	buf := make([]byte, l.blockSize)
	cur := int64(-1) // the block buf holds
	for {
		e, err := src.NextExtent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		for off := e.Offset; off < e.End(); {
			if err := ctx.Err(); err != nil {
				return err
			}
			blk := off / l.blockSize
			if blk != cur {
				if err := w.flush(cur, buf); err != nil {
					return err
				}
				clear(buf)
				cur = blk
			}
			in := off - blk*l.blockSize
			n := min(e.End()-off, l.blockSize-in)
			if _, err := io.ReadFull(src, buf[in:in+n]); err != nil {
				return err
			}
			off += n
		}
	}
	if err := w.flush(cur, buf); err != nil {
		return err
	}

	table := make([]byte, roundUp(l.entries*4, disk.SectorSize))
	for i, e := range w.bat {
		binary.BigEndian.PutUint32(table[4*i:], e)
	}
	if _, err := t.WriteAt(table, l.tableAt); err != nil {
		return err
	}
	if err := w.Put(foot, w.next); err != nil {
		return err
	}
	return t.Truncate(w.next + footerSize)
}

// blockWriter appends blocks to t, seeking only over zeros.
type blockWriter struct {
	disk.Cursor
	l    dynamicLayout
	next int64 // where the next block goes
	bat  []uint32
}

// flush appends block blk (held in data) unless it is all zeros: its
// sector bitmap with a bit for every non-zero sector, then those sectors,
// runs of zero sectors left as holes.
func (w *blockWriter) flush(blk int64, data []byte) error {
	if blk < 0 || disk.IsZero(data) {
		return nil
	}
	at := w.next
	if at/disk.SectorSize > batUnused-1 {
		return fmt.Errorf("vhd: the image would grow past the 2 TiB a VHD's 32-bit sector offsets reach")
	}
	sectors := int64(len(data)) / disk.SectorSize
	bitmap := make([]byte, w.l.bitmapSize)
	nonZero := func(s int64) bool { return !disk.IsZero(data[s*disk.SectorSize : (s+1)*disk.SectorSize]) }
	for s := int64(0); s < sectors; s++ {
		if nonZero(s) {
			bitmap[s/8] |= 0x80 >> (s % 8)
		}
	}
	present := func(s int64) bool { return bitmap[s/8]&(0x80>>(s%8)) != 0 }
	if err := w.Put(bitmap, at); err != nil {
		return err
	}
	dataAt := at + w.l.bitmapSize
	for s := int64(0); s < sectors; {
		if !present(s) {
			s++
			continue
		}
		e := s + 1
		for e < sectors && present(e) {
			e++
		}
		if err := w.Put(data[s*disk.SectorSize:e*disk.SectorSize], dataAt+s*disk.SectorSize); err != nil {
			return err
		}
		s = e
	}
	w.bat[blk] = uint32(at / disk.SectorSize)
	w.next = dataAt + w.l.blockSize
	return nil
}
