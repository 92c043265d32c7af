package vcsim

import (
	"io"
	"time"

	"github.com/vmware/govmomi/vim25/types"
)

// Options configures Start. The zero value starts one datacenter with one
// two-host cluster, one datastore and no virtual machines.
type Options struct {
	// Dir holds the datastore directories (Dir/<datacenter>/<datastore>).
	// Empty means a new temporary directory, removed by Close. Start creates
	// three or four files per VM, so a large inventory starts much faster on
	// tmpfs (for example a directory under /dev/shm).
	Dir string

	// ListenAddr is the TCP address to serve on; empty means 127.0.0.1:0.
	ListenAddr string

	// Username and Password are the only credentials the simulator accepts.
	// Empty Username means "administrator@vsphere.local"; empty Password
	// means a random one (see Env.Password).
	Username string
	Password string

	// Inventory shape; zero values take the defaults shown.
	Datacenters     int // default 1; named DC0, DC1, …
	Clusters        int // clusters per datacenter, default 1; named DC0_C0, …
	HostsPerCluster int // default 2; named DC0_C0_H0, …
	StandaloneHosts int // hosts outside clusters per datacenter, default 0
	Datastores      int // datastores per datacenter, default 1; named LocalDS_0, …

	// GenericVMs adds this many fleet VMs, spread round-robin over every
	// compute resource: fleet-00000, fleet-00001, … in folders
	// fleet/group-00, fleet/group-01, … (100 VMs each), two in three powered
	// on, guest OS and disk size rotating. Each has one thin disk that holds a
	// valid, empty streamOptimized VMDK of 8, 16, 40 or 100 GiB. Use them to
	// size discovery benchmarks (5,000 start in a few seconds on tmpfs).
	GenericVMs int

	// VMs are created after the generic ones, with real disk content.
	VMs []VMSpec

	// LeaseTimeout is the HttpNfcLease inactivity timeout: a lease whose
	// holder does not call HttpNfcLeaseProgress for this long goes to the
	// error state with a Timedout fault, as on vSphere. 0 means 300s.
	LeaseTimeout time.Duration

	// NFC is the initial behaviour of the disk download server; see
	// Env.SetNFCBehavior.
	NFC NFCBehavior
}

// VMSpec describes a virtual machine whose disks hold real bytes.
type VMSpec struct {
	// Name must be unique in the inventory.
	Name string
	// Datacenter is the datacenter name; empty means the first one (DC0).
	Datacenter string
	// Folder is a slash-separated path under the datacenter's VM folder, for
	// example "production/web"; folders are created as needed.
	Folder string
	// Datastore is the datastore name; empty means LocalDS_0.
	Datastore string
	// PowerState is the state after creation; empty means poweredOff.
	PowerState types.VirtualMachinePowerState
	// GuestID is the vSphere guest OS identifier; empty means otherLinux64Guest.
	GuestID string
	// CPUs and MemoryMB default to 1 and 1024.
	CPUs     int32
	MemoryMB int64
	// Firmware is "bios" (the default) or "efi".
	Firmware string
	// Annotation is the VM's notes.
	Annotation string
	// NoNVRAM leaves the VM's .nvram file empty, so export leases offer no
	// NVRAM entry. By default it holds 8 KiB of deterministic bytes.
	NoNVRAM bool
	// Disks are attached in order: the first is "Hard disk 1" on unit 0 of
	// its controller.
	Disks []DiskSpec
}

// DiskSpec describes one virtual disk and where its bytes come from.
type DiskSpec struct {
	// Capacity is the virtual size in bytes, a positive multiple of 1 KiB.
	Capacity int64

	// Content sources, in order of precedence: Reader, File, generated.
	// Reader and File supply raw disk bytes; with StreamOptimized a source
	// shorter than Capacity reads as zeros past its end and a longer one is
	// an error (vmdk.ErrSourceTooLarge). With Verbatim they supply the exact
	// bytes to serve. Reader is read once, during Start.
	Reader io.Reader
	File   string
	// Seed and Used select generated content: vmdk.GenerateRaw(Seed, Used),
	// zeros after it up to Capacity (also with Verbatim, which then stores a
	// sparse raw file of Capacity bytes). Used 0 means Capacity.
	Seed uint64
	Used int64

	// Format is how the bytes are stored in the datastore and therefore
	// served by NFC.
	Format DiskFormat

	// Controller is "pvscsi" (the default), "lsilogic", "lsilogic-sas",
	// "buslogic", "sata", "nvme" or "ide". Disks with the same controller
	// type share one controller.
	Controller string

	// Thick makes the disk thick-provisioned (thin by default).
	Thick bool
}

// DiskFormat says how a disk's bytes are stored and served.
type DiskFormat int

const (
	// StreamOptimized converts the raw content with vmdk.WriteStreamOptimized,
	// which is what vSphere NFC serves for every disk.
	StreamOptimized DiskFormat = iota
	// Verbatim stores and serves the source bytes unchanged: raw/flat content
	// when benchmarking transfers without compression cost, or a VMDK made
	// elsewhere. DiskInfo.RawSHA256 is then the digest of those bytes.
	Verbatim
)

// NFCBehavior controls how the disk download server answers. The zero value
// behaves like vSphere NFC: 200 with a chunked body (no Content-Length),
// Range headers ignored.
type NFCBehavior struct {
	// Ranges honours single-range Range requests (206 with Content-Range and
	// Content-Length, 416 when unsatisfiable) and sends Content-Length on
	// full responses, so resumable clients can continue a broken download.
	Ranges bool

	// DropAfter, when positive, cuts the connection after that many body
	// bytes of a response (the client sees an unexpected EOF) …
	DropAfter int64
	// … on each file's first DropFirst GET requests counted from the last
	// SetNFCBehavior (1 when zero). Later requests are served whole.
	DropFirst int

	// HoldAfter, when positive, pauses every response after that many body
	// bytes until ReleaseNFC is called, the lease ends (the connection is
	// then cut) or the client goes away. Tests use it to act on a transfer
	// that is known to be in flight; see Env.WaitNFCHeld.
	HoldAfter int64
}
