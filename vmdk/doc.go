// Package vmdk writes and reads monolithic streamOptimized sparse VMDK images,
// the format vSphere NFC serves for every disk of an export lease, and
// generates deterministic disk content for tests, benchmarks and the demo.
//
// WriteStreamOptimized converts raw disk bytes into a streamOptimized VMDK as
// specified in VMware's "Virtual Disk Format 5.0" technical note: a sparse
// extent header whose grain directory offset says "at the end", the embedded
// descriptor, then every non-zero 64 KiB grain deflate-compressed behind a
// grain marker, each grain table behind its own marker right after the grains
// it covers, the grain directory, a footer (a copy of the header that carries
// the real grain directory offset) and the end-of-stream marker. All-zero
// grains are omitted, and so are grain tables that would only point at
// omitted grains. The source is read once, front to back, and memory stays
// flat whatever the disk size, so multi-GiB disks convert as a stream; grains
// are compressed on all CPUs but written in order, so the output is
// deterministic for a given input and WriteOptions.
//
// Open is the small reader used to verify images: it parses the header (or
// the footer when the header defers to it), the embedded descriptor and the
// grain directory, and exposes the virtual disk as an io.ReaderAt. It reads
// streamOptimized (compressed) and plain monolithicSparse extents.
//
// StreamReader decodes a streamOptimized VMDK as it arrives, front to back
// with no seeking (grain markers in order, gaps read as zeros), into the
// virtual disk's bytes with one grain of memory: the pipeline turns NFC
// streams into raw disks with it.
//
// GenerateRaw returns reproducible pseudo-random disk content of any size —
// a mix of empty megabytes, log-like text, structured records and incompressible
// noise — that is cheap to regenerate, so a test can compare SHA-256 digests
// instead of keeping the bytes around.
//
// qemu-img (Debian qemu-utils) reads what this package writes: "qemu-img info"
// reports "file format: vmdk" and "create type: streamOptimized", and
// "qemu-img convert -O raw" reproduces the source bytes exactly.
package vmdk
