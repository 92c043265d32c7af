package vhdx

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hypersdk/hypersdk/disk"
)

// Writer defaults: what Hyper-V picks for a new dynamic disk.
const (
	defaultBlockSize    = 32 * mib
	writeLogicalSector  = 512
	writePhysicalSector = 4096

	// The layout Hyper-V uses: the log in the second MiB, the metadata
	// region in the third, the BAT from the fourth, then the blocks.
	writeLogOffset      = 1 * mib
	writeLogLength      = 1 * mib
	writeMetadataOffset = 2 * mib
	writeMetadataLength = 1 * mib
	writeBATOffset      = 3 * mib

	// writeChunk is the most source data held in memory at once.
	writeChunk = 1 * mib

	creator = "hypersdk"
)

// Write writes src to t as a dynamic VHDX: the header section, an empty
// log, the metadata region and the BAT reserved up front, then one payload
// block per block of the disk that holds any data, appended in order, with
// the block's all-zero parts left as holes; blocks with no data are
// NOT_PRESENT. The BAT is written back at the end. o.ClusterSize picks the
// block size (a power of two from 1 to 256 MiB; 32 MiB by default).
func Write(ctx context.Context, t disk.Target, src disk.Source, o disk.WriteOptions) error {
	if o.Subformat != "" && o.Subformat != "dynamic" {
		return fmt.Errorf("vhdx: subformat %q cannot be written: the VHDX writer makes \"dynamic\" images", o.Subformat)
	}
	blockSize := int64(defaultBlockSize)
	if o.ClusterSize != 0 {
		blockSize = o.ClusterSize
	}
	if blockSize < minBlockSize || blockSize > maxBlockSize || !isPowerOfTwo(blockSize) {
		return fmt.Errorf("vhdx: block size %d is not a power of two from 1 MiB to 256 MiB", blockSize)
	}
	size := src.Size()
	if err := disk.CheckVirtualSize(nil, disk.VHDX, "source", -1, size, writeLogicalSector); err != nil {
		return fmt.Errorf("vhdx: a VHDX disk is whole %d-byte sectors: %w", writeLogicalSector, err)
	}

	ratio := chunkRatio(blockSize, writeLogicalSector)
	bat := make([]uint64, batEntries(size, blockSize, ratio, false))
	batLength := (int64(len(bat))*8 + mib - 1) / mib * mib
	if batLength > 1<<32-mib { // the region table's length field is 32 bits
		return fmt.Errorf("vhdx: a %d-byte disk with %d-byte blocks needs a BAT larger than VHDX allows; use larger blocks", size, blockSize)
	}

	headers, metadata, err := frontMatter(size, blockSize, batLength)
	if err != nil {
		return err
	}
	w := &blockWriter{Cursor: disk.Cursor{T: t}, next: writeBATOffset + batLength, blockSize: blockSize}
	// The log and the free space after the metadata stay holes.
	if err := w.Put(headers, 0); err != nil {
		return err
	}
	if err := w.Put(metadata, writeMetadataOffset); err != nil {
		return err
	}
	buf := make([]byte, writeChunk)
	for {
		e, err := src.NextExtent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if e.Offset < 0 || e.End() > size {
			return fmt.Errorf("vhdx: source extent %d+%d lies outside the %d-byte disk", e.Offset, e.Length, size)
		}
		for off := e.Offset; off < e.End(); {
			if err := ctx.Err(); err != nil {
				return err
			}
			b := off / blockSize
			n := min(int64(len(buf)), e.End()-off, (b+1)*blockSize-off)
			if _, err := io.ReadFull(src, buf[:n]); err != nil {
				return fmt.Errorf("vhdx: reading the source at %d: %w", off, err)
			}
			if !disk.IsZero(buf[:n]) {
				i := payloadIndex(b, ratio)
				if batState(bat[i]) != payloadFullyPresent {
					bat[i] = batEntry(payloadFullyPresent, w.allocate())
				}
				if err := w.Put(buf[:n], batOffset(bat[i])+off-b*blockSize); err != nil {
					return err
				}
			}
			off += n
		}
	}
	table := make([]byte, len(bat)*8)
	for i, e := range bat {
		binary.LittleEndian.PutUint64(table[8*i:], e)
	}
	if _, err := t.WriteAt(table, writeBATOffset); err != nil {
		return err
	}
	// Allocated blocks are whole in the file, their zero tails holes.
	return t.Truncate(w.next)
}

// blockWriter appends payload blocks to the target, seeking over holes.
type blockWriter struct {
	disk.Cursor
	next      int64 // where the next block goes
	blockSize int64
}

func (w *blockWriter) allocate() int64 {
	off := w.next
	w.next += w.blockSize
	return off
}

// frontMatter is what precedes the BAT: the header section up to the end
// of the second region table (file type identifier, both headers, both
// region tables), and the metadata region up to the end of its last item.
// The log between them is empty: all zeros, a hole.
func frontMatter(size, blockSize, batLength int64) (headers, metadata []byte, err error) {
	var fileWrite, dataWrite, diskID guid
	for _, g := range []*guid{&fileWrite, &dataWrite, &diskID} {
		if _, err := rand.Read(g[:]); err != nil {
			return nil, nil, err
		}
		g[7] = g[7]&0x0f | 0x40 // version 4 (random), in the on-disk byte order
		g[8] = g[8]&0x3f | 0x80
	}
	b := make([]byte, region2Offset+regionTableSize)
	copy(b, sigFile)
	copy(b[8:8+512], utf16le(creator))

	h := header{fileWriteGUID: fileWrite, dataWriteGUID: dataWrite, version: 1,
		logLength: writeLogLength, logOffset: writeLogOffset}
	// Both headers current-compatible; the second one is the newer.
	h.sequence = 1
	copy(b[header1Offset:], h.marshal())
	h.sequence = 2
	copy(b[header2Offset:], h.marshal())

	regions := marshalRegionTable([]region{
		{id: regionBAT, offset: writeBATOffset, length: batLength, required: true},
		{id: regionMetadata, offset: writeMetadataOffset, length: writeMetadataLength, required: true},
	})
	copy(b[region1Offset:], regions)
	copy(b[region2Offset:], regions)

	md := make([]byte, writeMetadataLength)
	n, err := putMetadata(md, size, blockSize, diskID)
	if err != nil {
		return nil, nil, err
	}
	return b, md[:n], nil
}

// putMetadata fills the metadata region md: the table, then the items in
// the order Hyper-V writes them.
// It returns the length used.
func putMetadata(md []byte, size, blockSize int64, diskID guid) (int64, error) {
	le := binary.LittleEndian
	var items []struct {
		id    guid
		flags uint32
		data  []byte
	}
	add := func(id guid, flags uint32, data []byte) {
		items = append(items, struct {
			id    guid
			flags uint32
			data  []byte
		}{id, flags, data})
	}
	u32 := func(v uint32) []byte { return le.AppendUint32(nil, v) }
	add(itemFileParameters, metaIsRequired, le.AppendUint32(u32(uint32(blockSize)), 0))
	add(itemVirtualDiskSize, metaIsRequired|metaIsVirtualDisk, le.AppendUint64(nil, uint64(size)))
	add(itemVirtualDiskID, metaIsRequired|metaIsVirtualDisk, diskID[:])
	add(itemLogicalSectorSize, metaIsRequired|metaIsVirtualDisk, u32(writeLogicalSector))
	add(itemPhysicalSectorSize, metaIsRequired|metaIsVirtualDisk, u32(writePhysicalSector))

	copy(md, sigMetadata)
	le.PutUint16(md[10:], uint16(len(items)))
	at := int64(metadataTableSize)
	for i, it := range items {
		e := md[32+32*i:]
		copy(e, it.id[:])
		le.PutUint32(e[16:], uint32(at))
		le.PutUint32(e[20:], uint32(len(it.data)))
		le.PutUint32(e[24:], it.flags)
		copy(md[at:], it.data)
		at += int64(len(it.data))
	}
	if at > writeMetadataLength {
		return 0, errors.New("vhdx: metadata items overflow the region (writer bug)")
	}
	return at, nil
}
