package providers

import (
	"context"
	"io"
	"net/http"

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
	// Format is SourceVMDKStream or SourceRaw.
	Format string
	// Capacity is the virtual disk size in bytes.
	Capacity int64
	// Size is the length of the source stream in bytes, -1 when unknown
	// until it ends (NFC streams chunked).
	Size int64
	// Allocated lists the byte ranges holding data when the platform
	// knows them (nil: unknown, everything may hold data).
	Allocated []Extent
	// Exactly one of HTTP and Open is set.
	HTTP *HTTPSource
	// Open returns a reader of the source from its first byte. The
	// pipeline calls it once per export: a failed read fails the export
	// (the job engine retries it), it is not resumed.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Extent is a byte range of a disk.
type Extent struct {
	Offset, Length int64
}

// HTTPSource is a GET the pipeline makes through transfer/ (resumable,
// hashed while streaming).
type HTTPSource struct {
	URL string
	// Header is sent with every request (session cookie); never logged.
	Header http.Header
	// Client carries the TLS policy for the URL's host (certificate pin),
	// made with transfer.NewHTTPClient; nil means transfer's default.
	Client *http.Client
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
