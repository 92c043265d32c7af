// Package pipeline is HyperSDK's one export path. Every provider, the
// daemon's job worker and `hyperctl export --local` export through Export:
//
//  1. the provider prepares the export on its platform
//     (providers.Exporter.PrepareExport) and hands over disk sources, other
//     files and the VM's metadata;
//  2. every disk and file is fetched concurrently: HTTP sources through
//     transfer/ (resumable, hashed while streaming, created beneath the
//     output root without following links; an object-storage source
//     (HTTPSource.Ranged) in parallel ranged GETs of 8 MiB, resumed by the
//     next attempt from its kept part file, checked against the digests
//     the platform holds of it, a byte range of the object when it is a
//     member of an uncompressed archive; a raw disk passed through is
//     written sparse) — or, into object storage, read as a stream
//     straight into the upload (ranged sources by transfer.Reader,
//     others such as NFC in one GET; digests checked before the object
//     is committed; an image source is still staged), so a resumed
//     attempt reads such a source from its start again and only the
//     upload resumes — reader sources streamed,
//     block sources (providers.BlockSource: EBS snapshot blocks, Azure
//     page ranges) by the block engine — the listed blocks fetched by
//     many workers under an adaptive (AIMD) concurrency limit, each
//     verified against the platform's checksum before it is written at
//     its offset into a sparse raw part file (all-zero blocks and
//     unlisted ranges stay holes), finished blocks recorded in a journal
//     beside it once durable, the raw file then hashed by reading its
//     data back (a raw export) or encoded like any raw source; into
//     object storage nothing is kept in the output root (blockstream.go):
//     the listing is read whole and sorted by offset, the blocks fetched
//     by the same workers into an in-memory reorder window of at most
//     128 MiB, and the disk's bytes, zeros between blocks, read in order
//     into the encoder, so a resumed attempt fetches every block again
//     and only the upload resumes. The block buffers (one per busy
//     worker, or per window slot) are mapped outside the Go heap on
//     Linux and macOS, so the collector's pacing does not count them
//     twice, and unmapped when the download ends. Filled disks
//     (providers.Export.Fill: several disks out of one stream, a Proxmox
//     vzdump archive) are each given a sparse raw part file, capacity
//     long, that Fill writes at its offsets in one call; each file is
//     then renamed into place (raw, hashed by reading its data back) or
//     encoded in the requested format and removed;
//  3. each disk is decoded from its source format and encoded in the
//     requested disk format: a streamOptimized VMDK kept as VMDK passes
//     through untouched (no re-encode); a VMDK becomes a sparse raw image
//     by vmdk.StreamReader (holes seeked over, final size = capacity); a
//     raw source becomes a streamOptimized VMDK by vmdk.WriteStreamOptimized;
//     an image source (providers.SourceImage: a VHD, VHDX, qcow2… that only
//     random access reads) is staged beside the output as "<disk>.src",
//     recognised by disk/formats from its bytes, checked against the
//     disk's capacity and decoded from there, the staged file then removed.
//     Output bytes are hashed as they are written, except where a writer
//     patches its front once the data is written (qcow2, dynamic VHD,
//     VHDX): a file is read back then, an object from the store;
//  4. the layout is written: FormatOVF — descriptor built from the metadata
//     by ovf.Build, SHA-256 manifest (ovf.Manifest), disks; FormatOVA — the
//     same, packed by ova.PackIn, keeping no second copy unless asked
//     (to object storage: every item streams into its member
//     of the archive object through ova.StreamWriter, in descriptor order,
//     the descriptor filled last — see archive.go);
//     FormatDisks — the disk files, a SHA-256 manifest `sha256sum -c`
//     accepts and a JSON description of the VM, no descriptor;
//  5. the provider's Finish is told the outcome (vSphere: lease complete or
//     abort) and its Cleanup always runs (temporary snapshot removal).
//
// A failed or cancelled export removes every file it created (a Filled
// disk's part file too: a stream is not resumed), except the part files
// and journals of block sources exported into a directory when the
// failure may heal: the
// next export into the same directory (the job engine's retry, a daemon
// restarted after kill -9) resumes them, fetching only the blocks that
// were not yet durable; a journal of another source (ID, capacity, block
// size) is ignored. A permanent failure removes them too. Progress is
// reported through providers.ExportOptions.Progress with honest totals: the
// bytes a phase will write, 0 while unknown (NFC streams have no length).
package pipeline
