package qcow2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/hypersdk/hypersdk/disk"
)

// On-disk constants from the qcow2 specification (docs/interop/qcow2.txt in
// QEMU). Every integer is big-endian.
const (
	magic = "QFI\xfb"

	v2HeaderLength = 72  // version 2 ends before the feature fields
	v3HeaderLength = 104 // the smallest version 3 header
	// v3FullHeaderLength is the header QEMU writes today: 104 bytes plus the
	// compression type byte, padded to 8.
	v3FullHeaderLength = 112

	minClusterBits = 9  // 512-byte clusters
	maxClusterBits = 21 // 2 MiB clusters

	// Limits QEMU itself enforces (QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE,
	// QCOW_MAX_SNAPSHOTS); a header beyond them is refused.
	maxL1Bytes       = 32 << 20
	maxRefTableBytes = 8 << 20
	maxSnapshots     = 65536
	maxBackingName   = 1023

	// L1, L2 and refcount table entries.
	flagCopied     = uint64(1) << 63 // refcount is exactly 1 (active tables only)
	flagCompressed = uint64(1) << 62 // L2: compressed cluster descriptor
	flagZero       = uint64(1)       // L2: the cluster reads as zeros
	offsetMask     = uint64(0x00fffffffffffe00)
	refOffsetMask  = ^uint64(0x1ff) // refcount table: bits 9..63

	// Incompatible feature bits.
	incompatDirty       = 1 << 0
	incompatCorrupt     = 1 << 1
	incompatDataFile    = 1 << 2
	incompatCompression = 1 << 3
	incompatExtendedL2  = 1 << 4
	knownIncompatible   = incompatDirty | incompatCorrupt | incompatDataFile | incompatCompression | incompatExtendedL2

	// Autoclear feature bit 0: the bitmaps extension is consistent; QEMU
	// ignores the extension without it.
	autoclearBitmaps = 1 << 0

	// Header extension types.
	extEnd          = 0x00000000
	extFeatureNames = 0x6803f857
	extBitmaps      = 0x23852875
	extCrypto       = 0x0537be77
	extDataFile     = 0x44415441

	compressionZlib = 0
	compressionZstd = 1

	// entrySize is the size of an L1, L2 and refcount table entry.
	entrySize = 8
)

// header is the decoded, validated image header with its extensions.
type header struct {
	version              uint32
	backingOffset        uint64
	backingSize          uint32
	clusterBits          uint32
	size                 uint64
	cryptMethod          uint32
	l1Size               uint32
	l1Offset             uint64
	refTableOffset       uint64
	refTableClusters     uint32
	nbSnapshots          uint32
	snapshotsOffset      uint64
	incompatible         uint64
	autoclear            uint64
	refcountOrder        uint32
	headerLength         uint32
	compressionType      uint8
	featureNames         map[[2]byte]string // {type, bit} → name, for messages
	bitmaps              *bitmapsExtension  // nil without the extension
	hasDataFileExtension bool
	hasCryptoExtension   bool
}

// bitmapsExtension locates the persistent dirty bitmaps' directory, whose
// clusters Check counts.
type bitmapsExtension struct {
	count         uint32
	directorySize uint64
	directoryOff  uint64
	at            int64 // file offset of the extension, for messages
}

// readHeader reads and checks the header and its extensions: every field
// that sizes or places a structure is validated against the file and the
// format's limits here, before anything is allocated from it.
func readHeader(f *disk.File) (*header, error) {
	errf := func(off int64, problem string, args ...any) error {
		return disk.Errorf(f, disk.QCOW2, "header", off, problem, args...)
	}
	if f.Size < v2HeaderLength {
		return nil, errf(0, "file is %d bytes, shorter than the %d-byte header", f.Size, v2HeaderLength)
	}
	var b [v3FullHeaderLength]byte
	n := min(int64(len(b)), f.Size)
	if _, err := f.R.ReadAt(b[:n], 0); err != nil {
		return nil, &disk.FormatError{File: f.Name, Format: disk.QCOW2, Structure: "header", Offset: 0, Problem: "cannot read", Err: err}
	}
	if string(b[:4]) != magic {
		return nil, errf(0, "magic %q, want %q", b[:4], magic)
	}
	be := binary.BigEndian
	h := &header{
		version:          be.Uint32(b[4:]),
		backingOffset:    be.Uint64(b[8:]),
		backingSize:      be.Uint32(b[16:]),
		clusterBits:      be.Uint32(b[20:]),
		size:             be.Uint64(b[24:]),
		cryptMethod:      be.Uint32(b[32:]),
		l1Size:           be.Uint32(b[36:]),
		l1Offset:         be.Uint64(b[40:]),
		refTableOffset:   be.Uint64(b[48:]),
		refTableClusters: be.Uint32(b[56:]),
		nbSnapshots:      be.Uint32(b[60:]),
		snapshotsOffset:  be.Uint64(b[64:]),
		refcountOrder:    4,
		headerLength:     v2HeaderLength,
	}
	switch h.version {
	case 2:
	case 3:
		if n < v3HeaderLength {
			return nil, errf(0, "file is %d bytes, shorter than the %d-byte version 3 header", f.Size, v3HeaderLength)
		}
		h.incompatible = be.Uint64(b[72:])
		h.autoclear = be.Uint64(b[88:])
		h.refcountOrder = be.Uint32(b[96:])
		h.headerLength = be.Uint32(b[100:])
	default:
		return nil, errf(4, "version %d, want 2 or 3", h.version)
	}
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return nil, errf(20, "cluster_bits %d out of range %d..%d", h.clusterBits, minClusterBits, maxClusterBits)
	}
	cs := int64(1) << h.clusterBits
	if h.version == 3 {
		if h.headerLength < v3HeaderLength || h.headerLength%8 != 0 || int64(h.headerLength) > cs {
			return nil, errf(100, "header_length %d: want a multiple of 8 from %d to the cluster size %d", h.headerLength, v3HeaderLength, cs)
		}
		if h.refcountOrder > 6 {
			return nil, errf(96, "refcount_order %d, want 0..6", h.refcountOrder)
		}
		if int64(h.headerLength) > f.Size {
			return nil, errf(100, "header_length %d reaches past the end of the %d-byte file", h.headerLength, f.Size)
		}
		if h.headerLength > v3HeaderLength {
			h.compressionType = b[104]
		}
	}

	// The header cluster (header, extensions, backing file name) is read
	// once; it is at most 2 MiB, and the file must hold what is read.
	head := make([]byte, min(cs, f.Size))
	if _, err := f.R.ReadAt(head, 0); err != nil {
		return nil, &disk.FormatError{File: f.Name, Format: disk.QCOW2, Structure: "header cluster", Offset: 0, Problem: "cannot read", Err: err}
	}
	if err := h.readExtensions(f, head); err != nil {
		return nil, err
	}

	// Refusals: what this reader cannot turn into the disk's bytes alone.
	if h.backingOffset != 0 {
		name, err := h.backingName(f, head)
		if err != nil {
			return nil, err
		}
		return nil, errf(8, "the image has a backing file %q: it holds only the differences against that image; "+
			"flatten it into a standalone image first (qemu-img convert -O qcow2 <this image> <standalone.qcow2>) or supply a standalone image", name)
	}
	if h.cryptMethod != 0 || h.hasCryptoExtension {
		return nil, errf(32, "the image is encrypted (crypt_method %d); decrypt it first (qemu-img convert with --object secret and --image-opts)", h.cryptMethod)
	}
	if h.incompatible&incompatDataFile != 0 || h.hasDataFileExtension {
		return nil, errf(72, "the image keeps its data in an external data file, which is not supported; convert it to a self-contained image first (qemu-img convert -O qcow2)")
	}
	if h.incompatible&incompatExtendedL2 != 0 {
		return nil, errf(72, "the image uses extended L2 entries (subclusters), which are not supported; convert it first (qemu-img convert -O qcow2)")
	}
	if unknown := h.incompatible &^ knownIncompatible; unknown != 0 {
		return nil, errf(72, "unknown incompatible features %s", h.describeFeatures(0, unknown))
	}
	if h.incompatible&incompatCompression != 0 || h.compressionType != compressionZlib {
		if h.headerLength <= v3HeaderLength {
			return nil, errf(72, "compression type feature set but the header has no compression type field")
		}
		if h.compressionType != compressionZlib && h.compressionType != compressionZstd {
			return nil, errf(104, "compression type %d, want 0 (zlib) or 1 (zstd)", h.compressionType)
		}
		if (h.compressionType != compressionZlib) != (h.incompatible&incompatCompression != 0) {
			return nil, errf(104, "compression type %d does not match the compression type feature bit", h.compressionType)
		}
	}

	if h.size > uint64(disk.MaxVirtualSize) {
		return nil, errf(24, "virtual size %d is beyond the %d-byte limit", h.size, disk.MaxVirtualSize)
	}
	if err := disk.CheckVirtualSize(f, disk.QCOW2, "header", 24, int64(h.size), 0); err != nil {
		return nil, err
	}
	if err := h.checkTables(f, cs); err != nil {
		return nil, err
	}
	return h, nil
}

// checkTables validates where the L1, refcount and snapshot tables lie.
func (h *header) checkTables(f *disk.File, cs int64) error {
	errf := func(off int64, problem string, args ...any) error {
		return disk.Errorf(f, disk.QCOW2, "header", off, problem, args...)
	}
	l2Span := cs * (cs / entrySize) // virtual bytes one L2 table maps
	need := (int64(h.size) + l2Span - 1) / l2Span
	switch {
	case int64(h.l1Size) < need:
		return errf(36, "L1 table has %d entries, but the %d-byte virtual disk needs %d", h.l1Size, h.size, need)
	case int64(h.l1Size)*entrySize > maxL1Bytes:
		return errf(36, "L1 table of %d entries is beyond the %d-byte limit", h.l1Size, maxL1Bytes)
	}
	if err := tableInFile(f, "L1 table", 40, h.l1Offset, int64(h.l1Size)*entrySize, cs); err != nil {
		return err
	}
	refBytes := int64(h.refTableClusters) * cs
	if h.refTableClusters == 0 || refBytes > maxRefTableBytes {
		return errf(56, "refcount table of %d clusters, want 1 to %d bytes", h.refTableClusters, maxRefTableBytes)
	}
	if err := tableInFile(f, "refcount table", 48, h.refTableOffset, refBytes, cs); err != nil {
		return err
	}
	if overlaps(int64(h.l1Offset), int64(h.l1Size)*entrySize, int64(h.refTableOffset), refBytes) {
		return errf(40, "L1 table (%d bytes at %d) overlaps the refcount table (%d bytes at %d)", h.l1Size*entrySize, h.l1Offset, refBytes, h.refTableOffset)
	}
	if h.nbSnapshots > maxSnapshots {
		return errf(60, "%d snapshots, more than the %d allowed", h.nbSnapshots, maxSnapshots)
	}
	if h.nbSnapshots > 0 {
		if h.snapshotsOffset%uint64(cs) != 0 || h.snapshotsOffset == 0 || h.snapshotsOffset >= uint64(f.Size) {
			return errf(64, "snapshot table offset %d is not a cluster inside the %d-byte file", h.snapshotsOffset, f.Size)
		}
	}
	return nil
}

// tableInFile checks that a table of n bytes at off is cluster aligned,
// after the header cluster and inside the file.
func tableInFile(f *disk.File, what string, field int64, off uint64, n, cs int64) error {
	switch {
	case off%uint64(cs) != 0:
		return disk.Errorf(f, disk.QCOW2, "header", field, "%s offset %d is not aligned to the %d-byte cluster", what, off, cs)
	case off == 0 && n > 0:
		return disk.Errorf(f, disk.QCOW2, "header", field, "%s lies in the header cluster", what)
	case off > uint64(f.Size) || int64(off)+n > f.Size:
		return disk.Errorf(f, disk.QCOW2, "header", field, "%s (%d bytes at %d) reaches past the end of the %d-byte file", what, n, off, f.Size)
	}
	return nil
}

// readExtensions walks the header extensions after header_length up to the
// end marker or the end of the header cluster.
func (h *header) readExtensions(f *disk.File, head []byte) error {
	be := binary.BigEndian
	off := int64(h.headerLength)
	for {
		if off+8 > int64(len(head)) {
			// No room for another extension: the header cluster (or the
			// file) ends; QEMU stops here as well.
			return nil
		}
		typ := be.Uint32(head[off:])
		n := int64(be.Uint32(head[off+4:]))
		if typ == extEnd {
			return nil
		}
		data := off + 8
		if n > int64(len(head))-data {
			return disk.Errorf(f, disk.QCOW2, "header extension", off, "type %#x claims %d bytes, past the header cluster", typ, n)
		}
		body := head[data : data+n]
		switch typ {
		case extFeatureNames:
			h.featureNames = make(map[[2]byte]string)
			for i := 0; i+48 <= len(body); i += 48 {
				name := strings.TrimRight(string(bytes.TrimRight(body[i+2:i+48], "\x00")), " ")
				h.featureNames[[2]byte{body[i], body[i+1]}] = name
			}
		case extBitmaps:
			if n < 24 {
				return disk.Errorf(f, disk.QCOW2, "bitmaps extension", off, "%d bytes, want 24", n)
			}
			h.bitmaps = &bitmapsExtension{
				count:         be.Uint32(body),
				directorySize: be.Uint64(body[8:]),
				directoryOff:  be.Uint64(body[16:]),
				at:            off,
			}
		case extCrypto:
			h.hasCryptoExtension = true
		case extDataFile:
			h.hasDataFileExtension = true
		}
		off = data + (n+7)&^7
	}
}

// backingName reads the backing file name for the refusal message.
func (h *header) backingName(f *disk.File, head []byte) (string, error) {
	off, n := h.backingOffset, uint64(h.backingSize)
	if n > maxBackingName || off >= uint64(len(head)) || off+n > uint64(len(head)) {
		return "", disk.Errorf(f, disk.QCOW2, "header", 8,
			"the image has a backing file, but its name (%d bytes at %d) is not inside the header cluster; "+
				"flatten the image into a standalone one first (qemu-img convert -O qcow2) or supply a standalone image", n, off)
	}
	return string(head[off : off+n]), nil
}

// describeFeatures names the set bits of a feature field, using the image's
// own feature name table where it has one.
func (h *header) describeFeatures(kind byte, bits uint64) string {
	var parts []string
	for i := range 64 {
		if bits&(1<<i) == 0 {
			continue
		}
		if name := h.featureNames[[2]byte{kind, byte(i)}]; name != "" {
			parts = append(parts, fmt.Sprintf("bit %d (%s)", i, name))
		} else {
			parts = append(parts, fmt.Sprintf("bit %d", i))
		}
	}
	return strings.Join(parts, ", ")
}

// overlaps reports whether [a, a+an) and [b, b+bn) share a byte.
func overlaps(a, an, b, bn int64) bool {
	return an > 0 && bn > 0 && a < b+bn && b < a+an
}
