package vma

import (
	"bytes"
	"crypto/md5" //nolint:gosec // the format's own integrity check
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Reader reads a VMA archive front to back from a stream: the header when
// made, then one cluster per Next call in archive order. It never seeks,
// reads each byte once, and holds at most one extent (under 4 MiB) plus
// one bit per cluster it has seen.
type Reader struct {
	r   io.Reader
	off int64 // archive offset of the next byte of r
	hdr *Header

	devs [256]*devState // by device ID; nil: no such device

	ext      [ExtentHeaderSize]byte
	entries  []entry // the current extent's clusters
	next     int     // index in entries of the next cluster to return
	data     []byte  // the current extent's stored blocks
	cluster  Cluster
	extents  int64
	clusters int64
	err      error // sticky: io.EOF after a complete archive, or the failure
}

type devState struct {
	dev      *Device
	clusters int64 // clusters that cover the device
	seen     clusterSet
	count    int64  // distinct clusters seen
	vmstate  bool   // clusters are skipped, in order
	nextVM   uint32 // the vmstate cluster expected next
	data     int64  // bytes of stored blocks within the device
	zero     int64  // bytes of zero blocks within the device
}

// entry is one cluster of the current extent.
type entry struct {
	dev     *devState
	num     uint32
	mask    uint16
	dataOff int // offset of its first stored block in Reader.data
}

// NewReader reads and checks the archive's header from r; the clusters
// follow through Next. r is read sequentially and never more than needed:
// a decompressing reader over an SSH session's stdout works.
func NewReader(r io.Reader) (*Reader, error) {
	vr := &Reader{r: r}
	var fixed [HeaderFixedSize]byte
	if err := vr.readFull(fixed[:], "header"); err != nil {
		return nil, err
	}
	if !bytes.Equal(fixed[:4], magic[:]) {
		return nil, formatErr(0, "header", "not a VMA archive (magic % x, want % x)", fixed[:4], magic[:])
	}
	size := int64(binary.BigEndian.Uint32(fixed[offHeaderSize:]))
	if size <= HeaderFixedSize || size > MaxHeaderSize {
		return nil, formatErr(offHeaderSize, "header", "header size %d is outside (%d, %d]", size, HeaderFixedSize, MaxHeaderSize)
	}
	head := make([]byte, size)
	copy(head, fixed[:])
	if err := vr.readFull(head[HeaderFixedSize:], "header"); err != nil {
		return nil, err
	}
	h, err := parseHeader(head)
	if err != nil {
		return nil, err
	}
	vr.hdr = h
	for i := range h.Devices {
		d := &h.Devices[i]
		vr.devs[d.ID] = &devState{dev: d, clusters: d.Clusters(), vmstate: d.VMState()}
	}
	return vr, nil
}

// Header returns the archive's header.
func (r *Reader) Header() *Header { return r.hdr }

// Offset is how many bytes of the archive have been read.
func (r *Reader) Offset() int64 { return r.off }

// readFull reads len(b) bytes; a stream ending early is a FormatError
// naming what was being read.
func (r *Reader) readFull(b []byte, what string) error {
	n, err := io.ReadFull(r.r, b)
	r.off += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &FormatError{Offset: r.off, Structure: what, Problem: "the archive ends here (truncated)", Err: io.ErrUnexpectedEOF}
		}
		return fmt.Errorf("vma: read %s at offset %d: %w", what, r.off, err)
	}
	return nil
}

// Cluster is one 64 KiB cluster of a device as the archive stores it: the
// mask says which of its 4 KiB blocks are stored; the others are zeros.
// It is valid until the next call to Next.
type Cluster struct {
	// Device is the device the cluster belongs to.
	Device *Device
	// Index is the cluster's number in the device.
	Index int64
	// Offset is where the cluster starts in the device (Index × 64 KiB).
	Offset int64
	// Length is how many bytes of the device the cluster covers: 64 KiB,
	// less for the last cluster of a device whose size is not a multiple.
	Length int
	// Mask has bit i set when block i (bytes i×4 KiB to (i+1)×4 KiB of
	// the cluster) is stored; clear bits are blocks of zeros. Bit 0 is
	// the least significant, as vma-writer.c sets it.
	Mask uint16
	data []byte // the stored blocks, in block order
}

// Block returns block i's bytes when stored, cut at the device's end; nil
// for a zero block or one past the end.
func (c *Cluster) Block(i int) []byte {
	if i < 0 || i >= BlocksPerCluster || c.Mask&(1<<i) == 0 {
		return nil
	}
	start := i * BlockSize
	if start >= c.Length {
		return nil
	}
	k := bits.OnesCount16(c.Mask & (1<<i - 1))
	b := c.data[k*BlockSize : (k+1)*BlockSize]
	return b[:min(BlockSize, c.Length-start)]
}

// Read fills dst[:c.Length] with the cluster's bytes, zeros included.
func (c *Cluster) Read(dst []byte) {
	dst = dst[:c.Length]
	for i := 0; i*BlockSize < c.Length; i++ {
		b := dst[i*BlockSize : min((i+1)*BlockSize, c.Length)]
		if s := c.Block(i); s != nil {
			copy(b, s)
		} else {
			clear(b)
		}
	}
}

// WriteTo writes the cluster's stored blocks to w at their device offsets,
// cut at the device's end, adjacent blocks in one write; zero blocks (and
// stored blocks that happen to hold only zeros) are not written, so a
// sparse w keeps its holes. It returns the bytes written.
func (c *Cluster) WriteTo(w io.WriterAt) (int64, error) {
	var n int64
	for i := 0; i < BlocksPerCluster && i*BlockSize < c.Length; {
		if c.Block(i) == nil || isZero(c.Block(i)) {
			i++
			continue
		}
		// A run of stored, non-zero blocks is contiguous in data too.
		j := i + 1
		for j < BlocksPerCluster && j*BlockSize < c.Length && c.Block(j) != nil && !isZero(c.Block(j)) {
			j++
		}
		k := bits.OnesCount16(c.Mask & (1<<i - 1))
		run := c.data[k*BlockSize : (k+j-i)*BlockSize]
		run = run[:min(len(run), c.Length-i*BlockSize)]
		m, err := w.WriteAt(run, c.Offset+int64(i*BlockSize))
		n += int64(m)
		if err != nil {
			return n, err
		}
		i = j
	}
	return n, nil
}

var zeroBlock [BlockSize]byte

func isZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

// Next returns the next cluster of a disk in archive order. vmstate
// clusters are checked (in order, inside their extent) and skipped. After
// the last extent Next checks that every cluster of every disk arrived
// exactly once and returns io.EOF; a truncated or malformed archive is a
// *FormatError instead, and every later call returns the same error.
func (r *Reader) Next() (*Cluster, error) {
	for r.err == nil {
		for r.next < len(r.entries) {
			e := r.entries[r.next]
			r.next++
			if e.dev.vmstate {
				continue
			}
			d := e.dev.dev
			off := int64(e.num) * ClusterSize
			n := bits.OnesCount16(e.mask)
			r.cluster = Cluster{Device: d, Index: int64(e.num), Offset: off, Length: int(min(ClusterSize, d.Size-off)),
				Mask: e.mask, data: r.data[e.dataOff : e.dataOff+n*BlockSize]}
			return &r.cluster, nil
		}
		r.err = r.readExtent()
	}
	return nil, r.err
}

// readExtent reads the next extent: its header checked (magic, MD5 with
// the md5sum field zeroed, uuid, block count against the masks) and every
// cluster entry checked against its device before its data is read.
// io.EOF at an extent boundary ends the archive, which must then be
// complete.
func (r *Reader) readExtent() error {
	start := r.off
	n, err := io.ReadFull(r.r, r.ext[:])
	r.off += int64(n)
	switch {
	case n == 0 && err == io.EOF:
		return r.complete()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FormatError{Offset: start, Structure: "extent header", Problem: fmt.Sprintf("the archive ends %d bytes into it (truncated)", n), Err: err}
	case err != nil:
		return fmt.Errorf("vma: read extent header at offset %d: %w", start, err)
	}
	h := r.ext[:]
	be := binary.BigEndian
	if !bytes.Equal(h[offExtMagic:offExtMagic+4], extentMagic[:]) {
		return formatErr(start, "extent header", "magic % x, want % x", h[:4], extentMagic[:])
	}
	var sum [16]byte
	copy(sum[:], h[offExtMD5:])
	clear(h[offExtMD5 : offExtMD5+16])
	if computed := md5.Sum(h); computed != sum { //nolint:gosec
		return formatErr(start, "extent header", "MD5 %x does not match the extent header's (%x)", sum, computed)
	}
	if !bytes.Equal(h[offExtUUID:offExtUUID+16], r.hdr.UUID[:]) {
		return formatErr(start, "extent header", "uuid %x is not the archive's %s", h[offExtUUID:offExtUUID+16], r.hdr.UUID)
	}
	if v := be.Uint16(h[offExtReserved:]); v != 0 {
		return formatErr(start, "extent header", "reserved field is %#x, not 0", v)
	}
	blocks := int(be.Uint16(h[offExtBlockCount:]))
	r.entries, r.next = r.entries[:0], 0
	stored := 0
	for i := range MaxClustersPerExtent {
		at := start + int64(offExtBlockInfo+8*i)
		info := be.Uint64(h[offExtBlockInfo+8*i:])
		if info == 0 {
			continue // an unused slot
		}
		mask, reserved, id, num := uint16(info>>48), uint8(info>>40), uint8(info>>32), uint32(info)
		where := blockinfoName(i)
		if id == 0 {
			return formatErr(at, where, "device 0 (reserved) with data %#016x", info)
		}
		if reserved != 0 {
			return formatErr(at, where, "reserved byte is %#x, not 0", reserved)
		}
		d := r.devs[id]
		if d == nil {
			return formatErr(at, where, "device %d is not in the header", id)
		}
		if err := r.checkCluster(d, num, mask, at, where); err != nil {
			return err
		}
		r.entries = append(r.entries, entry{dev: d, num: num, mask: mask, dataOff: stored * BlockSize})
		stored += bits.OnesCount16(mask)
	}
	if stored != blocks {
		return formatErr(start, "extent header", "block count %d, but its masks store %d blocks", blocks, stored)
	}
	// At most 59 × 16 blocks: under 4 MiB, whatever the header says.
	need := stored * BlockSize
	if cap(r.data) < need {
		r.data = make([]byte, need, max(need, 2*cap(r.data)))
	}
	r.data = r.data[:need]
	if err := r.readFull(r.data, "extent data"); err != nil {
		return fmt.Errorf("%w (the extent at offset %d)", err, start)
	}
	r.extents++
	r.clusters += int64(len(r.entries))
	return nil
}

// checkCluster refuses what vma-writer.c never writes and vma-reader.c
// refuses (or would crash on): a disk cluster past the device's end or
// seen before, a stored block wholly past the end, vmstate clusters out of
// order. It then records the cluster as seen.
func (r *Reader) checkCluster(d *devState, num uint32, mask uint16, at int64, where string) error {
	name := d.dev.Name
	if d.vmstate {
		if num != d.nextVM {
			return formatErr(at, where, "vmstate cluster %d out of order (expected %d)", num, d.nextVM)
		}
		d.nextVM++
		return nil
	}
	if int64(num) >= d.clusters {
		return formatErr(at, where, "cluster %d of %s is past its end (%d bytes, %d clusters)", num, name, d.dev.Size, d.clusters)
	}
	off := int64(num) * ClusterSize
	length := min(ClusterSize, d.dev.Size-off)
	if past := mask >> ((length + BlockSize - 1) / BlockSize); length < ClusterSize && past != 0 {
		return formatErr(at, where, "cluster %d of %s stores blocks past the device's end (mask %#04x, %d bytes left)", num, name, mask, length)
	}
	if !d.seen.add(int64(num)) {
		return formatErr(at, where, "cluster %d of %s appears twice", num, name)
	}
	d.count++
	storedBytes := int64(0)
	for i := range BlocksPerCluster {
		if mask&(1<<i) != 0 {
			storedBytes += min(BlockSize, max(0, length-int64(i*BlockSize)))
		}
	}
	d.data += storedBytes
	d.zero += length - storedBytes
	return nil
}

// complete checks, at the end of the stream, that every disk got all its
// clusters: an archive cut at an extent boundary (vzdump killed, a dropped
// connection) is refused here rather than read as a disk full of zeros.
func (r *Reader) complete() error {
	for _, d := range r.devs {
		if d == nil || d.vmstate || d.count == d.clusters {
			continue
		}
		return formatErr(r.off, "end of archive", "%s is incomplete: %d of its %d clusters arrived, cluster %d is missing (truncated archive?)",
			d.dev.Name, d.count, d.clusters, d.seen.firstMissing(d.clusters))
	}
	return io.EOF
}

// blockinfoNames name the extent header's slots in messages, made once so
// that checking a cluster allocates nothing.
var blockinfoNames = func() (n [MaxClustersPerExtent]string) {
	for i := range n {
		n[i] = fmt.Sprintf("extent blockinfo %d", i)
	}
	return n
}()

func blockinfoName(i int) string { return blockinfoNames[i] }
