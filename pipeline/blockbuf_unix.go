//go:build linux || darwin

package pipeline

import "syscall"

// newBlockBuffer returns a block buffer of n bytes outside the Go heap
// (an anonymous private mapping) and the function that unmaps it; it falls
// back to the heap if the mapping fails. The block engine's buffers are
// held for the whole download (64 × 512 KiB for EBS): on the heap, the
// garbage collector's pacing (GOGC=100) would let the heap grow to twice
// everything live, so each buffer would cost its size twice in RSS. The
// buffer must not be used after free.
func newBlockBuffer(n int) (buf []byte, free func()) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), func() {}
	}
	return b, func() { _ = syscall.Munmap(b) }
}
