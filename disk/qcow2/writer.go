package qcow2

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hypersdk/hypersdk/disk"
)

const (
	// DefaultClusterSize is the cluster size Write uses unless told
	// otherwise, QEMU's default.
	DefaultClusterSize = 64 << 10

	// writeBatch is the most the writer gathers before appending it with
	// one Write: data clusters, L2 tables, then the closing tables. Two
	// batches exist: one being filled while the other is written.
	writeBatch = 4 << 20

	// refcountOrder 4: 16-bit reference counts, as QEMU writes them.
	refcountOrder = 4
	refcountBytes = 1 << refcountOrder / 8
)

// Write writes src to t as a qcow2 version 3 image in one pass over the
// data:
//
//	cluster 0            header (written last, through WriteAt)
//	clusters 1..         the non-zero data clusters in virtual order, each
//	                     L2 table right after the data it maps
//	then                 refcount table, refcount blocks, L1 table
//
// Every cluster of the file is used exactly once, so the reference counts
// are all 1 and need no map: the writer holds the L1 table (8 bytes per
// cluster²/8 of virtual disk: 1 MiB for 64 TiB with 64 KiB clusters), the
// current L2 table and two 4 MiB batches (one written while the next
// fills), whatever the disk size.
// o.ClusterSize picks the cluster size (a power of two from 512 bytes to
// 2 MiB; default 64 KiB).
func Write(ctx context.Context, t disk.Target, src disk.Source, o disk.WriteOptions) error {
	cs := o.ClusterSize
	if cs == 0 {
		cs = DefaultClusterSize
	}
	if cs < 1<<minClusterBits || cs > 1<<maxClusterBits || cs&(cs-1) != 0 {
		return fmt.Errorf("qcow2: cluster size %d is not a power of two from %d to %d", cs, 1<<minClusterBits, 1<<maxClusterBits)
	}
	if err := disk.CheckVirtualSize(&disk.File{Name: o.Name}, disk.QCOW2, "source", -1, src.Size(), 0); err != nil {
		return err
	}
	// The virtual size is whole sectors, rounded up as QEMU does.
	size := (src.Size() + disk.SectorSize - 1) &^ (disk.SectorSize - 1)
	l2Entries := cs / entrySize
	l2Span := cs * l2Entries
	l1Size := (size + l2Span - 1) / l2Span
	if l1Size*entrySize > maxL1Bytes {
		return fmt.Errorf("qcow2: a %d-byte disk with %d-byte clusters needs an L1 table of %d bytes, beyond the %d QEMU accepts: use larger clusters",
			size, cs, l1Size*entrySize, maxL1Bytes)
	}
	w := &writer{
		ctx:       ctx,
		t:         t,
		src:       src,
		cs:        cs,
		size:      size,
		l2Entries: l2Entries,
		l2Span:    l2Span,
		l1:        make([]uint64, l1Size),
		l2:        make([]byte, cs),
		l2Index:   -1,
		fileOff:   cs, // the header cluster is written last
	}
	if _, err := t.Seek(cs, io.SeekStart); err != nil {
		return err
	}
	w.startAppender(max(writeBatch, 2*cs))
	err := w.copyData()
	if err == nil {
		err = w.finishTables()
	}
	if werr := w.stopAppender(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	return w.writeHeader()
}

type writer struct {
	ctx       context.Context
	t         disk.Target
	src       disk.Source
	cs        int64
	size      int64
	l2Entries int64
	l2Span    int64 // virtual bytes one L2 table maps

	l1      []uint64
	l2      []byte // the current L2 table, big-endian entries
	l2Index int64  // its L1 index; -1 before the first
	l2Used  bool   // it maps at least one cluster

	// buf[:n] is appended to the file at fileOff when the batch fills up,
	// by the appender goroutine: full batches go out on full, come back
	// on free; the first write error is kept in failed.
	buf     []byte
	n       int64
	fileOff int64
	full    chan []byte
	free    chan []byte
	done    chan error
	failed  atomic.Pointer[error]

	// Where finishTables put the tables, for the header.
	tableOff, tableClusters, l1Off, total int64

	// The region being read: virtual bytes [regStart, regFill) sit at
	// buf[n:]. It starts on a cluster, stays inside one L2 table's span
	// and is committed (zero clusters dropped, the rest packed) before
	// anything else is appended.
	pending           bool
	regStart, regFill int64
}

// copyData reads the source's extents into regions and commits them.
func (w *writer) copyData() error {
	prev := int64(0)
	for {
		e, err := w.src.NextExtent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if e.Offset < prev || e.Length <= 0 || e.End() > w.size {
			return fmt.Errorf("qcow2: source extent %d+%d is out of order, empty or past the %d-byte disk", e.Offset, e.Length, w.size)
		}
		prev = e.End()
		for pos := e.Offset; pos < e.End(); {
			if err := w.ctx.Err(); err != nil {
				return err
			}
			if err := w.place(pos); err != nil {
				return err
			}
			// Read up to the end of the extent, the batch or the L2 span.
			room := w.regStart + int64(len(w.buf)) - w.n
			span := (w.regStart/w.l2Span + 1) * w.l2Span
			end := min(e.End(), room, span)
			at := w.n + w.regFill - w.regStart
			if _, err := io.ReadFull(w.src, w.buf[at:at+end-pos]); err != nil {
				return fmt.Errorf("qcow2: read source at %d: %w", pos, err)
			}
			w.regFill, pos = end, end
			if end == room || end == span {
				if err := w.commit(); err != nil {
					return err
				}
			}
		}
	}
	if w.pending {
		return w.commit()
	}
	return nil
}

// place makes virtual offset pos the next byte of the region: it zero-fills
// a gap within the region's last cluster, or commits the region and starts
// a new one at pos's cluster.
func (w *writer) place(pos int64) error {
	if w.pending {
		if pos == w.regFill {
			return nil
		}
		if w.regFill%w.cs != 0 && pos/w.cs == w.regFill/w.cs {
			at := w.n + w.regFill - w.regStart
			clear(w.buf[at : at+pos-w.regFill])
			w.regFill = pos
			return nil
		}
		if err := w.commit(); err != nil {
			return err
		}
	}
	start := pos &^ (w.cs - 1)
	if idx := start / w.l2Span; idx != w.l2Index {
		if err := w.finishL2(); err != nil {
			return err
		}
		w.l2Index = idx
	}
	clear(w.buf[w.n : w.n+pos-start])
	w.pending, w.regStart, w.regFill = true, start, pos
	return nil
}

// commit pads the region to whole clusters, maps its non-zero clusters to
// the file positions they are packed to, and drops the zero ones.
func (w *writer) commit() error {
	end := min((w.regFill+w.cs-1)&^(w.cs-1), w.regStart+int64(len(w.buf))-w.n)
	base := w.n
	clear(w.buf[base+w.regFill-w.regStart : base+end-w.regStart])
	for c := w.regStart; c < end; c += w.cs {
		from := base + c - w.regStart
		cluster := w.buf[from : from+w.cs]
		if disk.IsZero(cluster) {
			continue
		}
		j := (c / w.cs) % w.l2Entries
		binary.BigEndian.PutUint64(w.l2[j*entrySize:], uint64(w.fileOff+w.n)|flagCopied)
		w.l2Used = true
		if from != w.n {
			copy(w.buf[w.n:w.n+w.cs], cluster)
		}
		w.n += w.cs
	}
	w.pending = false
	return w.flushIfFull()
}

// finishL2 appends the current L2 table if it maps anything and starts an
// empty one.
func (w *writer) finishL2() error {
	if !w.l2Used {
		return nil
	}
	w.l1[w.l2Index] = uint64(w.fileOff+w.n) | flagCopied
	if err := w.append(w.l2); err != nil {
		return err
	}
	clear(w.l2)
	w.l2Used = false
	return nil
}

// append adds b to the batch, writing the batch out as it fills.
func (w *writer) append(b []byte) error {
	for len(b) > 0 {
		k := copy(w.buf[w.n:], b)
		w.n += int64(k)
		b = b[k:]
		if err := w.flushIfFull(); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) flushIfFull() error {
	if w.n < int64(len(w.buf)) {
		return nil
	}
	return w.flush()
}

// flush hands the batch to the appender and takes the other one.
func (w *writer) flush() error {
	if err := w.failed.Load(); err != nil {
		return *err
	}
	if w.n == 0 {
		return nil
	}
	w.full <- w.buf[:w.n]
	w.fileOff += w.n
	w.buf, w.n = <-w.free, 0
	return nil
}

// startAppender starts the goroutine that appends full batches to the
// target, so that reading the next batch overlaps writing this one.
func (w *writer) startAppender(batch int64) {
	w.buf = make([]byte, batch)
	w.full = make(chan []byte)
	w.free = make(chan []byte, 1)
	w.free <- make([]byte, batch)
	w.done = make(chan error, 1)
	go func() {
		var failed error
		off := w.fileOff
		for b := range w.full {
			if failed == nil {
				if _, err := w.t.Write(b); err != nil {
					failed = fmt.Errorf("qcow2: write at %d: %w", off, err)
					w.failed.Store(&failed)
				}
				off += int64(len(b))
			}
			w.free <- b[:cap(b)]
		}
		w.done <- failed
	}()
}

// stopAppender waits for the last batch to be written.
func (w *writer) stopAppender() error {
	close(w.full)
	return <-w.done
}

// finishTables appends the last L2 table, the refcount table and blocks
// and the L1 table.
func (w *writer) finishTables() error {
	if err := w.finishL2(); err != nil {
		return err
	}
	cs := w.cs
	used := (w.fileOff + w.n) / cs // clusters so far, the header's included
	l1Clusters := (int64(len(w.l1))*entrySize + cs - 1) / cs
	perBlock := cs / refcountBytes
	// The refcount structures count themselves: grow them until they cover
	// every cluster the file will have.
	var blocks, tableClusters int64
	for {
		total := used + tableClusters + blocks + l1Clusters
		b := (total + perBlock - 1) / perBlock
		tc := (b*entrySize + cs - 1) / cs
		if b == blocks && tc == tableClusters {
			break
		}
		blocks, tableClusters = b, tc
	}
	total := used + tableClusters + blocks + l1Clusters
	if tableClusters*cs > maxRefTableBytes {
		return fmt.Errorf("qcow2: %d clusters need a refcount table of %d bytes, beyond the %d QEMU accepts: use larger clusters", total, tableClusters*cs, maxRefTableBytes)
	}
	tableOff := used * cs
	blocksOff := tableOff + tableClusters*cs
	l1Off := blocksOff + blocks*cs

	// Refcount table: block k at blocksOff + k·cs, the rest of its
	// clusters zero.
	entry := make([]byte, entrySize)
	for k := range tableClusters * cs / entrySize {
		if k < blocks {
			binary.BigEndian.PutUint64(entry, uint64(blocksOff+k*cs))
		} else {
			clear(entry)
		}
		if err := w.append(entry); err != nil {
			return err
		}
	}
	// Refcount blocks: 1 for each of the file's clusters, 0 past the end.
	ones := make([]byte, cs)
	for i := 0; i < len(ones); i += refcountBytes {
		binary.BigEndian.PutUint16(ones[i:], 1)
	}
	for k := range blocks {
		block := ones
		if left := total - k*perBlock; left < perBlock {
			block = make([]byte, cs)
			copy(block, ones[:left*refcountBytes])
		}
		if err := w.append(block); err != nil {
			return err
		}
	}
	// L1 table, padded to a whole cluster.
	l1 := make([]byte, l1Clusters*cs)
	for i, e := range w.l1 {
		binary.BigEndian.PutUint64(l1[i*entrySize:], e)
	}
	if err := w.append(l1); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	if w.fileOff != total*cs {
		return errors.New("qcow2: writer layout mismatch (bug)")
	}
	w.tableOff, w.tableClusters, w.l1Off, w.total = tableOff, tableClusters, l1Off, total
	return nil
}

// writeHeader writes the header cluster, now that the tables are placed,
// and cuts the file to its clusters.
func (w *writer) writeHeader() error {
	cs := w.cs
	head := make([]byte, cs)
	be := binary.BigEndian
	copy(head, magic)
	be.PutUint32(head[4:], 3)
	be.PutUint32(head[20:], uint32(log2(cs)))
	be.PutUint64(head[24:], uint64(w.size))
	be.PutUint32(head[36:], uint32(len(w.l1)))
	be.PutUint64(head[40:], uint64(w.l1Off))
	be.PutUint64(head[48:], uint64(w.tableOff))
	be.PutUint32(head[56:], uint32(w.tableClusters))
	be.PutUint32(head[96:], refcountOrder)
	be.PutUint32(head[100:], v3FullHeaderLength)
	// head[104] compression type 0 (zlib); then the end-of-extensions
	// marker, all zeros.
	if _, err := w.t.WriteAt(head, 0); err != nil {
		return fmt.Errorf("qcow2: write header: %w", err)
	}
	return w.t.Truncate(w.total * cs)
}

func log2(n int64) int {
	b := 0
	for n > 1 {
		n >>= 1
		b++
	}
	return b
}
