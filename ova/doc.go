// Package ova writes and reads OVA archives: an OVF package stored as one
// tar file (DMTF DSP0243 5.3), optionally gzip- or zstd-compressed as a
// whole (.ova.gz, .ova.zst).
//
// Writing. Writer streams an archive in the order DSP0243 prescribes: the
// descriptor first, then the manifest and certificate if they are at hand,
// then the files in the order of the descriptor's References section, then
// the manifest and certificate if they were not placed after the
// descriptor. Members are USTAR; archive/tar switches to PAX only for what
// USTAR cannot hold (members of 8 GiB and more, long names). Every member
// is hashed while it streams, the archive itself too, so the bytes move
// once. CreateIn and Pack write to a temporary file next to the destination,
// check the close error of every layer (tar, compressor, file), sync and
// rename: a truncated archive is never reported as success. Pack turns an
// OVF folder into an OVA.
//
// StreamWriter writes an OVA (plain, gzip or zstd) in one pass into a
// destination that can fill regions it reserved (an object-storage
// upload), before any file's size is known: the descriptor's region is
// reserved from an upper bound of its length and filled, padded with
// whitespace, at the end; each file's header has a fixed length (PAX,
// size zero-padded) and is filled when the file ends; the manifest follows
// the files. Compressed, each region is a gzip member (zstd frame) of
// stored blocks, so its length is fixed too.
//
// Reading. Open, Extract, Validate and Inspect recognize plain, gzip and
// zstd archives by their first bytes. They refuse unsafe names ("..",
// absolute paths), links, devices, FIFOs, directories, sparse entries,
// duplicate names, files the descriptor does not reference, a descriptor
// that is not first, and members larger than the descriptor declares (the
// total decompressed size is capped as well, against decompression bombs).
// They verify the manifest's SHA-1, SHA-256 and SHA-512 digests and report
// every problem found in one *Error, not only the first. Extract writes
// through os.Root into a staging directory and moves files into place only
// when the whole archive is valid, so nothing is ever written outside the
// destination and a bad archive leaves nothing behind.
//
// What compression buys depends on the disks: streamOptimized VMDKs (what
// vSphere's NFC export serves) are already deflate-compressed and shrink
// very little more, while raw, VHD and qcow2 images from clouds, Hyper-V
// and Proxmox shrink a lot. The benchmarks in bench_test.go measure both.
package ova
