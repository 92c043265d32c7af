//go:build !(linux || darwin)

package ova

import "os"

// freeBytes: not known portably here; the write fails when the disk fills.
func freeBytes(*os.Root) int64 { return -1 }
