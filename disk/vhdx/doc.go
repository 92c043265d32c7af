// Package vhdx reads and writes VHDX images ([MS-VHDX], Hyper-V's disk
// format) in the disk model of package disk.
//
// # Reading
//
// Open checks, in order, and refuses with a *disk.FormatError naming the
// structure and its file offset:
//
//   - the file type identifier ("vhdxfile") and the 1 MiB header section;
//   - both headers (signature, CRC-32C over 4 KiB with the checksum
//     zeroed); the valid one with the higher sequence number is current,
//     so one damaged copy is tolerated (Check reports it). Version 1 and
//     log version 0 only;
//   - the log: a non-zero LogGuid means the log holds updates that were
//     not flushed. They are replayed read-only, in memory: the active
//     sequence is found by the search of MS-VHDX 2.3.3 (valid entries —
//     signature, LogGuid, lengths, descriptors, data sector sequence
//     numbers, CRC-32C — with consecutive sequence numbers, the head's tail
//     inside the sequence, the newest such sequence), and its data and
//     zero descriptors are laid over the file as an overlay bounded by the
//     log's length. The file itself is never written. A log with no valid
//     sequence, or a file shorter than the head entry's FlushedFileOffset
//     (truncated), is refused, as is a log whose zero runs and data
//     sectors interleave beyond a fixed replay work bound;
//   - the region tables (the first valid copy of two, CRC-32C over 64 KiB):
//     exactly one BAT and one metadata region, 1 MiB aligned, after the
//     header section, inside the file, not overlapping each other or the
//     log; an unknown region marked required is refused;
//   - the metadata table and items: File Parameters (block size a power of
//     two from 1 to 256 MiB, LeaveBlockAllocated, HasParent), Virtual Disk
//     Size (whole logical sectors, at most disk.MaxVirtualSize), Logical
//     and Physical Sector Size (512 or 4096), the Parent Locator of a
//     differencing disk; an unknown required item is refused;
//   - the BAT: large enough for the virtual size, payload and sector
//     bitmap entries interleaved by the chunk ratio (2^23 × logical sector
//     size / block size); every present block and sector bitmap 1 MiB
//     aligned inside the file, none overlapping another or the header
//     section, log, metadata or BAT; PARTIALLY_PRESENT only in differencing
//     disks and only with its chunk's sector bitmap present.
//
// Info reports Subformat "dynamic", "fixed" (LeaveBlockAllocated) or
// "differencing" (HasParent), ClusterSize the block size, and for a
// differencing disk Parent the relative_path (else absolute_win32_path,
// else volume_path) the locator records.
//
// Reads: FULLY_PRESENT blocks come from the file; ZERO, UNMAPPED and
// UNDEFINED blocks read as zeros (never stale file contents);
// NOT_PRESENT blocks read as zeros, or from the parent in a differencing
// disk; PARTIALLY_PRESENT blocks take each sector from the file or the
// parent as the sector bitmap says. Extents are the present blocks, the
// present sectors of partial blocks and, for a differencing disk, the
// parent's extents merged in.
//
// A differencing disk's parent is opened through File.Open (beside the
// image, by base name), trying relative_path, volume_path and
// absolute_win32_path in the spec's order. Its DataWriteGuid must match
// parent_linkage or parent_linkage2, its logical sector size the child's;
// chains deeper than 16 or naming an image already in the chain are
// refused. A missing parent is refused with the parent's name and how to
// proceed: put it beside the image, or merge the chain where the parent
// is present (Hyper-V Merge-VHD). qemu-img does not read differencing
// VHDX at all.
//
// Check re-reads both header and region table copies, reports missing
// optional-in-practice metadata items and reserved bits, and every BAT
// entry out of range, in a state the disk type forbids, or overlapping
// another (at most 100 problems), then checks the parent.
//
// # Writing
//
// Write makes a dynamic VHDX (the only subformat it writes) in one pass
// over the source, in the layout Hyper-V uses: the header section (file
// type identifier, two headers with sequence numbers 1 and 2 and random
// FileWriteGuid and DataWriteGuid, two identical region tables) in the
// first MiB; an empty 1 MiB log at 1 MiB (LogGuid zero, a hole); the
// 1 MiB metadata region at 2 MiB (items in Hyper-V's order: File
// Parameters, Virtual Disk Size, Virtual Disk ID, Logical Sector Size 512,
// Physical Sector Size 4096); the BAT from 3 MiB, reserved for the
// virtual size and written back at the end; then the payload blocks
// appended in disk order, each 1 MiB aligned. Blocks are 32 MiB unless
// WriteOptions.ClusterSize picks another power of two from 1 to 256 MiB.
// A block holding any non-zero byte is FULLY_PRESENT, its zero parts left
// as file holes; blocks with no data are NOT_PRESENT, and the source's
// holes are never read. Memory is the BAT (8 bytes per block) and a
// 1 MiB buffer. The virtual size must be whole 512-byte sectors.
package vhdx
