// Package azure is the Azure provider: discovery of a subscription's VMs
// and their managed disks, and the platform side of an export through
// SAS grants on page blobs — platform talk only, on the Azure SDK for Go
// (armcompute v8, azblob, azidentity).
//
// Configuration (Config, Decode) takes a subscription, a tenant and a
// credential through azidentity: a client secret or certificate of a
// service principal, a managed identity (system- or user-assigned), the
// Azure CLI's sign-in, or the SDK's default chain. Secrets are
// config.Secret values: never printed, logged or marshalled. An optional
// resource-group list limits discovery, exports and the orphan sweep. The
// national cloud (public, usgovernment, china) picks the ARM, sign-in and
// blob endpoints; endpoints.arm, arm_audience, login and blob override
// them (Azure Stack Hub, private clouds, tests), each checked by the
// project's SSRF guard, and ca_file adds trusted CAs. ARM calls and sign-in
// go through the project's HTTP client (transfer.NewHTTPClient), with the
// SDK's retries of 429 and 5xx answers.
//
// Discovery: ListVMs pages through the subscription's VMs (or each
// configured group's), fetches their instance views concurrently for the
// power state (running on; stopped and deallocated off; transitions
// unknown), the OS the guest agent reports and the Hyper-V generation
// (V2, Trusted Launch and confidential VMs boot UEFI), their managed disks
// (one listing when many VMs are described, a Get each otherwise: size,
// SKU) and vCPUs and memory from the region's VM sizes list (cached per
// region). A VM's Path is /<resource group>/<name>, its Datacenter the
// region, its ID the resource id, its UUID the VM id; GetVM takes any of
// them, or a bare name carried by one VM (ErrAmbiguous otherwise). Disks
// are the OS disk ("os") then the data disks by LUN ("lun0", …), their
// managed disk id as DiskInfo.Path; Labels hold the tags plus the size,
// region, group, zone, OS type, image, security type and each disk's SKU
// under "azure:" keys. Unmanaged (storage account VHD) disks are not
// listed.
//
// Export (PrepareExport), for every managed disk at once:
//
//   - When the disk is attached to a VM that is not deallocated (Azure
//     refuses a grant on it with 409), or when ExportOptions.Snapshot asks,
//     it is snapshotted: SnapshotsClient.BeginCreateOrUpdate of a copy in
//     the disk's region, incremental when the SKU allows nothing else
//     (Premium SSD v2, Ultra Disk; their background copy is waited for),
//     named hypersdk-<job>-<hash of the disk id> in the VM's resource group
//     and tagged hypersdk-job=<job id> and hypersdk-vm=<VM id> in the create
//     call itself. Otherwise (unattached, or its VM deallocated) the disk is
//     read itself, after it is tagged hypersdk-job=<job id> — the grant a
//     disk carries has no tag of its own, so the disk's tag is how a grant
//     an export left is found again. Each disk's snapshot is crash-
//     consistent on its own; Azure has no multi-disk snapshot outside
//     restore points, so stop the VM for a consistent multi-disk copy.
//   - BeginGrantAccess (read, VHD, one hour) returns a SAS URL, refused
//     unless it points where endpoints.blob (or the cloud's blob hosts)
//     allows. The snapshot or tag is recorded before it is asked for and
//     the grant before it is requested, so Cleanup — and, after a kill -9,
//     the next attempt or the orphan sweep — undoes them whatever answered.
//   - The page blob behind the SAS is read with the azblob SDK through the
//     project's HTTP client: its properties, then its last 512 bytes, the
//     fixed VHD footer, decoded and checked by disk/vhd (its Current Size is
//     the disk's capacity; a damaged footer fails the export, permanently,
//     saying so).
//
// Each disk becomes a providers.BlockSource on a grid of 4 MiB cells (the
// largest range Azure returns an MD5 for): List reads Get Page Ranges
// once (resuming a listing that broke off, renewing an expired grant, a
// few times) and cuts the ranges at cell boundaries, ranges sharing a cell
// merged into one block; when Get Page Ranges keeps failing it falls back,
// as AzCopy does, to every cell not yet listed. Fetch is one ranged GET
// with x-ms-range-get-content-md5, whose MD5 the pipeline verifies before
// writing; throttling (503 ServerBusy, 500, 429) is providers.ErrThrottled,
// a refused SAS (403, or 404 once a grant was withdrawn) providers.ErrExpired,
// after which Refresh revokes and grants again and the workers go on with
// the blocks not yet fetched; other refusals are permanent. The source's ID
// is the snapshot's resource id and unique id (the disk's, and the time its
// ownership last changed, for a direct grant), so that an attempt after a
// kill -9 — which finds the job's snapshot by its name, or the disk's grant
// by its tag, revokes the grant the dead attempt left and grants anew —
// resumes from the pipeline's journal. Every output format and disk format
// the pipeline writes is offered; the descriptor is built from the VM's
// metadata.
//
// Cleanup revokes every grant, then deletes the snapshots (Azure refuses to
// delete one under a grant) and removes the tag from directly read disks,
// on a context of its own. SweepOrphans (the daemon's
// providers.OrphanSweeper, at start and every few minutes) does the same
// for snapshots and disks tagged by jobs that are over.
//
// Power-off is refused (SupportsPowerOff false): deallocating a VM gives up
// its dynamic public address and ephemeral disks and stops its service,
// which an export must not do behind its owner's back. Deallocate it first
// for a consistent copy read without snapshots; note that a disk under a
// direct grant keeps its VM from starting until the export ends.
//
// SAS URLs live only in the blob client: they are never logged and never
// put in an error (transport errors quoting a URL are redacted).
//
// StartDemo serves a demo subscription from azurefake (ARM and sign-in,
// this package's test target on armcompute's own fake servers) over
// azblobfake (an in-process Blob service): no Node.js at run time.
package azure
