// Package pipeline is HyperSDK's one export path. Every provider, the
// daemon's job worker and `hyperctl export --local` export through Export:
//
//  1. the provider prepares the export on its platform
//     (providers.Exporter.PrepareExport) and hands over disk sources, other
//     files and the VM's metadata;
//  2. every disk and file is fetched concurrently: HTTP sources through
//     transfer/ (resumable, hashed while streaming, created beneath the
//     output root without following links), reader sources streamed;
//  3. each disk is decoded from its source format and encoded in the
//     requested disk format: a streamOptimized VMDK kept as VMDK passes
//     through untouched (no re-encode); a VMDK becomes a sparse raw image
//     by vmdk.StreamReader (holes seeked over, final size = capacity); a
//     raw source becomes a streamOptimized VMDK by vmdk.WriteStreamOptimized.
//     Output bytes are hashed as they are written;
//  4. the layout is written: FormatOVF — descriptor built from the metadata
//     by ovf.Build, SHA-256 manifest (ovf.Manifest), disks; FormatOVA — the
//     same, packed by ova.PackIn, keeping no second copy unless asked;
//     FormatDisks — the disk files, a SHA-256 manifest `sha256sum -c`
//     accepts and a JSON description of the VM, no descriptor;
//  5. the provider's Finish is told the outcome (vSphere: lease complete or
//     abort) and its Cleanup always runs (temporary snapshot removal).
//
// A failed or cancelled export removes every file it created. Progress is
// reported through providers.ExportOptions.Progress with honest totals: the
// bytes a phase will write, 0 while unknown (NFC streams have no length).
package pipeline
