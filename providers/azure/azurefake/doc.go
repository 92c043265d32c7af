// Package azurefake is the Azure provider's test target and --demo
// backend on the ARM side: an HTTPS endpoint serving the compute
// operations an export uses through armcompute's own fake servers
// (fake.VirtualMachinesServer, VirtualMachineSizesServer, DisksServer,
// SnapshotsServer dispatched by fake.NewServerFactoryTransport), so that
// the real SDK, its pagers and its pollers run unmodified against it, and
// a Microsoft Entra token endpoint (OpenID discovery, client credentials
// with a client secret or a certificate-signed client assertion) for
// azidentity's real credentials. ARM calls need a bearer token it issued.
//
// It keeps a subscription's inventory: VMs (size, power state, OS, OS and
// data disks), the region's VM sizes, managed disks (SKU, Hyper-V
// generation, sparse Content of whole 512-byte pages) and the snapshots
// and grants clients make. Disk state follows Azure: Attached while the VM
// is running or stopped, Reserved when it is deallocated, Unattached,
// ActiveSAS under a grant.
//
// Grants behave as Azure's: BeginGrantAccess (read, VHD, 1 s to 5 days)
// turns the disk's or snapshot's bytes into a fixed-VHD page blob — the
// written pages, then a 512-byte footer written from the VHD
// specification — uploaded with the azblob SDK and a shared key to the
// configured storage account (Azurite, or an in-process Blob server), and
// answers a read-only service SAS URL for it that expires after the
// requested duration. A grant on a disk attached to a VM that is not
// deallocated is refused with 409, as is a second grant while one is
// active, a grant on an incremental snapshot still copying, and deleting
// a snapshot under an active grant. BeginRevokeAccess deletes the blob, so
// a revoked SAS stops working. Snapshots are point-in-time copies of the
// disk's content; PremiumV2_LRS and UltraSSD_LRS disks take incremental
// ones only.
//
// Tests ask what clients left (Leftovers, Snapshots, Grants), count calls
// (Stats) and inject faults (Faults: failed or lost snapshot creations,
// failed grants, slow incremental copies, short SAS lifetimes).
package azurefake
