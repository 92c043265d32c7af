package vmdk

import (
	"encoding/binary"

	"github.com/hypersdk/hypersdk/disk"
)

// On-disk constants of hosted sparse extents (Virtual Disk Format 5.0).
const (
	// SectorSize is the unit of every offset and size in a sparse extent.
	SectorSize = 512

	// GrainSize is the grain size this package writes: 128 sectors (64 KiB),
	// the value VMware products use for streamOptimized disks.
	GrainSize = 128 * SectorSize

	// gtesPerGT is the number of entries of one grain table, the only value
	// VMware products and qemu write.
	gtesPerGT = 512

	// gtBytes is the size of one grain table.
	gtBytes = gtesPerGT * 4

	// minGrainSectors and maxGrainSectors bound the grain sizes readers
	// accept: the format asks for a power of two of at least 8 sectors, and
	// nothing writes grains larger than 2 MiB.
	minGrainSectors = 8
	maxGrainSectors = 2 << 20 / SectorSize

	// magic is "KDMV" read as a little-endian uint32.
	magic = 0x564d444b

	// versionStream is the sparse extent version of streamOptimized disks;
	// 1 and 2 are the older hosted sparse versions.
	versionStream = 3

	flagValidNewlineTest = 1 << 0
	flagRedundantGT      = 1 << 1
	flagZeroedGrainGTE   = 1 << 2
	flagCompressed       = 1 << 16
	flagMarkers          = 1 << 17

	compressionNone    = 0
	compressionDeflate = 1

	// gdAtEnd in the header's gdOffset says "read the footer".
	gdAtEnd = ^uint64(0)

	// gteZeroed is the grain table entry of a grain that reads as zeros
	// when the header has flagZeroedGrainGTE.
	gteZeroed = 1

	// descriptorSectors is the space reserved for the embedded descriptor,
	// right after the header (the size VMware and qemu use).
	descriptorSectors = 20

	// maxEmbeddedDescriptor and maxDescriptorFile bound the descriptor text
	// a reader loads: 20 sectors is usual, and the largest real descriptor
	// file (a twoGbMaxExtentSparse disk of 64 TiB, 32768 extent lines) is
	// under 2 MiB.
	maxEmbeddedDescriptor = 1 << 20
	maxDescriptorFile     = 4 << 20

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3

	// grainMarkerSize is the size of a grain marker before the compressed
	// data: the grain's LBA (uint64) and the compressed size (uint32).
	grainMarkerSize = 12
)

// maxCompressedGrain bounds the stored size of a compressed grain: deflate
// grows incompressible data by a few bytes per 16 KiB block, far below this.
func maxCompressedGrain(grainBytes int64) int64 { return grainBytes + grainBytes/8 + 1024 }

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

// hasMagic reports whether b starts with a sparse extent header's magic.
func hasMagic(b []byte) bool {
	return len(b) >= 4 && binary.LittleEndian.Uint32(b) == magic
}

// parseHeader decodes and checks the header in b (one sector) read at off
// of f: magic, version, newline characters, capacity, grain size, grain
// table size and compression. Offsets into the file are checked by the
// reader that follows them.
func parseHeader(f *disk.File, b []byte, off int64, structure string) (header, error) {
	var h header
	if len(b) < SectorSize {
		return h, disk.Errorf(f, disk.VMDK, structure, off, "short header (%d bytes)", len(b))
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != magic {
		return h, disk.Errorf(f, disk.VMDK, structure, off, "bad magic %q, want \"KDMV\"", b[:4])
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
		return h, disk.Errorf(f, disk.VMDK, structure, off+73, "newline detection characters are corrupted (the file went through a text-mode transfer)")
	}
	if h.Version < 1 || h.Version > versionStream {
		return h, disk.Errorf(f, disk.VMDK, structure, off+4, "unsupported sparse extent version %d (want 1 to 3)", h.Version)
	}
	if h.Capacity > uint64(disk.MaxVirtualSize/SectorSize) {
		return h, disk.Errorf(f, disk.VMDK, structure, off+12, "capacity of %d sectors is beyond the %d-byte limit", h.Capacity, disk.MaxVirtualSize)
	}
	if err := disk.CheckVirtualSize(f, disk.VMDK, structure, off+12, int64(h.Capacity)*SectorSize, 0); err != nil {
		return h, err
	}
	if g := h.GrainSize; g < minGrainSectors || g > maxGrainSectors || g&(g-1) != 0 {
		return h, disk.Errorf(f, disk.VMDK, structure, off+20, "grain size of %d sectors is not a power of two from %d to %d", g, minGrainSectors, maxGrainSectors)
	}
	if h.NumGTEsPerGT != gtesPerGT {
		return h, disk.Errorf(f, disk.VMDK, structure, off+44, "%d entries per grain table, want %d", h.NumGTEsPerGT, gtesPerGT)
	}
	if h.Flags&flagCompressed != 0 && h.CompressAlgorithm != compressionDeflate {
		return h, disk.Errorf(f, disk.VMDK, structure, off+77, "compressed grains with unknown algorithm %d (want 1, deflate)", h.CompressAlgorithm)
	}
	return h, nil
}

// numGTs is the number of grain tables (grain directory entries) the
// header's capacity needs.
func (h *header) numGTs() int64 {
	cover := int64(gtesPerGT) * int64(h.GrainSize)
	return (int64(h.Capacity) + cover - 1) / cover
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
