package qcow2

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/hypersdk/hypersdk/disk"
)

// maxCheckClusters bounds the per-cluster counters Check keeps (3 bytes a
// cluster): 4 TiB of file with 64 KiB clusters.
const maxCheckClusters = 1 << 26

// maxProblems is how many problems Check reports one by one.
const maxProblems = 100

// What a host cluster is used for, as Check counts it.
type use uint8

const (
	useNone use = iota
	useHeader
	useL1
	useL2
	useData
	useCompressed
	useRefTable
	useRefBlock
	useSnapshotTable
	useBitmapDirectory
	useBitmapTable
	useBitmapData
)

var useNames = [...]string{"nothing", "the header", "an L1 table", "an L2 table", "a data cluster", "compressed data",
	"the refcount table", "a refcount block", "the snapshot table", "the bitmap directory", "a bitmap table", "bitmap data"}

// shared reports whether several references to one cluster of this use are
// legitimate: snapshots share L2 tables and data, compressed clusters share
// host clusters.
func (u use) shared() bool { return u == useL2 || u == useData || u == useCompressed }

// Check verifies the image's structure as `qemu-img check` does: every
// cluster the active and snapshot tables, the refcount structures, the
// snapshot table and the bitmaps reference lies inside the file, no
// cluster serves two structures, every reference count equals the
// references found (a cluster counted but unused is a leak), and the
// active tables' COPIED flags mark exactly the clusters counted once. It returns all
// problems found, joined, each a *disk.FormatError.
func (im *Image) Check(ctx context.Context) error {
	fileClusters := (im.f.Size + im.cs - 1) / im.cs
	// Compressed data may reach up to two clusters past the file's end
	// (QEMU does not pad the last sector); those clusters are counted too.
	n := fileClusters + 2
	if n > maxCheckClusters {
		return fmt.Errorf("%s: qcow2 check: %d clusters, more than the %d this check counts in memory", im.f.Name, n, maxCheckClusters)
	}
	c := &checker{im: im, ctx: ctx, refs: make([]uint16, n), uses: make([]use, n), fileClusters: fileClusters}
	h := im.h
	if h.incompatible&incompatCorrupt != 0 {
		c.problem("header", 72, "the image is marked corrupt")
	}
	c.ref(0, im.cs, useHeader, "header", 0)
	// The refcount structures first: a table pointing into them is then
	// the one reported, and the counts stay readable.
	blocks := c.walkRefcountTable()
	c.walkL1("active L1 table", int64(h.l1Offset), int64(h.l1Size))
	c.walkSnapshots()
	c.walkBitmaps()
	c.compareRefcounts(blocks)
	c.checkCopiedFlags()
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.dropped > 0 {
		c.problems = append(c.problems, disk.Errorf(im.f, disk.QCOW2, "image", -1, "%d more problems not listed", c.dropped))
	}
	return errors.Join(c.problems...)
}

type checker struct {
	im           *Image
	ctx          context.Context
	refs         []uint16 // references found per host cluster (saturating)
	uses         []use    // what the first reference used it for
	fileClusters int64
	maxRef       int64 // highest cluster referenced
	problems     []error
	dropped      int
}

func (c *checker) problem(structure string, off int64, problem string, args ...any) {
	if len(c.problems) >= maxProblems {
		c.dropped++
		return
	}
	c.problems = append(c.problems, disk.Errorf(c.im.f, disk.QCOW2, structure, off, problem, args...))
}

// ref counts one reference from structure (at file offset at) to the n
// bytes at off, used as u. It reports false, with a problem noted, when the
// bytes are not inside the file or already serve another structure; the
// caller then does not follow them.
func (c *checker) ref(off, n int64, u use, structure string, at int64) bool {
	cs := c.im.cs
	limit := c.im.f.Size
	if u == useCompressed {
		limit = int64(len(c.refs)) * cs
	}
	if off < 0 || n <= 0 || off > limit-n {
		c.problem(structure, at, "%s (%d bytes at %d) is not inside the %d-byte file", useNames[u], n, off, c.im.f.Size)
		return false
	}
	ok := true
	for k := off / cs; k <= (off+n-1)/cs; k++ {
		if c.refs[k] > 0 && (c.uses[k] != u || !u.shared()) {
			c.problem(structure, at, "%s at %d overlaps %s in cluster %d", useNames[u], off, useNames[c.uses[k]], k*cs)
			ok = false
			continue
		}
		if c.refs[k] == 0 {
			c.uses[k] = u
		}
		if c.refs[k] < ^uint16(0) {
			c.refs[k]++
		}
		c.maxRef = max(c.maxRef, k)
	}
	return ok
}

// walkL1 counts an L1 table of size entries at off, its L2 tables and
// their clusters.
func (c *checker) walkL1(name string, off, size int64) {
	im := c.im
	if size*entrySize > maxL1Bytes {
		c.problem(name, off, "%d entries, beyond the %d-byte limit", size, maxL1Bytes)
		return
	}
	if off%im.cs != 0 {
		c.problem(name, off, "not aligned to the %d-byte cluster", im.cs)
		return
	}
	if size == 0 {
		return
	}
	if !c.ref(off, size*entrySize, useL1, name, off) {
		return
	}
	l1, err := im.readTable(name, off, size*entrySize)
	if err != nil {
		c.problems = append(c.problems, err)
		return
	}
	// Within one L1 table every L2 table is distinct; a repeat would make
	// the walk revisit it (a loop in a hostile file).
	seen := make([]int64, 0, len(l1))
	for i, e := range l1 {
		at := off + int64(i)*entrySize
		l2 := int64(e & offsetMask)
		if e&^(offsetMask|flagCopied) != 0 {
			c.problem(name, at, "entry %d has reserved bits set (%#x)", i, e)
		}
		if l2 == 0 {
			continue
		}
		if l2%im.cs != 0 {
			c.problem(name, at, "entry %d: L2 table offset %d is not cluster aligned", i, l2)
			continue
		}
		seen = append(seen, l2)
	}
	slices.Sort(seen)
	for i, l2 := range seen {
		if err := c.ctx.Err(); err != nil {
			return
		}
		if i > 0 && seen[i-1] == l2 {
			c.problem(name, off, "L2 table at %d is named by two entries", l2)
			continue
		}
		if c.ref(l2, im.cs, useL2, name, off) {
			c.walkL2(l2)
		}
	}
}

// walkL2 counts the clusters the L2 table at off maps.
func (c *checker) walkL2(off int64) {
	im := c.im
	name := fmt.Sprintf("L2 table at %d", off)
	t, err := im.readTable(name, off, im.cs)
	if err != nil {
		c.problems = append(c.problems, err)
		return
	}
	const reserved = uint64(0x3f<<56 | 0x1fe) // bits 56..61 and 1..8
	for j, e := range t {
		at := off + int64(j)*entrySize
		if e&flagCompressed != 0 {
			host := int64(e & im.coffMask)
			sectors := int64((e>>im.csizeShift)&im.csizeMask) + 1
			if host < im.cs || host >= im.f.Size {
				c.problem(name, at, "entry %d: compressed data offset %d is not inside the file after the header cluster", j, host)
				continue
			}
			c.im.compressed.Store(true)
			// QEMU counts the whole sectors the data touches.
			c.ref(host&^(disk.SectorSize-1), sectors*disk.SectorSize, useCompressed, name, at)
			continue
		}
		if e&reserved != 0 {
			c.problem(name, at, "entry %d has reserved bits set (%#x)", j, e)
		}
		host := int64(e & offsetMask)
		if host == 0 {
			continue
		}
		if host%im.cs != 0 {
			c.problem(name, at, "entry %d: cluster offset %d is not cluster aligned", j, host)
			continue
		}
		c.ref(host, im.cs, useData, name, at)
	}
}

// walkSnapshots counts the snapshot table and every snapshot's L1 table.
func (c *checker) walkSnapshots() {
	im, h := c.im, c.im.h
	if h.nbSnapshots == 0 {
		return
	}
	off := int64(h.snapshotsOffset)
	pos := off
	for i := range int64(h.nbSnapshots) {
		if c.ctx.Err() != nil {
			return
		}
		var e [40]byte
		if pos+int64(len(e)) > im.f.Size {
			c.problem("snapshot table", pos, "snapshot %d reaches past the end of the file", i)
			return
		}
		if _, err := im.f.R.ReadAt(e[:], pos); err != nil {
			c.problems = append(c.problems, &disk.FormatError{File: im.f.Name, Format: disk.QCOW2, Structure: "snapshot table", Offset: pos, Problem: "cannot read", Err: err})
			return
		}
		be := binary.BigEndian
		l1Off, l1Size := int64(be.Uint64(e[0:])), int64(be.Uint32(e[8:]))
		idLen, nameLen := int64(be.Uint16(e[12:])), int64(be.Uint16(e[14:]))
		extra := int64(be.Uint32(e[36:]))
		entry := (int64(len(e)) + extra + idLen + nameLen + 7) &^ 7
		if extra > 1024 || pos+entry > im.f.Size {
			c.problem("snapshot table", pos, "snapshot %d (%d bytes) reaches past the end of the file", i, entry)
			return
		}
		c.walkL1(fmt.Sprintf("L1 table of snapshot %d", i), l1Off, l1Size)
		pos += entry
	}
	c.ref(off, pos-off, useSnapshotTable, "header", 64)
}

// walkBitmaps counts the persistent bitmaps' directory, tables and data.
func (c *checker) walkBitmaps() {
	im, b := c.im, c.im.h.bitmaps
	if b == nil || b.count == 0 || im.h.autoclear&autoclearBitmaps == 0 {
		return
	}
	dirOff, dirSize := int64(b.directoryOff), int64(b.directorySize)
	if b.directoryOff%uint64(im.cs) != 0 || b.directorySize > uint64(im.f.Size) {
		c.problem("bitmaps extension", b.at, "bitmap directory (%d bytes at %d) is not a cluster-aligned part of the file", b.directorySize, b.directoryOff)
		return
	}
	if !c.ref(dirOff, dirSize, useBitmapDirectory, "bitmaps extension", b.at) {
		return
	}
	dir := make([]byte, dirSize)
	if _, err := im.f.R.ReadAt(dir, dirOff); err != nil {
		c.problems = append(c.problems, &disk.FormatError{File: im.f.Name, Format: disk.QCOW2, Structure: "bitmap directory", Offset: dirOff, Problem: "cannot read", Err: err})
		return
	}
	be := binary.BigEndian
	pos := 0
	for i := range int(b.count) {
		if pos+24 > len(dir) {
			c.problem("bitmap directory", dirOff+int64(pos), "bitmap %d reaches past the directory", i)
			return
		}
		e := dir[pos:]
		tOff, tSize := int64(be.Uint64(e)), int64(be.Uint32(e[8:]))
		nameLen, extra := int(be.Uint16(e[18:])), int(be.Uint32(e[20:]))
		name := fmt.Sprintf("bitmap table %d", i)
		if tSize*entrySize > maxL1Bytes || tOff%im.cs != 0 {
			c.problem("bitmap directory", dirOff+int64(pos), "bitmap %d: table of %d entries at %d is not a cluster-aligned table", i, tSize, tOff)
		} else if tSize > 0 && c.ref(tOff, tSize*entrySize, useBitmapTable, "bitmap directory", dirOff+int64(pos)) {
			t, err := im.readTable(name, tOff, tSize*entrySize)
			if err != nil {
				c.problems = append(c.problems, err)
				return
			}
			for j, d := range t {
				if d := int64(d & offsetMask); d != 0 {
					if d%im.cs != 0 {
						c.problem(name, tOff+int64(j)*entrySize, "entry %d: data offset %d is not cluster aligned", j, d)
						continue
					}
					c.ref(d, im.cs, useBitmapData, name, tOff+int64(j)*entrySize)
				}
			}
		}
		pos += (24 + extra + nameLen + 7) &^ 7
	}
}

// walkRefcountTable counts the refcount table and blocks and returns the
// blocks' offsets (0 where there is none or it is unusable).
func (c *checker) walkRefcountTable() []int64 {
	im, h := c.im, c.im.h
	cs := im.cs
	tableOff, tableBytes := int64(h.refTableOffset), int64(h.refTableClusters)*cs
	c.ref(tableOff, tableBytes, useRefTable, "header", 48)
	table, err := im.readTable("refcount table", tableOff, tableBytes)
	if err != nil {
		c.problems = append(c.problems, err)
		return nil
	}
	blocks := make([]int64, len(table))
	for i, e := range table {
		at := tableOff + int64(i)*entrySize
		off := int64(e & refOffsetMask)
		switch {
		case e&^refOffsetMask != 0:
			c.problem("refcount table", at, "entry %d has reserved bits set (%#x)", i, e)
		case off == 0:
		case off%cs != 0:
			c.problem("refcount table", at, "entry %d: refcount block offset %d is not cluster aligned", i, off)
		case c.ref(off, cs, useRefBlock, "refcount table", at):
			blocks[i] = off
		}
	}
	return blocks
}

// compareRefcounts compares every stored count with the references found.
func (c *checker) compareRefcounts(blocks []int64) {
	im, h := c.im, c.im.h
	cs := im.cs
	tableOff := int64(h.refTableOffset)
	bits := int64(1) << h.refcountOrder
	perBlock := cs * 8 / bits
	last := max(c.fileClusters, c.maxRef+1) // clusters compared, as QEMU does
	block := make([]byte, cs)
	for i := int64(0); i < int64(len(blocks)) && i*perBlock < last; i++ {
		if c.ctx.Err() != nil {
			return
		}
		have := blocks[i] != 0
		if have {
			if _, err := im.f.R.ReadAt(block, blocks[i]); err != nil {
				c.problems = append(c.problems, &disk.FormatError{File: im.f.Name, Format: disk.QCOW2, Structure: "refcount block", Offset: blocks[i], Problem: "cannot read", Err: err})
				have = false
			}
		}
		for j := int64(0); j < perBlock && i*perBlock+j < last; j++ {
			k := i*perBlock + j
			var stored uint64
			if have {
				stored = refcountAt(block, j, bits)
			}
			found := uint64(c.refs[k])
			if stored == found || (found == uint64(^uint16(0)) && stored > found) {
				continue
			}
			where, at := "refcount table", tableOff+i*entrySize
			if have {
				where, at = "refcount block", blocks[i]+j*bits/8
			}
			switch {
			case found == 0:
				c.problem(where, at, "cluster %d (offset %d) is leaked: refcount %d, but nothing uses it", k, k*cs, stored)
			case stored == 0:
				c.problem(where, at, "cluster %d (offset %d) is used as %s but its refcount is 0", k, k*cs, useNames[c.uses[k]])
			default:
				c.problem(where, at, "cluster %d (offset %d, %s) has refcount %d, but %d references", k, k*cs, useNames[c.uses[k]], stored, found)
			}
		}
	}
	if n := int64(len(blocks)) * perBlock; n < last {
		for k := n; k < last; k++ {
			if c.refs[k] > 0 {
				c.problem("refcount table", tableOff, "cluster %d (offset %d, %s) lies beyond what the refcount table covers", k, k*cs, useNames[c.uses[k]])
				break
			}
		}
	}
}

// checkCopiedFlags checks the active tables' COPIED flags: set exactly
// where the refcount is 1 (QEMU writes in place only there).
func (c *checker) checkCopiedFlags() {
	im, h := c.im, c.im.h
	if c.ctx.Err() != nil || int64(h.l1Size)*entrySize > maxL1Bytes {
		return
	}
	l1, err := im.readTable("active L1 table", int64(h.l1Offset), int64(h.l1Size)*entrySize)
	if err != nil {
		return // reported by walkL1
	}
	// usable is a cluster offset the walk accepted; the others are
	// reported already.
	usable := func(off int64) bool { return off > 0 && off%im.cs == 0 && off <= im.f.Size-im.cs }
	flag := func(e uint64) bool { return e&flagCopied != 0 }
	for i, e := range l1 {
		l2 := int64(e & offsetMask)
		if !usable(l2) || c.uses[l2/im.cs] != useL2 {
			continue
		}
		at := int64(h.l1Offset) + int64(i)*entrySize
		if n := c.refs[l2/im.cs]; flag(e) != (n == 1) {
			c.problem("active L1 table", at, "entry %d: COPIED flag is %v, but the L2 table at %d has %d references", i, flag(e), l2, n)
		}
		t, err := im.readTable("L2 table", l2, im.cs)
		if err != nil {
			return
		}
		for j, x := range t {
			host := int64(x & offsetMask)
			if x&flagCompressed != 0 || !usable(host) || c.uses[host/im.cs] != useData {
				continue
			}
			if n := c.refs[host/im.cs]; flag(x) != (n == 1) {
				c.problem(fmt.Sprintf("L2 table at %d", l2), l2+int64(j)*entrySize, "entry %d: COPIED flag is %v, but the cluster at %d has %d references", j, flag(x), host, n)
			}
		}
	}
}

// refcountAt decodes entry j of a refcount block with bits-wide entries
// (narrow entries packed from the least significant bit, as QEMU does).
func refcountAt(block []byte, j, bits int64) uint64 {
	if bits < 8 {
		per := 8 / bits
		return uint64(block[j/per]>>((j%per)*bits)) & (1<<bits - 1)
	}
	b := block[j*bits/8 : (j+1)*bits/8]
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}
