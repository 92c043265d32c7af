package transfertest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// SparseFile writes a file of size bytes at path (creating its directory)
// whose odd MiBs hold pseudo-random bytes and even ones are holes, as a VM
// disk export is, and returns its SHA-256. The content depends on size only.
func SparseFile(tb testing.TB, path string, size int64) string {
	tb.Helper()
	return writeFile(tb, path, size, true)
}

// RandomFile writes size incompressible pseudo-random bytes at path and
// returns their SHA-256: the content of throughput benchmarks (no link or
// protocol may shrink it).
func RandomFile(tb testing.TB, path string, size int64) string {
	tb.Helper()
	return writeFile(tb, path, size, false)
}

func writeFile(tb testing.TB, path string, size int64, sparse bool) string {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	// AES-CTR keystream: deterministic, fast, incompressible.
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:], uint64(size))
	block, _ := aes.NewCipher(key[:])
	stream := cipher.NewCTR(block, make([]byte, aes.BlockSize))
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if sparse && (off>>20)%2 == 0 {
			continue // a hole: Truncate made it
		}
		stream.XORKeyStream(buf[:n], zero[:n])
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			tb.Fatal(err)
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
