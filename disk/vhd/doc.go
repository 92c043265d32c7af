// Package vhd reads and writes VHD images (Microsoft Virtual Hard Disk
// Image Format Specification, version 1.0) — the format of Virtual PC,
// older Hyper-V and every Azure disk — in the sparse disk model of package
// disk. qemu-img calls the format "vpc".
//
// # Layout
//
// A fixed disk is the raw disk followed by a 512-byte footer ("conectix").
// It has no header, so it is recognised by its tail: Detect must be given
// the file's first bytes (at least 8) and its last 512 bytes. The footer
// may also sit in the last 511 bytes, as some old tools wrote it.
//
// A dynamic disk starts with a copy of the footer, then a 1024-byte header
// ("cxsparse") at the footer's Data Offset, the block allocation table
// (BAT: one big-endian 32-bit sector number per block, 0xFFFFFFFF for a
// block not in the file) and blocks, each a sector bitmap padded to a
// sector followed by the block's data; the footer ends the file. A set
// bitmap bit (most significant bit first) marks a sector present; an absent
// sector, like an absent block, reads as zeros.
//
// # Reading
//
// Open checks the footer's and the header's checksums (one's complement of
// the byte sum with the checksum field zeroed) and bounds everything before
// use: the virtual size (a multiple of 512, at most 2040 GiB for dynamic
// disks, disk.MaxVirtualSize for fixed ones), the block size (a power of
// two, at least 512 bytes), Max Table Entries (enough for the virtual size,
// at most 4 Mi needed entries in memory), the header and the BAT inside the
// file, and every block inside the data area and overlapping neither the
// metadata nor another block. What fails is a *disk.FormatError naming the
// structure and its offset. A dynamic disk whose footer at the end is
// damaged or missing is read through its copy at the front; a copy that
// disagrees with a valid footer is ignored. Check reports both.
//
// Differencing disks (type 4) are refused: the error names the parent
// recorded in the header and says to merge the chain first (Hyper-V
// Merge-VHD, or qemu-img convert from the child).
//
// The virtual size is always the footer's Current Size. qemu instead
// multiplies out the CHS geometry for images whose Creator Application is
// "vpc " or "qemu" (before qemu 10.0: for every creator except "win ",
// "qem2", "d2v ", "CTXS" and "tap\0", so also for Azure's "wa\0\0"), unless
// the geometry is the maximum 65535/16/255, because Virtual PC showed its
// guests only the geometry's sectors. Images qemu writes carry a Current
// Size equal to their geometry's, so the rules agree on them; Virtual PC's
// own geometry is Current Size rounded down, so the Current Size rule shows
// at most a few sectors more than Virtual PC's guest saw, and never loses
// data; Hyper-V, Azure and VirtualBox use Current Size too.
//
// Extents are, for a fixed disk, the data area less the holes the file
// system reports (SEEK_DATA, when f is an *os.File: Azure's fixed disks are
// mostly holes); for a dynamic disk, the runs of present sectors of
// allocated blocks. ReadAt is safe for concurrent use.
//
// # Writing
//
// Write makes a "dynamic" disk by default, or a "fixed" one
// (WriteOptions.Subformat); anything else is refused.
//
// A fixed disk is written as disk.WriteRaw writes a raw image (holes seeked
// over), its size rounded up to a whole MiB (Azure takes no other) with the
// tail a hole, then the footer.
//
// A dynamic disk has 2 MiB blocks (WriteOptions.ClusterSize may set a power
// of two from 512 bytes to 256 MiB; Hyper-V itself writes 512 KiB and
// 2 MiB), its size rounded up to a sector. The footer copy and the header
// are written first, the BAT's place is reserved, blocks are appended in
// order as the source's extents arrive — all-zero blocks left out, and in a
// block all-zero sectors left as file holes with their bitmap bits clear —
// then the BAT is written back and the footer appended. Memory holds one
// block and the BAT.
//
// The footer says Creator Application "win " and Host OS "Wi2k" (Hyper-V's
// values): the creator tells readers how to size the disk, and "win " is
// the value every qemu version and Hyper-V read as "Current Size is the
// size". The geometry is the specification's CHS algorithm, the time stamp
// the time of writing and the Unique Id random, so two writes of one
// source differ in those fields (and the checksums) only.
package vhd
