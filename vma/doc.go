// Package vma reads Proxmox VE's VMA archives — what `vzdump` writes for a
// QEMU VM (.vma, and .vma.zst/.vma.gz/.vma.lzo compressed) — from a stream,
// front to back, without seeking and without a temporary copy.
//
// # The contract
//
// NewReader reads the header: magic and version, its MD5 (computed with
// the md5sum field zeroed, as vma-writer.c does), the blob buffer (blobs
// with little-endian 2-byte lengths — unlike every other field — walked
// from offset 1), the configuration files ("qemu-server.conf",
// "qemu-server.fw") and the devices (ID, name, size; "vmstate" is a
// snapshot's RAM, not a disk). Next then returns the disks' 64 KiB clusters
// in archive order: each extent header is checked (magic, MD5, the
// archive's uuid, reserved fields, block count equal to the blocks its
// masks store) and each cluster entry (device known, cluster inside the
// device, no stored block past the device's end, never seen before —
// vmstate clusters in sequence) before the extent's data is read. A
// cluster's 16-bit mask has bit i (least significant first) set when its
// 4 KiB block i is stored; clear bits are zeros and are not stored.
// Clusters are cut at the device's size, which need not be a multiple of
// 64 KiB. When the stream ends at an extent boundary, Next returns io.EOF
// only if every cluster of every disk arrived; otherwise (a truncated
// dump) it is an error. Extract writes every disk into a sink of its own
// (an io.WriterAt, typically a sparse raw file) in that one pass, never
// writing zero blocks; Stats sum up what was read.
//
// Where the prose specification (pve-qemu's vma_spec.txt) and Proxmox's
// code disagree, this package follows vma-writer.c and vma-reader.c: blob
// lengths are little-endian, the blob buffer size is not a multiple of
// 512, extents carry at most 59 clusters (the writer fills 58).
//
// Hostile input is refused with a *FormatError (archive offset, structure,
// problem; errors.Is ErrFormat) and never panics. Memory is bounded
// whatever a header claims: the header is at most 512 KiB (the writer's
// limit), an extent's data at most 59 × 64 KiB, and duplicate detection
// keeps one bit per cluster actually received (see clusterSet), never a
// table sized from a claimed device size.
//
// ParseConfig reads qemu-server.conf into a VMConfig (name, sockets ×
// cores, memory, BIOS, machine, ostype, drives with volumes, sizes and the
// archive devices vzdump's "#qmdump#map" lines assign them, NICs);
// Decompress and Open recognise zstd, gzip and lzop compression by their
// magic numbers (lzop through internal/lzop).
//
// Package vmatest writes archives as vma-writer.c does, byte for byte, for
// tests and the demo.
package vma
