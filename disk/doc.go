// Package disk is the one model of a virtual disk that every format reader
// and writer speaks: a virtual size plus the runs of it that hold data
// (extents). Whatever lies outside every extent — a hole, an unallocated
// cluster, a zero cluster — reads as zeros and is never written as data.
//
// The contract, stated once for every format package (disk/qcow2, disk/vhd,
// disk/vhdx, vmdk, and the raw format here):
//
//   - A reader opens a File (a name for messages, an io.ReaderAt and its
//     size) and returns an Image: random access to the virtual disk's bytes
//     (io.ReaderAt), its Info, and its Extents in ascending order, merged
//     where adjacent. Readers trust nothing: every offset, count and size
//     read from the file is checked against the file's size and the
//     format's limits before it is used, so a hostile file is refused with
//     a *FormatError (file, structure, offset) and never makes a reader
//     panic, loop or allocate more than the header's checked sizes justify.
//     Images that need another file (a VMDK flat extent, a VHDX parent) open
//     it through File.Open, which stays beneath the image's directory.
//   - A writer consumes a Source (the virtual size and the data, extent by
//     extent, front to back) and writes one image to a Target in a single
//     pass over the data: sequential appends, then small writes back at the
//     front (headers, tables) once the layout is known. Writers keep only
//     tables in memory, never data beyond a bounded window, whatever the
//     disk size. All-zero clusters inside extents are not written as data.
//
// FromImage turns any Image into a Source, so converting is
// Write(FromImage(Open(file))). disk/formats names the formats, detects
// them by their magic and converts between them.
package disk
