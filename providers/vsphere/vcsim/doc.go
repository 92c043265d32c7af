// Package vcsim is HyperSDK's simulated vCenter: the govmomi simulator
// (vcsim, github.com/vmware/govmomi v0.56.0) running in process over TLS,
// extended with what exporting VMs needs and v0.56.0 lacks, and filled with
// VMs whose disks hold real bytes. The vSphere provider's tests and
// benchmarks run against it, and "hypervisord --demo" serves it (DemoSpec),
// so this is a normal package, not test-only code.
//
// # Starting
//
// Start(ctx, Options) builds the inventory (datacenters, clusters, hosts,
// datastores in Options.Dir, a generic fleet of GenericVMs for discovery
// benchmarks, and Options.VMs with real disk content) and serves the vSphere
// API at Env.URL(), https://127.0.0.1:port/sdk, with a fresh self-signed
// certificate (Env.Certificate, Env.CertificatePEM, Env.Thumbprint). The URL
// carries no credentials: Env.Username and Env.Password are separate, and
// the password is random unless Options.Password sets it. Env.Close stops
// everything and removes the files.
//
// Every disk of an Options.VMs entry is stored in its datastore directory as
// a streamOptimized VMDK written by package vmdk from the disk's raw content
// (generated from a seed, or read from a caller's file or reader), so NFC
// downloads serve a real VMDK. Env.VM reports, per disk, the datastore path,
// the local file, the SHA-256 of the served file and the SHA-256 of the raw
// virtual disk.
//
// # What is added to the simulator
//
//   - VirtualMachine.ExportVm: the VM must be powered off (InvalidPowerState
//     otherwise; TaskInProgress while another export holds it). The lease is
//     ready at once; info.deviceUrl has one entry per disk, with key
//     "/<vm>/<ControllerType><bus>:<unit>" as vCenter forms it, targetId
//     "disk-N.vmdk", disk true, the SSL thumbprint and a URL
//     /nfc/<ticket>/disk-N.vmdk, plus "/<vm>/nvram" → "disk-N.nvram" (disk
//     false, fileSize set) when the VM has NVRAM content.
//   - VirtualMachineSnapshot.ExportSnapshot is replaced so that snapshot
//     exports (of powered-on VMs, say) get the same leases.
//   - HttpNfcLease: HttpNfcLeaseProgress (0-100, keeps the lease alive for
//     info.leaseTimeout seconds), HttpNfcLeaseComplete (state done),
//     HttpNfcLeaseAbort (state error with the caller's fault) and
//     HttpNfcLeaseGetManifest (SHA-1 and size per file). Calls on an ended
//     lease fault with InvalidState, or Timedout after a timeout. Lease
//     objects live in the global registry, so any session can drive them,
//     as on vCenter. While a lease is active the VM's tasks fault with
//     TaskInProgress; a snapshot lease blocks removing that snapshot.
//   - OvfManager.CreateDescriptor (for govc export.ovf, the benchmark
//     anchor; HyperSDK itself builds its descriptor with ovf.Build): an
//     OVF 1.x envelope like vCenter's, with References built from
//     cdp.ovfFiles (href, size, compression), a DiskSection in
//     streamOptimized format, NetworkSection and a
//     VirtualSystem with OperatingSystemSection and VirtualHardwareSection
//     (CPU, memory, controllers, disks, CD-ROM, NICs, video, VMCI, firmware,
//     the NVRAM file as vmw:ExtraConfig). cdp.snapshot, cdp.name,
//     cdp.description and the "mac", "uuid" and "extraconfig" export options
//     are honoured. An ovfFiles deviceId that matches no device faults with
//     InvalidArgument.
//   - The NFC server behind the lease URLs answers like vSphere NFC by
//     default (200, chunked, Range ignored) and, per Env.SetNFCBehavior,
//     honours Range (206), cuts connections after N bytes on the first K
//     requests of each file, or pauses responses until released. It cuts
//     downloads in flight when their lease ends.
//
// Tests observe and steer it: Env.Leases records every lease (created,
// completed, aborted, timed out, failed, last progress), Env.Snapshots lists
// a VM's snapshots, Env.NFCRequests logs downloads, Env.AddFault makes calls
// slow or failing (or leases fail), Env.ExpireSessions ends every session so
// the next call is NotAuthenticated, Env.FailLease and Env.TimeoutLease end a
// lease from the server side.
//
// # Simulator quirks this package works around
//
//   - Registry.Handler runs before the target lookup, but the lookup in the
//     caller's session falls back to the global registry and overrides the
//     Handler's result. Per-entity extensions (ExportVm, ExportSnapshot) are
//     therefore shims put into the caller's session for the one call and
//     removed by the method itself (reference-counted for concurrent calls
//     of one session). The shim shadows Self and Entity so that the
//     session registry's bookkeeping writes land on the shim, not on the
//     shared VM. The OvfManager singleton is never type-asserted by the
//     simulator, so it is simply replaced in this Env's registry.
//   - govmomi's Service.FaultInjector updates its counters and random source
//     under a read lock, which races under concurrent calls; AddFault rules
//     are applied in the Handler instead. Rules of the govmomi injector that
//     fault ExportVm or ExportSnapshot would also keep that call's shim in
//     the session (harmless: it forwards everything to the VM).
//   - The simulator's NFC handler (/nfc/) streams a backing file as is and
//     only knows its own leases, kept in a package-level map; this package
//     serves its leases from /nfc/{ticket}/{file} and hands unknown tickets
//     (import leases) to the simulator.
//   - Disks created through CreateVM get a 202-byte text descriptor and an
//     empty -flat file; Start writes the VMDK first and attaches it as an
//     existing disk. Simulator operations that parse disk descriptors
//     (ExtendVirtualDisk, CopyVirtualDisk) do not understand these files.
//   - Start builds the inventory through the simulator's in-process client,
//     which shares one package-level session among all simulators of the
//     process; nothing of an Env stays in it. Tests may run Envs one after
//     another; running several at once in one process is untested upstream.
//   - The model creates three or four files per VM; on slow disks use a
//     tmpfs Options.Dir for large inventories.
//   - Close waits for SOAP calls in flight, including property-collector
//     long polls: cancel clients first.
package vcsim
