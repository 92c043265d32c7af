//go:build linux || darwin

package ova

import (
	"os"
	"syscall"
)

// freeBytes is the space available to this user on dir's file system, or
// -1 if it cannot be told.
func freeBytes(dir *os.Root) int64 {
	f, err := dir.Open(".")
	if err != nil {
		return -1
	}
	defer f.Close()
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &st); err != nil {
		return -1
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	return int64(min(free, 1<<62))
}
