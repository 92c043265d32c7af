package vmdk

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// On-disk constants of hosted sparse extents (Virtual Disk Format 5.0).
const (
	// SectorSize is the unit of every offset and size in a sparse extent.
	SectorSize = 512

	// GrainSize is the grain size this package writes: 128 sectors (64 KiB),
	// the value VMware products use for streamOptimized disks.
	GrainSize = 128 * SectorSize

	// gtesPerGT is the number of entries of one grain table.
	gtesPerGT = 512

	// magic is "KDMV" read as a little-endian uint32.
	magic = 0x564d444b

	// versionStream is the sparse extent version of streamOptimized disks.
	versionStream = 3

	flagValidNewlineTest = 1 << 0
	flagRedundantGT      = 1 << 1
	flagZeroedGrainGTE   = 1 << 2
	flagCompressed       = 1 << 16
	flagMarkers          = 1 << 17

	compressionDeflate = 1

	// gdAtEnd in the header's gdOffset says "read the footer".
	gdAtEnd = ^uint64(0)

	// descriptorSectors is the space reserved for the embedded descriptor,
	// right after the header (the size VMware and qemu use).
	descriptorSectors = 20

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3

	// grainMarkerSize is the size of a grain marker before the compressed
	// data: the grain's LBA (uint64) and the compressed size (uint32).
	grainMarkerSize = 12
)

// header is the 512-byte SparseExtentHeader (all fields little-endian, packed).
type header struct {
	Version           uint32
	Flags             uint32
	Capacity          uint64 // sectors
	GrainSize         uint64 // sectors
	DescriptorOffset  uint64 // sectors
	DescriptorSize    uint64 // sectors
	NumGTEsPerGT      uint32
	RGDOffset         uint64 // sectors
	GDOffset          uint64 // sectors
	Overhead          uint64 // sectors
	UncleanShutdown   bool
	CompressAlgorithm uint16
}

func (h *header) marshal() []byte {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], magic)
	le.PutUint32(b[4:], h.Version)
	le.PutUint32(b[8:], h.Flags)
	le.PutUint64(b[12:], h.Capacity)
	le.PutUint64(b[20:], h.GrainSize)
	le.PutUint64(b[28:], h.DescriptorOffset)
	le.PutUint64(b[36:], h.DescriptorSize)
	le.PutUint32(b[44:], h.NumGTEsPerGT)
	le.PutUint64(b[48:], h.RGDOffset)
	le.PutUint64(b[56:], h.GDOffset)
	le.PutUint64(b[64:], h.Overhead)
	if h.UncleanShutdown {
		b[72] = 1
	}
	// The newline detection characters let a reader notice a file that went
	// through a text-mode transfer.
	b[73], b[74], b[75], b[76] = '\n', ' ', '\r', '\n'
	le.PutUint16(b[77:], h.CompressAlgorithm)
	return b
}

var errNotVMDK = errors.New("vmdk: not a sparse VMDK extent (bad magic)")

func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < SectorSize {
		return h, fmt.Errorf("vmdk: short header (%d bytes)", len(b))
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != magic {
		return h, errNotVMDK
	}
	h.Version = le.Uint32(b[4:])
	h.Flags = le.Uint32(b[8:])
	h.Capacity = le.Uint64(b[12:])
	h.GrainSize = le.Uint64(b[20:])
	h.DescriptorOffset = le.Uint64(b[28:])
	h.DescriptorSize = le.Uint64(b[36:])
	h.NumGTEsPerGT = le.Uint32(b[44:])
	h.RGDOffset = le.Uint64(b[48:])
	h.GDOffset = le.Uint64(b[56:])
	h.Overhead = le.Uint64(b[64:])
	h.UncleanShutdown = b[72] != 0
	h.CompressAlgorithm = le.Uint16(b[77:])
	if h.Flags&flagValidNewlineTest != 0 && (b[73] != '\n' || b[74] != ' ' || b[75] != '\r' || b[76] != '\n') {
		return h, errors.New("vmdk: newline detection characters are corrupted (text-mode transfer?)")
	}
	return h, nil
}

// metadataMarker returns a 512-byte metadata marker: the number of sectors of
// metadata that follow, a zero size (which tells it apart from a grain
// marker) and the marker type.
func metadataMarker(numSectors uint64, typ uint32) []byte {
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint64(b[0:], numSectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return b
}

// sectorsFor returns how many sectors n bytes occupy.
func sectorsFor(n int64) int64 {
	return (n + SectorSize - 1) / SectorSize
}
