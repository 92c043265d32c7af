package vmatest

import (
	"crypto/md5" //nolint:gosec // the format's checksum
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/hypersdk/hypersdk/vma"
)

const (
	headerBufSize = 8 * vma.ClusterSize // HEADERBUF_SIZE
	maxExtentSize = vma.ExtentHeaderSize + vma.ClusterSize*vma.MaxClustersPerExtent
)

// Writer is vma-writer.c's VmaWriter over an io.Writer.
type Writer struct {
	w             io.Writer
	uuid          [16]byte
	ctime         time.Time
	headerWritten bool
	closed        bool
	err           error

	outbuf    []byte
	outPos    int // in bytes, starts past the extent header
	outCount  int // clusters waiting
	blockInfo [vma.MaxClustersPerExtent]uint64

	streams         [256]stream
	streamCount     int
	vmstateStream   uint8
	vmstateClusters int64

	blobTable   []byte // header_blob_table: its len is header_blob_table_size
	blobPos     int    // header_blob_table_pos, starting at 1
	configNames [vma.MaxConfigs]uint32
	configData  [vma.MaxConfigs]uint32
	configCount int
}

type stream struct {
	name         string
	size         int64
	clusterCount int64
	transferred  int64
	finished     bool
}

// NewWriter starts an archive marked uuid, made at ctime (the header's
// ctime, seconds).
func NewWriter(w io.Writer, uuid [16]byte, ctime time.Time) *Writer {
	return &Writer{w: w, uuid: uuid, ctime: ctime, outbuf: make([]byte, maxExtentSize),
		outPos: vma.ExtentHeaderSize, blobPos: 1}
}

func (w *Writer) fail(format string, args ...any) error {
	if w.err == nil {
		w.err = fmt.Errorf("vmatest: "+format, args...)
	}
	return w.err
}

// allocateBlob is allocate_header_blob: a 2-byte little-endian length and
// the data, appended at blobPos; the table grows by the blob's size
// rounded up to 512. It returns the blob's offset, 0 when too long.
func (w *Writer) allocateBlob(data []byte) uint32 {
	n := len(data)
	if n > 65535 {
		return 0
	}
	if w.blobTable == nil || len(w.blobTable) < w.blobPos+n+2 {
		newSize := len(w.blobTable) + (n+2+511)/512*512
		w.blobTable = append(w.blobTable, make([]byte, newSize-len(w.blobTable))...)
	}
	pos := w.blobPos
	w.blobTable[pos] = byte(n)
	w.blobTable[pos+1] = byte(n >> 8)
	copy(w.blobTable[pos+2:], data)
	w.blobPos += n + 2
	return uint32(pos)
}

// allocateString stores s with its terminating NUL.
func (w *Writer) allocateString(s string) uint32 { return w.allocateBlob(append([]byte(s), 0)) }

// AddConfig is vma_writer_add_config: the base name of name, then data.
func (w *Writer) AddConfig(name string, data []byte) error {
	if w.headerWritten {
		return w.fail("AddConfig after the header was written")
	}
	if w.configCount >= vma.MaxConfigs {
		return w.fail("too many configs")
	}
	np := w.allocateString(path.Base(name))
	if np == 0 {
		return errors.New("vmatest: config name too long")
	}
	dp := w.allocateBlob(data)
	if dp == 0 {
		return fmt.Errorf("vmatest: config %s: %d bytes is more than a blob holds (65535)", name, len(data))
	}
	w.configNames[w.configCount], w.configData[w.configCount] = np, dp
	w.configCount++
	return nil
}

// RegisterStream is vma_writer_register_stream: it returns the device's
// ID (1-254). The stream named "vmstate" takes clusters in sequence,
// without bound.
func (w *Writer) RegisterStream(name string, size int64) (uint8, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.headerWritten {
		return 0, w.fail("register_stream: header already written")
	}
	n := w.streamCount + 1
	if n > 254 {
		return 0, w.fail("register_stream: too many drives")
	}
	if size <= 0 {
		return 0, w.fail("register_stream: got strange size %d", size)
	}
	w.streams[n] = stream{name: name, size: size, clusterCount: (size + vma.ClusterSize - 1) / vma.ClusterSize}
	w.streamCount = n
	if name == vma.VMStateDevice {
		w.vmstateStream = uint8(n)
	}
	return uint8(n), nil
}

// writeHeader is vma_write_header.
func (w *Writer) writeHeader() error {
	buf := make([]byte, headerBufSize)
	be := binary.BigEndian
	copy(buf, "VMA\x00")
	be.PutUint32(buf[4:], 1)
	copy(buf[8:], w.uuid[:])
	be.PutUint64(buf[24:], uint64(w.ctime.Unix()))
	for i := range vma.MaxConfigs {
		be.PutUint32(buf[2044+4*i:], w.configNames[i])
		be.PutUint32(buf[3068+4*i:], w.configData[i])
	}
	for i := 1; i <= 254; i++ {
		s := &w.streams[i]
		if s.size == 0 {
			continue
		}
		p := w.allocateString(s.name)
		if p == 0 {
			return w.fail("device name %q too long", s.name)
		}
		be.PutUint32(buf[4096+32*i:], p)
		be.PutUint64(buf[4096+32*i+8:], uint64(s.size))
	}
	headerSize := vma.HeaderFixedSize + len(w.blobTable)
	be.PutUint32(buf[56:], uint32(headerSize))
	if headerSize > headerBufSize {
		return w.fail("header of %d bytes exceeds %d", headerSize, headerBufSize)
	}
	copy(buf[vma.HeaderFixedSize:], w.blobTable)
	be.PutUint32(buf[48:], vma.HeaderFixedSize)
	be.PutUint32(buf[52:], uint32(w.blobPos))
	sum := md5.Sum(buf[:headerSize]) //nolint:gosec
	copy(buf[32:], sum[:])
	return w.write(buf[:headerSize])
}

func (w *Writer) write(b []byte) error {
	if _, err := w.w.Write(b); err != nil {
		return w.fail("write: %v", err)
	}
	return nil
}

// flush is vma_writer_flush: the header first if not yet written, then
// the waiting clusters as one extent — possibly none.
func (w *Writer) flush() error {
	if w.err != nil {
		return w.err
	}
	if !w.headerWritten {
		w.headerWritten = true
		if err := w.writeHeader(); err != nil {
			return err
		}
	}
	h := w.outbuf[:vma.ExtentHeaderSize]
	be := binary.BigEndian
	copy(h, "VMAE")
	be.PutUint16(h[4:], 0)
	for i := range vma.MaxClustersPerExtent {
		be.PutUint64(h[40+8*i:], w.blockInfo[i])
	}
	be.PutUint16(h[6:], uint16((w.outPos-vma.ExtentHeaderSize)/vma.BlockSize))
	copy(h[8:], w.uuid[:])
	clear(h[24:40])
	sum := md5.Sum(h) //nolint:gosec
	copy(h[24:], sum[:])
	err := w.write(w.outbuf[:w.outPos])
	w.outCount, w.outPos = 0, vma.ExtentHeaderSize
	clear(w.blockInfo[:])
	return err
}

// FlushOutput is vma_writer_flush_output, for an archive without streams.
func (w *Writer) FlushOutput() error { return w.flush() }

// WriteCluster is vma_writer_write: cluster number num of device dev, from
// buf (64 KiB; nil for a cluster of zeros). Blocks past the device's end
// are never stored; a stored block the end cuts has its tail zeroed.
func (w *Writer) WriteCluster(dev uint8, num int64, buf []byte) error {
	if w.err != nil {
		return w.err
	}
	s := &w.streams[dev]
	switch {
	case dev == 0 || s.size == 0:
		return w.fail("write: no such stream %d", dev)
	case s.finished:
		return w.fail("write: stream already closed %d", dev)
	case num < 0 || num >= 1<<32:
		return w.fail("write: cluster number out of range")
	case buf != nil && len(buf) != vma.ClusterSize:
		return w.fail("write: a cluster is %d bytes, got %d", vma.ClusterSize, len(buf))
	}
	if dev == w.vmstateStream {
		if num != w.vmstateClusters {
			return w.fail("write: non sequential vmstate write")
		}
		w.vmstateClusters++
	} else if num >= s.clusterCount {
		return w.fail("write: cluster number too big")
	}
	for w.outCount >= vma.MaxClustersPerExtent-1 { // vma_writer_get_buffer
		if err := w.flush(); err != nil {
			return err
		}
	}
	var mask uint16
	if buf != nil {
		off := num * vma.ClusterSize
		for i := range vma.BlocksPerCluster {
			block := buf[i*vma.BlockSize : (i+1)*vma.BlockSize]
			if off < s.size && !allZero(block) {
				mask |= 1 << i
				copy(w.outbuf[w.outPos:], block)
				if off+vma.BlockSize > s.size {
					clear(w.outbuf[w.outPos+int(s.size-off) : w.outPos+vma.BlockSize])
				}
				w.outPos += vma.BlockSize
			}
			off += vma.BlockSize
		}
	}
	w.blockInfo[w.outCount] = uint64(mask)<<48 | uint64(dev)<<32 | uint64(num)&0xffffffff
	w.outCount++
	transferred := int64(vma.ClusterSize)
	if dev != w.vmstateStream {
		if last := (num + 1) * vma.ClusterSize; last > s.size {
			diff := last - s.size
			if diff >= vma.ClusterSize {
				return w.fail("write: read after last cluster")
			}
			transferred -= diff
		}
	}
	s.transferred += transferred
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// CloseStream is vma_writer_close_stream: when it closes the last open
// stream, the waiting clusters are flushed (an extent is written even if
// none wait).
func (w *Writer) CloseStream(dev uint8) error {
	s := &w.streams[dev]
	if s.size == 0 {
		return w.fail("close_stream: no such stream %d", dev)
	}
	if s.finished {
		return w.fail("close_stream: stream already closed %d", dev)
	}
	s.finished = true
	open := 0
	for i := range w.streams {
		if w.streams[i].size != 0 && !w.streams[i].finished {
			open++
		}
	}
	if open == 0 {
		return w.flush()
	}
	return w.err
}

// Close is vma_writer_close: every stream must be closed and, but the
// vmstate, complete.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	for i := range w.streams {
		s := &w.streams[i]
		if s.size == 0 {
			continue
		}
		if !s.finished {
			w.fail("close: detected open stream '%s'", s.name)
		} else if s.transferred != s.size && uint8(i) != w.vmstateStream {
			w.fail("close: incomplete stream '%s' (%d != %d)", s.name, s.transferred, s.size)
		}
	}
	return w.err
}
