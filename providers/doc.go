// Package providers defines what every virtualization platform adapter
// implements (Provider), the shared data types that cross that boundary
// (VMInfo, VMFilter, ExportOptions, ExportResult), the error
// classification the job engine relies on (permanent versus transient), and
// the Registry that turns configured provider instances into live Providers.
//
// # The export contract
//
// A provider is platform talk only. Its half of an export is
// PrepareExport: find the VM, make it exportable (temporary snapshot,
// power-off, export lease, grant, task) and hand over an Export:
//
//   - VM: the metadata a descriptor is built from (name, CPUs, memory,
//     firmware, guest OS, NICs, disks with capacity and controller model);
//   - Disks: one DiskSource per disk, in VM.Disks order, with its source
//     format (SourceVMDKStream, SourceRaw, SourceImage), capacity, stream size (-1 when
//     unknown), allocated ranges when known, and either an HTTPSource (URL,
//     header, an http.Client carrying the host's certificate pin) that the
//     pipeline fetches through transfer/, an Open func returning a
//     reader, a BlockSource (independently fetched blocks), or Filled:
//     written with the other Filled disks by Export.Fill from one stream
//     (Proxmox's vzdump archive), into sparse raw files the pipeline
//     gives it;
//   - Files: other files carried as they are (vSphere NVRAM);
//   - Progress: an optional hook told the bytes fetched (a vSphere lease
//     must hear progress or it times out);
//   - Finish(ctx, err): ends the platform side once — nil err when every
//     file was written (vSphere: lease Complete), the failure otherwise
//     (lease Abort);
//   - Cleanup(): always runs after Finish, independent of the export's
//     context (removes the temporary snapshot; a snapshot whose creation
//     was interrupted is looked up by the name recorded before creating it).
//
// # Export methods
//
// A provider that can get a VM out in more than one way (AWS: the EBS
// direct APIs or a VM Export task to S3; Proxmox: vzdump, pvesm export or
// the API; GCP: an image export or a disk read) implements MethodLister:
// ExportMethods names them, the default first, and ExportOptions.Method
// picks one ("" is the default). A provider without it has one unnamed
// method and accepts only "". MethodProblem is the one check: the job
// engine reports it at the request's "method" field (422), hyperctl at
// --method, and pipeline.Export refuses before the platform is asked.
//
// The pipeline package does everything else — fetch, decode, encode,
// descriptor, manifest, OVF folder / OVA / plain disks — once for every
// provider. A provider never writes a descriptor, manifest or archive.
//
// Provider packages (providers/vsphere, providers/aws, …) depend on this
// package; this package and the provider packages never depend on the
// daemon or on the pipeline.
package providers
