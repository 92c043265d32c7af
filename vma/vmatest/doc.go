// Package vmatest writes VMA archives the way Proxmox's vma-writer.c (in
// pve-qemu's debian/patches/pve) does, byte for byte: the header built in
// one buffer (fixed part, then the blob buffer grown in 512-byte steps
// from offset 1, configuration blobs added as they come and device names
// appended when the header is written, MD5 over the header with its
// md5sum field zeroed), extents flushed whenever 58 clusters wait (the
// writer's `outbuf_count >= VMA_BLOCKS_PER_EXTENT - 1`) and once more when
// the last stream closes, each cluster's mask computed block by block with
// blocks past the device's end left out and the stored tail of a partial
// last block zeroed, blockinfo packed as mask<<48 | dev_id<<32 | cluster.
//
// It is the fixture maker for package vma's tests, the Proxmox provider's
// tests and its demo backend (which plays `vzdump --stdout`). It is not a
// backup tool: it holds one extent in memory and trusts its caller.
//
// Writer mirrors the C API (AddConfig, RegisterStream, WriteCluster,
// CloseStream, Close) and refuses what vma-writer.c refuses; Write builds
// a whole archive from disks in a chosen cluster order.
package vmatest
