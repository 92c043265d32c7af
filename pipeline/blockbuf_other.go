//go:build !(linux || darwin)

package pipeline

// newBlockBuffer returns a block buffer of n bytes on the heap (see the
// mapped version in blockbuf_unix.go).
func newBlockBuffer(n int) (buf []byte, free func()) {
	return make([]byte, n), func() {}
}
