package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
)

// Format names a disk image format as users type it (--disk-format,
// hyperctl disk convert --to).
type Format string

const (
	Raw   Format = "raw"
	VMDK  Format = "vmdk"
	QCOW2 Format = "qcow2"
	VHD   Format = "vhd"
	VHDX  Format = "vhdx"
)

// MaxVirtualSize bounds every virtual size a reader accepts or a writer
// produces: 64 TiB, the largest VHDX, beyond every format's practical use.
// A header claiming more is refused rather than believed.
const MaxVirtualSize int64 = 64 << 40

// SectorSize is the unit every format here aligns to.
const SectorSize = 512

// Extent is a run of the virtual disk that holds data: Length bytes from
// Offset. It may still contain zeros; bytes outside every extent are zeros.
type Extent struct {
	Offset int64
	Length int64
}

// End is the offset just past the extent.
func (e Extent) End() int64 { return e.Offset + e.Length }

// Info describes an opened image.
type Info struct {
	Format Format `json:"format"`
	// Subformat is the variant within the format: the VMDK createType
	// ("streamOptimized", "monolithicSparse", "monolithicFlat"), "fixed",
	// "dynamic" or "differencing" for VHD and VHDX, "v2" or "v3" for qcow2.
	Subformat string `json:"subformat,omitempty"`
	// VirtualSize is the size of the disk the guest sees, in bytes.
	VirtualSize int64 `json:"virtual_size"`
	// ClusterSize is the allocation unit: qcow2 cluster, VMDK grain, VHD or
	// VHDX block; 0 for raw.
	ClusterSize int64 `json:"cluster_size,omitempty"`
	// Compressed is true when data is stored compressed (streamOptimized
	// VMDK, compressed qcow2 clusters).
	Compressed bool `json:"compressed,omitempty"`
	// Parent names the image this one is a difference against, as the image
	// records it.
	Parent string `json:"parent,omitempty"`
}

// Image is a disk image opened for reading. ReadAt reads the virtual disk
// (holes as zeros; io.EOF past VirtualSize) and is safe for concurrent use.
type Image interface {
	io.ReaderAt
	Info() Info
	// Extents yields the runs holding data in ascending order, merged where
	// adjacent; a damaged table ends the sequence with its error.
	Extents() iter.Seq2[Extent, error]
	// Close releases what the image opened itself (parents, extent files),
	// not the File it was opened from.
	Close() error
}

// Checker is implemented by images that can check their own structure
// beyond what Open already refused: every table entry in range, no two
// entries sharing a cluster, reference counts and checksums consistent. It
// returns every problem found, joined, each a *FormatError.
type Checker interface {
	Check(ctx context.Context) error
}

// Source is a disk as writers consume it: its virtual size, then its
// extents front to back; after NextExtent, Read yields exactly that extent's
// bytes before io.EOF.
type Source interface {
	Size() int64
	// NextExtent moves to the next run holding data, after the previous
	// one; io.EOF after the last.
	NextExtent() (Extent, error)
	io.Reader
}

// Target receives an image. Writers append through Write (and may Seek
// forward over a hole), then patch what they reserved at the front through
// WriteAt; Truncate fixes the final length (trailing holes). *os.File is one.
type Target interface {
	io.Writer
	io.WriterAt
	io.Seeker
	Truncate(size int64) error
}

// WriteOptions are what every writer understands; a writer ignores what its
// format has no place for.
type WriteOptions struct {
	// Name is the file name the image will have (VMDK descriptors name
	// their extent).
	Name string
	// Subformat picks the variant: "fixed" or "dynamic" for VHD (default
	// dynamic), "dynamic" for VHDX, "streamOptimized" for VMDK.
	Subformat string
	// ClusterSize overrides the format's default allocation unit (qcow2
	// cluster, VHD/VHDX block); 0 keeps the default.
	ClusterSize int64
	// AdapterType and HardwareVersion fill a VMDK descriptor's DDB.
	AdapterType     string
	HardwareVersion int
}

// FormatError is a refusal of an image: which file, which format, which
// structure at which file offset, and what was wrong with it.
type FormatError struct {
	File      string
	Format    Format
	Structure string // "header", "L1 table", "BAT entry 12", "footer"…
	Offset    int64  // offset in the file; -1 when not tied to one
	Problem   string
	Err       error // underlying cause (an I/O error), if any
}

func (e *FormatError) Error() string {
	at := ""
	if e.Offset >= 0 {
		at = fmt.Sprintf(" at offset %d", e.Offset)
	}
	msg := fmt.Sprintf("%s: %s %s%s: %s", e.File, e.Format, e.Structure, at, e.Problem)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *FormatError) Unwrap() error { return e.Err }

// ErrFormat matches every *FormatError with errors.Is.
var ErrFormat = errors.New("malformed disk image")

func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Errorf builds a *FormatError for file f.
func Errorf(f *File, format Format, structure string, off int64, problem string, args ...any) *FormatError {
	name := ""
	if f != nil {
		name = f.Name
	}
	return &FormatError{File: name, Format: format, Structure: structure, Offset: off, Problem: fmt.Sprintf(problem, args...)}
}

// CheckVirtualSize refuses a virtual size no disk has: not positive, past
// MaxVirtualSize, or (when align > 0) not a multiple of align.
func CheckVirtualSize(f *File, format Format, structure string, off, size, align int64) error {
	switch {
	case size <= 0:
		return Errorf(f, format, structure, off, "virtual size %d is not positive", size)
	case size > MaxVirtualSize:
		return Errorf(f, format, structure, off, "virtual size %d is beyond the %d-byte limit", size, MaxVirtualSize)
	case align > 0 && size%align != 0:
		return Errorf(f, format, structure, off, "virtual size %d is not a multiple of %d", size, align)
	}
	return nil
}
