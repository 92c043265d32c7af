package providers

import (
	"context"
	"hash"
	"io"
	"iter"
	"net/http"
	"time"

	"github.com/hypersdk/hypersdk/progress"
)

// Source formats of a DiskSource: what the bytes a provider hands over
// are, so the pipeline knows how to decode them.
const (
	// SourceVMDKStream is a monolithic streamOptimized VMDK (what vSphere
	// NFC serves).
	SourceVMDKStream = "vmdk-streamoptimized"
	// SourceRaw is the disk's bytes as the guest sees them, Capacity long.
	SourceRaw = "raw"
	// SourceImage is a disk image in any format disk/formats reads (VHD,
	// VHDX, qcow2, VMDK, raw), recognised by its bytes, whose virtual size
	// is Capacity. Such images need random access to be read, so the
	// pipeline stages an HTTP one beside the output ("<name>.src") and
	// decodes it from there; Open is not accepted for it.
	SourceImage = "image"
)

// Exporter is the platform half of an export: everything that needs the
// platform (lookup, snapshot or power-off, lease, grant, task) and nothing
// else. It never writes a descriptor, manifest or archive; the pipeline
// package fetches what Export describes and packages it.
type Exporter interface {
	// PrepareExport prepares the VM identified by identifier for export
	// and describes what to fetch. When it returns an error it has already
	// undone what it did. When it returns an Export, the caller calls
	// Export.Finish exactly once and Export.Cleanup exactly once, after
	// Finish, whatever happens.
	PrepareExport(ctx context.Context, identifier string, opts ExportOptions) (*Export, error)
}

// Export is a prepared export: the VM's metadata, where its disks and
// other files come from, and the hooks that end the platform's side.
type Export struct {
	// VM is the VM's metadata (name, CPUs, memory, firmware, guest OS,
	// NICs, disks with capacity and controller) from which the pipeline
	// builds the descriptor.
	VM *VMInfo
	// Disks are the VM's disks, in the order of VM.Disks.
	Disks []DiskSource
	// Files are other files of the VM the export carries as they are
	// (vSphere NVRAM).
	Files []FileSource
	// Fill writes the disks marked Filled, all of them in one call, from
	// one stream (a Proxmox `vzdump --stdout` archive carries every disk
	// of the VM, their clusters interleaved and out of order). disks[k] is
	// the k-th Filled disk in Disks order: a sparse raw file beneath the
	// output root, its Capacity long and reading as zeros. Fill writes
	// data at its offsets, in any order, and never needs to write zeros;
	// report, when called, tells the bytes of the disks the stream has
	// covered so far and their total (the sum of the capacities). It
	// returns nil only once every Filled disk is complete. The pipeline
	// calls it once per export, after PrepareExport and before Finish; a
	// failure fails the export, which is not resumed (a stream cannot be).
	Fill func(ctx context.Context, disks []io.WriterAt, report func(done, total int64)) error
	// Progress, when set, hears the download reports (BytesDone and
	// BytesTotal, 0 while unknown) as the transfer advances, for platforms
	// that want to hear it (a vSphere lease times out without progress).
	// It must be cheap and must not block.
	Progress progress.Func
	// Finish ends the platform side: err nil when every byte arrived and
	// was written (vSphere: lease complete), else the failure (vSphere:
	// lease abort). It must work with a cancelled ctx for err != nil. Nil
	// means nothing to do.
	Finish func(ctx context.Context, err error) error
	// Cleanup removes what PrepareExport created on the platform for the
	// export (a temporary snapshot). It always runs, after Finish, and must
	// not depend on the export's context. Nil means nothing to do.
	Cleanup func()
}

// DiskSource is one disk handed over by a provider.
type DiskSource struct {
	// Name is the disk's name without extension ("disk-0"); the pipeline
	// names the file "<vm>-<Name>.<disk format>".
	Name string
	// Format is SourceVMDKStream, SourceRaw or SourceImage.
	Format string
	// Capacity is the virtual disk size in bytes.
	Capacity int64
	// Size is the length of the source stream in bytes, -1 when unknown
	// until it ends (NFC streams chunked).
	Size int64
	// Allocated lists the byte ranges holding data when the platform
	// knows them (nil: unknown, everything may hold data).
	Allocated []Extent
	// Exactly one of HTTP, Open, Blocks and Filled is set.
	HTTP *HTTPSource
	// Open returns a reader of the source from its first byte. The
	// pipeline calls it once per export: a failed read fails the export
	// (the job engine retries it), it is not resumed.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// Blocks is a disk the platform serves as independently fetched
	// blocks (EBS direct snapshot blocks, Azure page blob ranges). Format
	// must be SourceRaw; Size is not used.
	Blocks *BlockSource
	// Filled marks a disk whose bytes Export.Fill writes, with the
	// Export's other Filled disks, from one stream. Format must be
	// SourceRaw and Capacity known; Size is not used. The pipeline gives
	// Fill a sparse raw part file per disk and, once Fill returned, makes
	// the disk of it: renamed into place for a raw export (its bytes
	// hashed by reading its data back), encoded in the requested format
	// otherwise, as block sources' part files are.
	Filled bool
}

// BlockSource is a disk that arrives as many independently fetched
// blocks: the pipeline lists the blocks holding data, fetches them with
// many workers (adaptive concurrency), verifies each block's checksum
// before writing it at its offset into a sparse raw file exactly
// DiskSource.Capacity long (unlisted ranges and all-zero blocks stay
// holes), and journals finished blocks so that an export interrupted by a
// failure, a cancellation or a kill -9 resumes, in the same output
// directory, with only the blocks that were in flight. Into object
// storage the blocks are instead written in disk order straight into the
// upload, through a bounded in-memory reorder window, and not journaled:
// a resumed attempt fetches them all again.
//
// Blocks live on a grid of BlockSize cells: block k lies inside
// [k×BlockSize, (k+1)×BlockSize) and no two blocks share a cell. EBS
// blocks are the cells themselves (512 KiB); an Azure page blob's page
// ranges are cut at cell boundaries, and ranges sharing a cell are merged
// into one block spanning them (the gap reads as zeros).
//
// Errors of List and Fetch are classified by what they wrap:
// ErrThrottled (the pipeline halves its concurrency and retries after a
// jittered backoff), ErrExpired (Refresh, then retry), Permanent or a
// request error class (the export fails, see IsPermanent); anything else
// (a 5xx, a reset connection, a timeout) is retried with backoff, a
// bounded number of times. A block whose bytes do not match a checksum
// Fetch returned is retried the same way. List is not retried by the
// pipeline: an error it yields fails the export attempt (the job engine
// retries the export, which resumes from the journal).
type BlockSource struct {
	// ID identifies the bytes served: two sources with the same ID,
	// Capacity and BlockSize serve the same bytes (EBS: the snapshot id;
	// Azure: the snapshot's resource id). The resume journal records it
	// and a journal of another source is ignored. Empty: no resume.
	ID string
	// BlockSize is the grid's cell size in bytes, a multiple of 512 of at
	// most 64 MiB. It bounds the memory the download takes: at most
	// 64 MiB of block buffers (so 64 concurrent 1 MiB blocks, 16 of
	// 4 MiB).
	BlockSize int64
	// List yields the blocks holding data, in any order, each exactly
	// once; blocks never listed are holes. It may page through the
	// platform's listing as the iteration advances. The pipeline calls it
	// once per export attempt and stops iterating when the export ends.
	List func(ctx context.Context) iter.Seq2[Block, error]
	// Fetch reads block b into dst (len(dst) == b.Length): all of it, or
	// an error. It returns the checksums the platform sent with the
	// bytes (zero value when it sent none); the pipeline verifies them
	// before the bytes are written. It is called by many goroutines at
	// once, each call under a deadline (Timeout). It must not touch dst
	// once it has returned: the buffer is reused, and unmapped when the
	// download ends.
	Fetch func(ctx context.Context, b Block, dst []byte) (BlockChecksums, error)
	// Refresh, when set, renews what Fetch uses to authenticate (an Azure
	// SAS grant) after a Fetch failed with ErrExpired; the pipeline calls
	// it once for all the workers that saw the expiry, then fetches the
	// blocks again. Nil: ErrExpired fails the export attempt.
	Refresh func(ctx context.Context) error
	// MaxConcurrency caps the concurrent Fetch calls (0: 64, the cap
	// being lowered further by the 64 MiB buffer budget). The pipeline
	// starts at 16 (or the cap, if lower), adds one per window of
	// successful fetches and halves on throttling.
	MaxConcurrency int
	// Timeout bounds each Fetch call (0: 2 minutes).
	Timeout time.Duration
}

// Block is one block of a BlockSource.
type Block struct {
	// Offset and Length place the block on the disk.
	Offset, Length int64
	// Token is the platform's handle for the block, handed back to Fetch
	// (EBS: the BlockToken of ListSnapshotBlocks); "" when not needed.
	// Never logged.
	Token string
}

// BlockChecksums are the digests a platform sent with a block's bytes;
// nil fields were not sent. EBS sends SHA-256 (x-amz-Checksum, decoded
// from base64); Azure sends MD5 for ranges up to 4 MiB when asked
// (x-ms-range-get-content-md5).
type BlockChecksums struct {
	SHA256 []byte
	MD5    []byte
}

// Extent is a byte range of a disk.
type Extent struct {
	Offset, Length int64
}

// HTTPSource is a GET the pipeline makes through transfer/ (resumable,
// hashed while streaming).
type HTTPSource struct {
	// URL is never logged whole: its query string (a pre-signed S3 URL's
	// signature, an Azure SAS) is removed from every message.
	URL string
	// Header is sent with every request (session cookie); never logged.
	Header http.Header
	// Client carries the TLS policy for the URL's host (certificate pin),
	// made with transfer.NewHTTPClient; nil means transfer's default.
	Client *http.Client
	// Offset > 0 makes the source bytes [Offset, Offset+Size) of the object
	// at URL — a member of an uncompressed archive, such as the VMDK inside
	// an OVA in object storage — fetched with ranged GETs only. The
	// DiskSource's (or FileSource's) Size must then be known.
	Offset int64
	// Ranged says the server answers ranged GETs with the object's size
	// (object storage: S3, Azure Blob, GCS): the pipeline fetches the
	// source with parallel ranged GETs and, when an attempt fails in a way
	// that may heal, keeps what arrived so that the next attempt into the
	// same directory resumes it. Validator must then be set, so that bytes
	// of another version of the object are never spliced on.
	Ranged bool
	// Validator is the object's strong ETag (or Last-Modified) as the
	// platform reported it: a response carrying another one restarts the
	// download from zero instead of continuing it.
	Validator string
	// Digests are what the platform says the bytes hash to besides SHA-256
	// (an S3 ETag's MD5, an x-amz-checksum-crc64nvme): each is computed as
	// the bytes stream and a mismatch fails the download.
	Digests []Digest
}

// Digest is a digest a source's bytes must match once all of them have
// arrived.
type Digest struct {
	// Name names it in messages ("md5", "crc64nvme").
	Name string
	// New returns a fresh hash; it is called again whenever the download
	// restarts from its first byte. A hash may be framed (already fed the
	// bytes of the object before the source, adding those after it in
	// Sum), so that the digest of a whole object checks a part of it.
	New func() hash.Hash
	// Sum is the expected New().Sum(nil) of the source's bytes.
	Sum []byte
}

// FileSource is a non-disk file of the VM, copied as is.
type FileSource struct {
	// Name is the file's name suffix ("nvram"); the pipeline names the
	// file "<vm>-<Name>".
	Name string
	// Kind is the ExportedFile kind ("nvram").
	Kind string
	// Size is its length, -1 when unknown.
	Size int64
	HTTP *HTTPSource
	Open func(ctx context.Context) (io.ReadCloser, error)
}
