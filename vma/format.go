package vma

import (
	"errors"
	"fmt"
)

// The layout constants of vma.h.
const (
	// BlockSize is the unit of sparseness: a cluster's 4 KiB blocks that
	// are all zeros are not stored.
	BlockSize = 4 << 10
	// ClusterSize is the unit of the data stream: 16 blocks.
	ClusterSize = 64 << 10
	// BlocksPerCluster is the width of a cluster's mask.
	BlocksPerCluster = ClusterSize / BlockSize
	// MaxClustersPerExtent is the number of blockinfo slots in an extent
	// header (vma-writer.c fills at most 58 of them; 59 are read).
	MaxClustersPerExtent = 59
	// ExtentHeaderSize is the size of an extent header.
	ExtentHeaderSize = 512
	// HeaderFixedSize is the size of the header before its blob buffer
	// (sizeof(VmaHeader)).
	HeaderFixedSize = 12288
	// MaxHeaderSize is the largest header vma-writer.c writes
	// (HEADERBUF_SIZE: 8 clusters); a larger one is refused unread.
	MaxHeaderSize = 8 * ClusterSize
	// MaxConfigs is the number of configuration slots in the header.
	MaxConfigs = 256
	// VMStateDevice is the name of the device that holds a snapshot's RAM
	// state rather than a disk.
	VMStateDevice = "vmstate"
)

// Header field offsets (vma.h's VmaHeader, big-endian fields).
const (
	offMagic       = 0
	offVersion     = 4
	offUUID        = 8
	offCTime       = 24
	offMD5         = 32
	offBlobOffset  = 48
	offBlobSize    = 52
	offHeaderSize  = 56
	offConfigNames = 2044
	offConfigData  = 3068
	offDevInfo     = 4096
	devInfoSize    = 32
)

// Extent header field offsets (VmaExtentHeader).
const (
	offExtMagic      = 0
	offExtReserved   = 4
	offExtBlockCount = 6
	offExtUUID       = 8
	offExtMD5        = 24
	offExtBlockInfo  = 40
)

var (
	magic       = [4]byte{'V', 'M', 'A', 0}
	extentMagic = [4]byte{'V', 'M', 'A', 'E'}
)

// ErrFormat is matched (errors.Is) by every *FormatError.
var ErrFormat = errors.New("malformed VMA archive")

// FormatError is a refusal of an archive: the offset in the (decompressed)
// archive of the structure that was wrong, the structure, and the problem.
type FormatError struct {
	Offset    int64  // -1 when not tied to one place
	Structure string // "header", "extent header", "blob buffer", "cluster 12 of drive-scsi0"…
	Problem   string
	Err       error // an underlying cause (a short read), if any
}

func (e *FormatError) Error() string {
	at := ""
	if e.Offset >= 0 {
		at = fmt.Sprintf(" at offset %d", e.Offset)
	}
	msg := fmt.Sprintf("vma: %s%s: %s", e.Structure, at, e.Problem)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *FormatError) Unwrap() error        { return e.Err }
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

func formatErr(off int64, structure, problem string, args ...any) *FormatError {
	return &FormatError{Offset: off, Structure: structure, Problem: fmt.Sprintf(problem, args...)}
}
