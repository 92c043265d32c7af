// Package qcow2 reads and writes QEMU's qcow2 images natively, in the
// sparse disk model of package disk (docs/interop/qcow2.txt in QEMU is the
// specification followed).
//
// # Reading
//
// Open reads versions 2 and 3 with cluster sizes from 512 bytes to 2 MiB
// and any refcount width: standard clusters, zero clusters (the L2 zero
// flag, with or without a host cluster), unallocated clusters (zeros: there
// is no backing file) and compressed clusters (raw deflate, or zstd frames
// when the image says so), each inflated to exactly one cluster from the
// sectors its descriptor names. Extents walks the active L1 and L2 tables
// and yields the clusters that hold data, in ascending order and merged
// where adjacent; unallocated and zero clusters are not extents. ReadAt is
// safe for concurrent use: it keeps the L1 table, the places of the
// metadata clusters, and a cache of at most 4 MiB of L2 tables — never a
// map of the whole disk.
//
// Nothing read from the file is trusted. Open checks the header (magic,
// version, cluster_bits 9..21, header length, refcount order, the virtual
// size against disk.MaxVirtualSize, an L1 table large enough for the
// virtual size and within QEMU's 32 MiB limit, the L1 and refcount tables
// aligned and inside the file) and every L1 entry within the virtual size
// (aligned, inside the file); the header, L1 table, refcount table and
// blocks and L2 tables must not overlap. Every L2 entry is checked before
// use: a data cluster aligned and inside the file, no data or compressed
// cluster inside metadata. Images this package cannot turn into the disk's
// bytes on their own are refused, each with a *disk.FormatError naming
// file, structure and offset: a backing file (the message names it and
// says to flatten the image with qemu-img convert or supply a standalone
// image), encryption, an external data file, extended L2 entries
// (subclusters), unknown incompatible features. Info reports Compressed
// once a compressed cluster has been seen (Open looks at the first L2
// table).
//
// Check does what `qemu-img check` does without repairing: it counts the
// references from the header, the active and snapshot L1 tables and their
// L2 tables, the refcount table and blocks, the snapshot table and the
// persistent bitmaps, and reports clusters outside the file, clusters
// serving two structures, reserved bits, every refcount that differs from
// the references found (leaks included) and COPIED flags that disagree
// with the counts, all joined, each a *disk.FormatError. It keeps three bytes per host cluster.
//
// # Writing
//
// Write produces a version 3 image (compat 1.1, 16-bit refcounts, zlib
// compression type, no compressed clusters), with 64 KiB clusters unless
// WriteOptions.ClusterSize picks a power of two from 512 bytes to 2 MiB, in
// one pass over the source:
//
//	cluster 0   header, written last through WriteAt
//	then        the non-zero data clusters in virtual order, each L2 table
//	            appended as soon as the data has passed its range (an L2
//	            table whose range holds no data is never written)
//	then        refcount table, refcount blocks (every cluster counted
//	            once), L1 table
//
// Holes in the source are never read, and all-zero clusters inside extents
// are not written. A source that is not whole sectors long is rounded up to
// one, as qemu-img does. Writes are appended in batches of up to 4 MiB, one being
// written while the next is read. Memory is the L1 table (1 MiB for 64 TiB
// with 64 KiB clusters; disks needing more than QEMU's 32 MiB L1 limit are
// refused), one L2 table and two batches, whatever the disk size.
package qcow2
