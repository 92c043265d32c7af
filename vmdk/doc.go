// Package vmdk reads and writes VMware virtual disks (VMDK) in the disk
// model of package disk, following VMware's "Virtual Disk Format 5.0"
// technical note, and generates deterministic disk content for tests,
// benchmarks and the demo.
//
// Detect tells a VMDK by its first bytes: the sparse extent magic "KDMV",
// or a text descriptor ("# Disk DescriptorFile", possibly after blank and
// comment lines).
//
// Open reads, as a disk.Image that is also a disk.Checker:
//
//   - hosted sparse extents: monolithicSparse as VMware Workstation and
//     qemu write it (redundant and primary grain directories and tables,
//     uncompressed grains; from version 2 a grain table entry of 1 is a
//     zeroed grain, read as zeros), and streamOptimized (deflated grains
//     behind markers, the grain directory found through the footer when the
//     header says it is at the end);
//   - descriptor files whose extents — FLAT and VMFS (monolithicFlat, vmfs,
//     twoGbMaxExtentFlat), SPARSE (twoGbMaxExtentSparse) and ZERO — are
//     concatenated, each extent file opened through disk.File.Open beside
//     the descriptor.
//
// Info reports the createType as Subformat, the grain as ClusterSize.
// Extents are the allocated grains (zeroed and unallocated grains are
// holes) and, for flat extents, the data the file system holds. ReadAt is
// safe for concurrent use and keeps a bounded cache of grain tables.
//
// Open refuses, with a *disk.FormatError naming the file, the structure and
// its offset: snapshots (delta disks naming a parent through
// parentFileNameHint or a parentCID — consolidate or merge first), ESXi
// delta and device extents (VMFSSPARSE, SESPARSE, raw device mappings,
// fullDevice), descriptors naming another descriptor, unknown versions,
// grain sizes that are not a power of two from 8 sectors to 2 MiB, grain
// tables of other than 512 entries, capacities beyond disk.MaxVirtualSize,
// and directories, tables or grains that lie past the end of the file or
// on the header, descriptor or directories. Reads refuse compressed grains
// that name another grain or do not inflate to one grain. Check reads every
// table and grain and also refuses entries sharing bytes of the file and
// redundant tables that differ from the primary ones.
//
// Write writes a disk.Source as a monolithic streamOptimized VMDK — the
// format vSphere NFC serves — in one pass that only appends: header
// (grain directory "at the end"), embedded descriptor, every grain holding
// data deflated behind its marker, each grain table after its grains, the
// grain directory, the footer and the end-of-stream marker. The Target's
// WriteAt, Seek and Truncate are never called, so the output may be a pipe
// or hashed as it streams. Holes of the source are never read and grain
// tables covering none of its data are left out; all-zero grains are not
// stored. Grains are deflated on all CPUs and written in order, so the
// output depends only on the data and the options, and memory stays flat
// whatever the disk size. WriteStreamOptimized is the same writer for a
// plain io.Reader of a given capacity.
//
// StreamReader decodes a streamOptimized VMDK as it arrives, front to back
// with no seeking and one grain of memory. It is a disk.Source whose
// extents are the stored grains as their markers arrive (one per grain),
// so a download converts to any format without zero-checking its holes;
// Raw reads it as the whole disk's bytes instead.
//
// GenerateRaw returns reproducible pseudo-random disk content of any size —
// a mix of empty megabytes, log-like text, structured records and
// incompressible noise — that is cheap to regenerate, so a test can compare
// SHA-256 digests instead of keeping the bytes around.
//
// qemu-img is the oracle of the tests: it reads what Write writes
// (info, check, compare), and what it writes in every subformat reads back
// here as its source. Fixtures laid out as VMware Workstation and ESXi
// write their disks are built in the tests from the specification.
package vmdk
