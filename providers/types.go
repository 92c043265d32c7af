package providers

import (
	"fmt"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/progress"
)

// PowerState is a VM's power state, normalised across platforms.
type PowerState string

// Power states. Platforms with richer state models map onto these.
const (
	PowerOn      PowerState = "poweredOn"
	PowerOff     PowerState = "poweredOff"
	PowerSuspend PowerState = "suspended"
	PowerUnknown PowerState = "unknown"
)

// VMInfo describes one VM as discovered on its platform.
type VMInfo struct {
	// ID is the platform's stable identifier (a MoRef such as "vm-42" on
	// vSphere, an instance ID on EC2…). GetVM accepts it.
	ID       string `json:"id"`
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// Path is the inventory path ("/DC0/vm/prod/web01") where the platform has
	// one.
	Path       string     `json:"path,omitempty"`
	Datacenter string     `json:"datacenter,omitempty"`
	PowerState PowerState `json:"power_state"`
	GuestOS    string     `json:"guest_os,omitempty"`
	// Firmware is "bios" or "efi" where known.
	Firmware     string     `json:"firmware,omitempty"`
	CPUs         int        `json:"cpus"`
	MemoryMiB    int64      `json:"memory_mib"`
	UUID         string     `json:"uuid,omitempty"`
	InstanceUUID string     `json:"instance_uuid,omitempty"`
	Disks        []DiskInfo `json:"disks"`
	NICs         []NICInfo  `json:"nics"`
	// Labels holds platform tags or annotations.
	Labels map[string]string `json:"labels,omitempty"`
}

// TotalDiskBytes is the sum of the capacities of the VM's disks.
func (v *VMInfo) TotalDiskBytes() int64 {
	var n int64
	for _, d := range v.Disks {
		n += d.CapacityBytes
	}
	return n
}

// DiskInfo describes one virtual disk.
type DiskInfo struct {
	Label         string `json:"label"`
	CapacityBytes int64  `json:"capacity_bytes"`
	// Path is the backing location on the platform ("[datastore1] web01/web01.vmdk").
	Path string `json:"path,omitempty"`
	// Provisioning is "thin", "thick" or "eagerZeroedThick" where known.
	Provisioning string `json:"provisioning,omitempty"`
	// Controller names the controller and its bus ("scsi0").
	Controller string `json:"controller,omitempty"`
	// ControllerModel is the controller's model where known: "lsilogic",
	// "lsilogicsas", "pvscsi", "buslogic", "sata", "ide" or "nvme".
	ControllerModel string `json:"controller_model,omitempty"`
}

// NICInfo describes one network adapter.
type NICInfo struct {
	Label   string `json:"label"`
	Network string `json:"network,omitempty"`
	MAC     string `json:"mac,omitempty"`
	Type    string `json:"type,omitempty"`
}

// VMFilter narrows ListVMs. Zero fields match everything.
type VMFilter struct {
	Datacenter string `json:"datacenter,omitempty"`
	// FolderPrefix matches VMs whose inventory path starts with it.
	FolderPrefix string `json:"folder,omitempty"`
	// Name is a glob (path.Match syntax) applied to the VM name.
	Name       string     `json:"name,omitempty"`
	PowerState PowerState `json:"power_state,omitempty"`
	// GuestOS matches a case-insensitive substring of the guest OS.
	GuestOS string `json:"guest_os,omitempty"`
}

// Matches reports whether vm passes every criterion of f set. A VM with no
// inventory path (a platform without folders) matches no FolderPrefix; a
// malformed Name pattern matches nothing (providers refuse it up front).
func (f VMFilter) Matches(vm *VMInfo) bool {
	if f.Datacenter != "" && vm.Datacenter != f.Datacenter {
		return false
	}
	if f.FolderPrefix != "" && !strings.HasPrefix(vm.Path, strings.TrimSuffix(f.FolderPrefix, "/")+"/") {
		return false
	}
	if f.Name != "" {
		if ok, _ := path.Match(f.Name, vm.Name); !ok {
			return false
		}
	}
	if f.PowerState != "" && vm.PowerState != f.PowerState {
		return false
	}
	if f.GuestOS != "" && !strings.Contains(strings.ToLower(vm.GuestOS), strings.ToLower(f.GuestOS)) {
		return false
	}
	return true
}

// Format is the packaging of an export.
type Format string

// Export packagings.
const (
	FormatOVF Format = "ovf" // a directory with .ovf, .mf and disk files
	FormatOVA Format = "ova" // one tar archive (DSP0243)
	// FormatDisks is the disk files, a SHA-256 manifest and a JSON
	// description of the VM, without an OVF descriptor.
	FormatDisks Format = "disks"
)

// Formats are the packagings the pipeline writes for every provider.
func Formats() []Format { return []Format{FormatOVF, FormatOVA, FormatDisks} }

// DiskFormats are the disk formats the pipeline writes for every provider.
func DiskFormats() []string {
	return []string{string(DiskVMDK), string(DiskRaw), string(DiskQCOW2), string(DiskVHD), string(DiskVHDX)}
}

// DiskFormat is the format of the exported disk files.
type DiskFormat string

// Disk formats.
const (
	DiskVMDK  DiskFormat = "vmdk"  // streamOptimized VMDK
	DiskRaw   DiskFormat = "raw"   // sparse raw image, capacity bytes long
	DiskQCOW2 DiskFormat = "qcow2" // qcow2 v3
	DiskVHD   DiskFormat = "vhd"   // VHD, dynamic or fixed (VHDType)
	DiskVHDX  DiskFormat = "vhdx"  // dynamic VHDX
)

// VHD variants (ExportOptions.VHDType).
const (
	VHDDynamic = "dynamic"
	VHDFixed   = "fixed" // its size rounded up to a whole MiB, as Azure requires
)

// ExportOptions controls ExportVM. The job engine fills it from the job
// request merged over the `export:` configuration defaults.
type ExportOptions struct {
	// OutputDir receives the export; it is created if needed.
	OutputDir string `json:"output_dir"`
	// OutputRoot, when set, is OutputDir already opened (the job engine
	// opens it beneath its export root without following links): every
	// file of the export is then created through it (internal/safepath),
	// never by path. When nil the provider opens OutputDir itself,
	// trusting the path as given (hyperctl export --local).
	OutputRoot *os.Root `json:"-"`
	// OutputURL names the object-storage output (s3://bucket/prefix/…)
	// of a job; the job engine opens it as Output.
	OutputURL string `json:"output_url,omitempty"`
	// Output, when set, receives the export's files (object storage);
	// OutputDir then keeps only the resume state of its uploads and the
	// sources the pipeline stages.
	Output Sink   `json:"-"`
	Format Format `json:"format"`
	// DiskFormat is the format of the disk files; "" means vmdk.
	DiskFormat DiskFormat `json:"disk_format,omitempty"`
	// VHDType is "dynamic" (default) or "fixed", for VHD disks only.
	VHDType string `json:"vhd_type,omitempty"`
	// Compress packs an OVA through gzip (or Compression) as .ova.gz.
	Compress         bool   `json:"compress,omitempty"`
	Compression      string `json:"compression,omitempty"` // "gzip" (default) or "zstd"
	CompressionLevel int    `json:"compression_level,omitempty"`
	// CleanupOVF removes intermediate OVF files once they are in the OVA.
	CleanupOVF bool `json:"cleanup_ovf,omitempty"`
	// ParallelDownloads is how many disks of one VM download at once.
	ParallelDownloads int `json:"parallel_downloads,omitempty"`
	// Snapshot exports a powered-on VM from a temporary snapshot.
	Snapshot bool `json:"snapshot,omitempty"`
	// PowerOff shuts a powered-on VM down (guest shutdown, then hard
	// power-off after PowerOffTimeout) before exporting.
	PowerOff        bool          `json:"power_off,omitempty"`
	PowerOffTimeout time.Duration `json:"power_off_timeout,omitempty"`
	// BandwidthLimit caps the export's download rate in bytes per second;
	// 0 means unlimited.
	BandwidthLimit int64 `json:"bandwidth_limit,omitempty"`
	// Method picks how the provider gets the VM out when it offers several
	// ways (see MethodLister: AWS "ebs-direct" or "export-task"); "" is the
	// provider's default. A provider with one way accepts only "".
	Method string `json:"method,omitempty"`

	// JobID names the job the export runs for (the job engine's id;
	// hyperctl export --local makes one up). Providers tag what they
	// create on the platform with it, so that what a job left behind can
	// be found and removed once the job is over (AWS snapshots).
	JobID string `json:"-"`
	// FinalAttempt says that no attempt follows this one if it fails (the
	// job's last). A failure then removes everything the export wrote,
	// resume state (block downloads' part files and journals) included,
	// unless it was cancelled for another reason than ErrAbandoned (a
	// daemon shutting down hands the job back to resume later).
	FinalAttempt bool `json:"-"`

	// Progress, when set, is called as the export advances. It must be
	// cheap and must not block; it may be called from several goroutines.
	Progress progress.Func `json:"-"`
	// Logger receives the export's log lines; nil means slog.Default().
	Logger *slog.Logger `json:"-"`
}

// Log returns the logger to use for the export.
func (o *ExportOptions) Log() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// Report sends p to the progress callback, if any.
func (o *ExportOptions) Report(p progress.Report) { o.Progress.Send(p) }

// ExportedFile is one file of a finished export.
type ExportedFile struct {
	// Path is relative to ExportResult.OutputDir.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Kind is "ovf", "manifest", "disk", "nvram", "ova", "metadata" or
	// "other".
	Kind string `json:"kind"`
}

// ExportResult records what an export produced.
type ExportResult struct {
	VM *VMInfo `json:"vm,omitempty"`
	// OutputDir is the directory the files are in, or the object-storage
	// location (s3://bucket/prefix/) of an export to ExportOptions.Output.
	OutputDir string `json:"output_dir"`
	Format    Format `json:"format"`
	// DiskFormat is the format of the disk files.
	DiskFormat DiskFormat     `json:"disk_format,omitempty"`
	Files      []ExportedFile `json:"files"`
	// OVAPath is set for OVA exports (relative to OutputDir).
	OVAPath string `json:"ova_path,omitempty"`
	// Members are the files inside the OVA, in archive order, with the
	// digests the archive's manifest holds.
	Members []ExportedFile `json:"members,omitempty"`
	// Packaging describes how the OVA was written.
	Packaging *Packaging `json:"packaging,omitempty"`
	// Manifest is the manifest's name: a file in OutputDir for OVF exports,
	// a member of the archive for OVA exports.
	Manifest   string        `json:"manifest,omitempty"`
	Bytes      int64         `json:"bytes"`
	Duration   time.Duration `json:"duration_ns"`
	Throughput float64       `json:"throughput_bytes_per_second"`
	// ResumedBytes are the source bytes this attempt did not fetch again
	// because an earlier attempt had already stored them (block journals).
	ResumedBytes int64 `json:"resumed_bytes,omitempty"`
}

// Packaging records how an OVA was written.
type Packaging struct {
	Compression string `json:"compression"` // none, gzip or zstd
	Level       int    `json:"level,omitempty"`
	// Ratio is the uncompressed archive size over the written size.
	Ratio      float64       `json:"ratio"`
	Throughput float64       `json:"throughput_bytes_per_second"`
	Duration   time.Duration `json:"duration_ns"`
}

// ExportCapabilities describes what a provider can export.
type ExportCapabilities struct {
	Formats           []Format `json:"formats"`
	DiskFormats       []string `json:"disk_formats"`
	Compression       []string `json:"compression,omitempty"`
	SupportsSnapshot  bool     `json:"supports_snapshot"`
	SupportsPowerOff  bool     `json:"supports_power_off"`
	ParallelDownloads bool     `json:"parallel_downloads"`
	Resumable         bool     `json:"resumable"`
}

// Validate checks opts against the capabilities and returns an error
// wrapping ErrInvalidArgument naming the first unsupported option.
func (c ExportCapabilities) Validate(opts ExportOptions) error {
	if opts.Format != "" && !slices.Contains(c.Formats, opts.Format) {
		return fmt.Errorf("%w: format %q is not supported (supported: %v)", ErrInvalidArgument, opts.Format, c.Formats)
	}
	if opts.DiskFormat != "" && !slices.Contains(c.DiskFormats, string(opts.DiskFormat)) {
		return fmt.Errorf("%w: disk_format %q is not supported (supported: %v)", ErrInvalidArgument, opts.DiskFormat, c.DiskFormats)
	}
	if opts.Snapshot && !c.SupportsSnapshot {
		return fmt.Errorf("%w: snapshot export is not supported by this provider", ErrInvalidArgument)
	}
	if opts.PowerOff && !c.SupportsPowerOff {
		return fmt.Errorf("%w: power_off is not supported by this provider", ErrInvalidArgument)
	}
	if opts.Compress && opts.Compression != "" && !slices.Contains(c.Compression, opts.Compression) {
		return fmt.Errorf("%w: compression %q is not supported (supported: %v)", ErrInvalidArgument, opts.Compression, c.Compression)
	}
	return nil
}

// PoolStats are the counters of a provider's session pool, exported as
// hypersdk_<type>_pool_* metrics by the daemon.
type PoolStats struct {
	Created    int64 `json:"created"`
	Reused     int64 `json:"reused"`
	Evicted    int64 `json:"evicted"`
	Waits      int64 `json:"waits"`
	Reconnects int64 `json:"reconnects"`
	InUse      int64 `json:"in_use"`
	Idle       int64 `json:"idle"`
	Max        int64 `json:"max"`
}

// Pooled is implemented by providers that pool platform sessions.
type Pooled interface {
	PoolStats() PoolStats
}
