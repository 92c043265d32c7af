package disk

import (
	"os"
	"syscall"
	"testing"
)

// allocated is the bytes the file system holds for p (st_blocks × 512).
func allocated(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}
