//go:build unix

package safepath

import (
	"io/fs"
	"syscall"
)

// links is the file's hard link count.
func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
