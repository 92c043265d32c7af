package qcow2

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/hypersdk/hypersdk/disk"
)

// Detect reports whether head, the first bytes of a file, starts with the
// qcow2 magic.
func Detect(head []byte) bool {
	return len(head) >= len(magic) && string(head[:len(magic)]) == magic
}

// Image is a qcow2 image opened for reading. It implements disk.Image and
// disk.Checker; ReadAt is safe for concurrent use.
type Image struct {
	f  *disk.File
	h  *header
	cs int64 // cluster size
	// l2Entries is the number of entries in an L2 table; one L1 entry maps
	// l2Entries clusters.
	l2Entries int64
	clusters  int64    // virtual clusters, the last possibly partial
	l1        []uint64 // the active L1 entries that map the virtual disk, checked
	// meta lists the clusters that hold metadata the active tables rely on
	// (header, L1, refcount table and blocks, L2 tables), sorted and
	// disjoint: no data cluster may point into them.
	meta []span

	// Compressed cluster descriptors: host offset in the low coffBits
	// bits, then the count of additional 512-byte sectors.
	coffMask   uint64
	csizeShift uint
	csizeMask  uint64

	l2s        l2Cache
	compressed atomic.Bool // a compressed cluster has been seen

	decoders sync.Pool // of decoder, for the image's compression type

	lastMu    sync.Mutex // guards the last decompressed cluster
	lastEntry uint64
	lastData  []byte
}

// zstdMaxWindow bounds the history a zstd frame may ask the decoder for
// (QEMU's level 3 frames use up to 8 MiB).
const zstdMaxWindow = 8 << 20

// span is a run of metadata clusters [start, end) in the file.
type span struct {
	start, end int64
	what       string
}

// Open reads and checks the header, the active L1 table and where the
// refcount blocks lie. It refuses images it cannot read faithfully on its
// own: backing files, encryption, external data files, subclusters, unknown
// incompatible features.
func Open(f *disk.File) (*Image, error) {
	h, err := readHeader(f)
	if err != nil {
		return nil, err
	}
	cs := int64(1) << h.clusterBits
	im := &Image{
		f:         f,
		h:         h,
		cs:        cs,
		l2Entries: cs / entrySize,
		clusters:  (int64(h.size) + cs - 1) / cs,
	}
	coffBits := 62 - (h.clusterBits - 8)
	im.coffMask = uint64(1)<<coffBits - 1
	im.csizeShift = uint(coffBits)
	im.csizeMask = uint64(1)<<(h.clusterBits-8) - 1
	im.l2s.init(cs)
	if err := im.readTables(); err != nil {
		return nil, err
	}
	im.peekCompressed()
	return im, nil
}

// readTables loads the active L1 table and builds the metadata map the
// data clusters are checked against.
func (im *Image) readTables() error {
	h, f, cs := im.h, im.f, im.cs
	l1Bytes := int64(h.l1Size) * entrySize
	im.meta = []span{
		{0, cs, "header cluster"},
		{int64(h.l1Offset), roundUp(int64(h.l1Offset)+l1Bytes, cs), "L1 table"},
		{int64(h.refTableOffset), int64(h.refTableOffset) + int64(h.refTableClusters)*cs, "refcount table"},
	}

	// Refcount blocks are Check's business, but a data cluster pointing
	// into one is corruption the reader must not hand out, so their places
	// are noted; entries that are not even plausible are left to Check.
	rt, err := im.readTable("refcount table", int64(h.refTableOffset), int64(h.refTableClusters)*cs)
	if err != nil {
		return err
	}
	for _, e := range rt {
		off := e & refOffsetMask
		if off != 0 && off%uint64(cs) == 0 && off <= uint64(f.Size-cs) {
			im.meta = append(im.meta, span{int64(off), int64(off) + cs, "refcount block"})
		}
	}

	l1, err := im.readTable("L1 table", int64(h.l1Offset), int64(h.l1Size)*entrySize)
	if err != nil {
		return err
	}
	// Only the entries within the virtual size are used; those past it
	// (a VM state saved by QEMU) are for Check.
	need := (im.clusters + im.l2Entries - 1) / im.l2Entries
	for i, e := range l1[:need] {
		off := e & offsetMask
		if off == 0 {
			continue
		}
		at := int64(h.l1Offset) + int64(i)*entrySize
		if off%uint64(cs) != 0 || off > uint64(f.Size-cs) {
			return disk.Errorf(f, disk.QCOW2, fmt.Sprintf("L1 entry %d", i), at,
				"L2 table offset %d is not a cluster inside the %d-byte file", off, f.Size)
		}
		im.meta = append(im.meta, span{int64(off), int64(off) + cs, fmt.Sprintf("L2 table of L1 entry %d", i)})
	}
	im.l1 = slices.Clone(l1[:need]) // not the entries past the disk

	slices.SortFunc(im.meta, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(im.meta); i++ {
		a, b := im.meta[i-1], im.meta[i]
		if b.start < a.end {
			return disk.Errorf(f, disk.QCOW2, b.what, b.start, "overlaps the %s at %d", a.what, a.start)
		}
	}
	return nil
}

// readTable reads a table of big-endian 64-bit entries; the caller has
// checked that it lies inside the file.
func (im *Image) readTable(what string, off, n int64) ([]uint64, error) {
	b := make([]byte, n)
	if _, err := im.f.R.ReadAt(b, off); err != nil {
		return nil, &disk.FormatError{File: im.f.Name, Format: disk.QCOW2, Structure: what, Offset: off, Problem: "cannot read", Err: err}
	}
	t := make([]uint64, n/entrySize)
	for i := range t {
		t[i] = binary.BigEndian.Uint64(b[i*entrySize:])
	}
	return t, nil
}

// peekCompressed looks at the first L2 table for a compressed cluster, so
// that Info can say so for images compressed throughout (qemu-img convert
// -c) without reading every table.
func (im *Image) peekCompressed() {
	for i := range im.l1 {
		if im.l1[i]&offsetMask == 0 {
			continue
		}
		t, err := im.l2(i)
		if err != nil {
			return
		}
		for j := 0; j < len(t); j += entrySize {
			if binary.BigEndian.Uint64(t[j:])&flagCompressed != 0 {
				im.compressed.Store(true)
				return
			}
		}
		return
	}
}

// Info describes the image. Compressed is true once a compressed cluster
// has been seen: in the first L2 table at Open, or later by Extents,
// ReadAt or Check.
func (im *Image) Info() disk.Info {
	return disk.Info{
		Format:      disk.QCOW2,
		Subformat:   fmt.Sprintf("v%d", im.h.version),
		VirtualSize: int64(im.h.size),
		ClusterSize: im.cs,
		Compressed:  im.compressed.Load(),
	}
}

// Close does nothing: the image holds nothing beyond the File, which stays
// open.
func (im *Image) Close() error { return nil }

// decoder decompresses one compressed cluster: raw deflate or zstd frames.
type decoder interface {
	reset(src []byte) error
	io.Reader
}

type flateDecoder struct{ io.ReadCloser }

func (d *flateDecoder) reset(src []byte) error {
	return d.ReadCloser.(flate.Resetter).Reset(bytes.NewReader(src), nil)
}

type zstdDecoder struct{ *zstd.Decoder }

func (d *zstdDecoder) reset(src []byte) error { return d.Decoder.Reset(bytes.NewReader(src)) }

// decoder takes a decoder for the image's compression type from the pool.
func (im *Image) decoder() (decoder, error) {
	if d, ok := im.decoders.Get().(decoder); ok {
		return d, nil
	}
	if im.h.compressionType == compressionZstd {
		// Synchronous (no goroutines to close), and a frame may not ask
		// for more history than QEMU's own frames use.
		z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, err
		}
		return &zstdDecoder{z}, nil
	}
	return &flateDecoder{flate.NewReader(bytes.NewReader(nil))}, nil
}

// clusterKind is what an L2 entry makes of its virtual cluster.
type clusterKind int

const (
	unallocated       clusterKind = iota // reads as zeros (no backing file)
	zeroCluster                          // reads as zeros; may still own a host cluster
	dataCluster                          // host cluster holds the bytes
	compressedCluster                    // host bytes inflate to the cluster
)

// mapping is where one virtual cluster's bytes come from.
type mapping struct {
	kind  clusterKind
	entry uint64 // the raw L2 entry
	host  int64  // data: host cluster offset; compressed: first byte
	clen  int64  // compressed: bytes to read (clamped to the file)
}

// lookup maps virtual cluster vc through the active tables, checking the
// entry against the file and the metadata before it is used.
func (im *Image) lookup(vc int64) (mapping, error) {
	i := vc / im.l2Entries
	if im.l1[i]&offsetMask == 0 {
		return mapping{}, nil
	}
	t, err := im.l2(int(i))
	if err != nil {
		return mapping{}, err
	}
	j := vc % im.l2Entries
	return im.classify(binary.BigEndian.Uint64(t[j*entrySize:]), int64(im.l1[i]&offsetMask)+j*entrySize, vc)
}

// classify decodes L2 entry e found at file offset at, for virtual cluster
// vc.
func (im *Image) classify(e uint64, at, vc int64) (mapping, error) {
	bad := func(problem string, args ...any) error {
		return disk.Errorf(im.f, disk.QCOW2, fmt.Sprintf("L2 entry for virtual offset %d", vc*im.cs), at, problem, args...)
	}
	if e&flagCompressed != 0 {
		host := e & im.coffMask
		sectors := (e>>im.csizeShift)&im.csizeMask + 1
		if host < uint64(im.cs) || host >= uint64(im.f.Size) {
			return mapping{}, bad("compressed data offset %d is not inside the %d-byte file after the header cluster", host, im.f.Size)
		}
		// The data ends at the last of its sectors; QEMU does not pad the
		// file's final sector, so the length is clamped to the file.
		n := min(int64(sectors)*disk.SectorSize-int64(host%disk.SectorSize), im.f.Size-int64(host))
		for c := int64(host) &^ (im.cs - 1); c < int64(host)+n; c += im.cs {
			if s, ok := im.metaAt(c); ok {
				return mapping{}, bad("compressed data at %d lies in the %s at %d", host, s.what, s.start)
			}
		}
		im.compressed.Store(true)
		return mapping{kind: compressedCluster, entry: e, host: int64(host), clen: n}, nil
	}
	if e&flagZero != 0 {
		return mapping{kind: zeroCluster, entry: e}, nil
	}
	host := e & offsetMask
	if host == 0 {
		return mapping{entry: e}, nil
	}
	if host%uint64(im.cs) != 0 || host > uint64(im.f.Size-im.cs) {
		return mapping{}, bad("data cluster offset %d is not a cluster inside the %d-byte file", host, im.f.Size)
	}
	if s, ok := im.metaAt(int64(host)); ok {
		return mapping{}, bad("data cluster at %d lies in the %s at %d", host, s.what, s.start)
	}
	return mapping{kind: dataCluster, entry: e, host: int64(host)}, nil
}

// metaAt finds the metadata span holding file offset off.
func (im *Image) metaAt(off int64) (span, bool) {
	i, _ := slices.BinarySearchFunc(im.meta, off, func(s span, off int64) int {
		if s.end <= off {
			return -1
		}
		if s.start > off {
			return 1
		}
		return 0
	})
	if i < len(im.meta) && im.meta[i].start <= off && off < im.meta[i].end {
		return im.meta[i], true
	}
	return span{}, false
}

// ReadAt reads the virtual disk: unallocated and zero clusters as zeros,
// compressed clusters inflated, runs of clusters contiguous in the file in
// one read. Past the virtual size it returns io.EOF.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	size := int64(im.h.size)
	if off < 0 {
		return 0, fmt.Errorf("%s: qcow2 read at negative offset %d", im.f.Name, off)
	}
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p, eof = p[:size-off], io.EOF
	}
	// A pending run of host bytes: p[runAt:runAt+runLen] comes from the file
	// at runHost.
	var runHost, runAt, runLen int64
	flush := func() error {
		if runLen == 0 {
			return nil
		}
		if _, err := im.f.R.ReadAt(p[runAt:runAt+runLen], runHost); err != nil {
			return &disk.FormatError{File: im.f.Name, Format: disk.QCOW2, Structure: "data cluster", Offset: runHost, Problem: "cannot read", Err: err}
		}
		runLen = 0
		return nil
	}
	for done := int64(0); done < int64(len(p)); {
		pos := off + done
		vc, in := pos/im.cs, pos%im.cs
		n := min(im.cs-in, int64(len(p))-done)
		m, err := im.lookup(vc)
		if err != nil {
			return int(done), err
		}
		switch m.kind {
		case dataCluster:
			// A run grows only while it is contiguous both in the file and
			// in p: data clusters on each side of a hole may lie next to
			// each other in the file, and the hole between them in p must
			// stay zeros.
			if runLen > 0 && runHost+runLen == m.host+in && runAt+runLen == done {
				runLen += n
			} else {
				if err := flush(); err != nil {
					return int(done), err
				}
				runHost, runAt, runLen = m.host+in, done, n
			}
		case compressedCluster:
			c, err := im.inflate(m, vc)
			if err != nil {
				return int(done), err
			}
			copy(p[done:done+n], c[in:])
		default:
			clear(p[done : done+n])
		}
		done += n
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return len(p), eof
}

// inflate returns the bytes of compressed cluster m (virtual cluster vc),
// exactly one cluster. The last one inflated is kept for reads smaller
// than a cluster.
func (im *Image) inflate(m mapping, vc int64) ([]byte, error) {
	im.lastMu.Lock()
	if im.lastData != nil && im.lastEntry == m.entry {
		c := im.lastData
		im.lastMu.Unlock()
		return c, nil
	}
	im.lastMu.Unlock()

	bad := func(err error) error {
		return &disk.FormatError{File: im.f.Name, Format: disk.QCOW2, Structure: fmt.Sprintf("compressed cluster for virtual offset %d", vc*im.cs),
			Offset: m.host, Problem: "does not decompress to one cluster", Err: err}
	}
	src := make([]byte, m.clen)
	if _, err := im.f.R.ReadAt(src, m.host); err != nil {
		return nil, &disk.FormatError{File: im.f.Name, Format: disk.QCOW2, Structure: "compressed cluster", Offset: m.host, Problem: "cannot read", Err: err}
	}
	out := make([]byte, im.cs)
	d, err := im.decoder()
	if err != nil {
		return nil, err
	}
	// The sectors read may hold the start of the next compressed cluster:
	// decoding stops once the cluster is full, as QEMU's does.
	if err := d.reset(src); err != nil {
		return nil, bad(err)
	}
	_, err = io.ReadFull(d, out)
	im.decoders.Put(d)
	if err != nil {
		return nil, bad(err)
	}
	im.lastMu.Lock()
	im.lastEntry, im.lastData = m.entry, out
	im.lastMu.Unlock()
	return out, nil
}

// Extents walks the active L1 and L2 tables and yields the clusters that
// hold data (standard and compressed) in ascending order, merged where
// adjacent. Unallocated and zero clusters are not extents.
func (im *Image) Extents() iter.Seq2[disk.Extent, error] {
	return func(yield func(disk.Extent, error) bool) {
		size := int64(im.h.size)
		var run disk.Extent
		for i, l1e := range im.l1 {
			if l1e&offsetMask == 0 {
				continue
			}
			t, err := im.l2(i)
			if err != nil {
				yield(disk.Extent{}, err)
				return
			}
			first := int64(i) * im.l2Entries
			for j := range min(im.l2Entries, im.clusters-first) {
				vc := first + j
				m, err := im.classify(binary.BigEndian.Uint64(t[j*entrySize:]), int64(l1e&offsetMask)+j*entrySize, vc)
				if err != nil {
					yield(disk.Extent{}, err)
					return
				}
				if m.kind != dataCluster && m.kind != compressedCluster {
					continue
				}
				start := vc * im.cs
				end := min(start+im.cs, size)
				if run.Length > 0 && run.End() == start {
					run.Length = end - run.Offset
					continue
				}
				if run.Length > 0 && !yield(run, nil) {
					return
				}
				run = disk.Extent{Offset: start, Length: end - start}
			}
		}
		if run.Length > 0 {
			yield(run, nil)
		}
	}
}

// l2 returns the L2 table of active L1 entry i (raw big-endian bytes,
// shared: never modified).
func (im *Image) l2(i int) ([]byte, error) {
	off := int64(im.l1[i] & offsetMask)
	if t := im.l2s.get(off); t != nil {
		return t, nil
	}
	t := make([]byte, im.cs)
	if _, err := im.f.R.ReadAt(t, off); err != nil {
		return nil, &disk.FormatError{File: im.f.Name, Format: disk.QCOW2, Structure: fmt.Sprintf("L2 table of L1 entry %d", i), Offset: off, Problem: "cannot read", Err: err}
	}
	im.l2s.put(off, t)
	return t, nil
}

// l2Cache keeps a few recently used L2 tables: sequential reads and the
// extent walk touch one table for cluster size / 8 clusters in a row.
type l2Cache struct {
	mu      sync.Mutex
	tick    uint64
	entries []l2CacheEntry
}

type l2CacheEntry struct {
	off   int64
	table []byte
	used  uint64
}

// The cache holds at most l2CacheBytes and l2CacheTables (a lookup scans
// them): 64 tables of 64 KiB, 2 of 2 MiB.
const (
	l2CacheBytes  = 4 << 20
	l2CacheTables = 64
)

func (c *l2Cache) init(cs int64) {
	c.entries = make([]l2CacheEntry, 0, min(l2CacheTables, max(2, l2CacheBytes/cs)))
}

func (c *l2Cache) get(off int64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.entries {
		if e := &c.entries[i]; e.off == off {
			c.tick++
			e.used = c.tick
			return e.table
		}
	}
	return nil
}

func (c *l2Cache) put(off int64, t []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	for i := range c.entries {
		if c.entries[i].off == off { // loaded concurrently
			return
		}
	}
	if len(c.entries) < cap(c.entries) {
		c.entries = append(c.entries, l2CacheEntry{off, t, c.tick})
		return
	}
	oldest := 0
	for i := range c.entries {
		if c.entries[i].used < c.entries[oldest].used {
			oldest = i
		}
	}
	c.entries[oldest] = l2CacheEntry{off, t, c.tick}
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
