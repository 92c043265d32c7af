//go:build linux

package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing [off, off+n) of f out,
// without waiting.
func startWriteback(f *os.File, off, n int64) {
	syncRange(f, off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// waitWriteback returns once [off, off+n) of f has been written out (it
// starts writeback of any page still dirty first).
func waitWriteback(f *os.File, off, n int64) {
	syncRange(f, off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
}

func syncRange(f *os.File, off, n int64, flags int) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	// Errors (EIO, or a file system without writeback) surface at the
	// fsync of commit, which is the durability point.
	_ = rc.Control(func(fd uintptr) { _ = unix.SyncFileRange(int(fd), off, n, flags) })
}
