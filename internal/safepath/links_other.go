//go:build !unix

package safepath

import "io/fs"

// links: the link count is not exposed portably here; treat files as single.
func links(fs.FileInfo) uint64 { return 1 }
