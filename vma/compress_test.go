package vma_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

// compressWith runs the real tool vzdump uses for a compression: zstd,
// gzip or lzop (a missing tool fails the test with how to get it).
func compressWith(t testing.TB, tool string, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is needed to make compressed dumps as vzdump does: apt-get install %s (or make test-deps)", tool, tool)
	}
	cmd := exec.Command(tool, "-c")
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", tool, err, stderr.String())
	}
	return out.Bytes()
}

// TestDecompressVzdumpCompressions: the archive compressed by zstd, gzip
// and lzop comes back byte for byte, the compression recognised by its
// magic, and Open reads the header of each file whatever its name.
func TestDecompressVzdumpCompressions(t *testing.T) {
	archive := buildArchive(t, standardDisks(), nil, vmatest.Interleaved, false)
	dir := t.TempDir()
	for _, c := range []struct {
		tool string
		want vma.Compression
	}{{"", vma.CompressionNone}, {"zstd", vma.CompressionZstd}, {"gzip", vma.CompressionGzip}, {"lzop", vma.CompressionLZO}} {
		t.Run(string(c.want), func(t *testing.T) {
			data := archive
			if c.tool != "" {
				data = compressWith(t, c.tool, archive)
			}
			rc, got, err := vma.Decompress(bytes.NewReader(data))
			if err != nil || got != c.want {
				t.Fatalf("Decompress: %s, %v; want %s", got, err, c.want)
			}
			plain, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(plain, archive) {
				t.Fatalf("decompressed %d bytes (%v), want the %d-byte archive", len(plain), err, len(archive))
			}
			// A name that lies about the compression changes nothing.
			path := filepath.Join(dir, "vzdump-qemu-101-"+string(c.want)+".vma")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := vma.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Compression != c.want || len(f.Header().Disks()) != 3 || f.Size != int64(len(data)) {
				t.Fatalf("Open: %s, %d disks, size %d", f.Compression, len(f.Header().Disks()), f.Size)
			}
			for {
				if _, err := f.Next(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestDetectCompressionRefuses(t *testing.T) {
	for name, head := range map[string][]byte{
		"xz":    {0xfd, '7', 'z', 'X', 'Z', 0, 0, 0, 0},
		"bzip2": []byte("BZh91AY&SY"),
		"ova":   []byte("web01.ovf\x00\x00\x00\x00"),
		"empty": {},
	} {
		_, _, err := vma.Decompress(bytes.NewReader(head))
		if !errors.Is(err, vma.ErrFormat) {
			t.Fatalf("%s: %v, want a FormatError", name, err)
		}
	}
}

// TestDecompressCloseMidStream: closing an lzo dump's reader before its end
// stops the read-ahead goroutine.
func TestDecompressCloseMidStream(t *testing.T) {
	data := compressWith(t, "lzop", buildArchive(t, standardDisks(), nil, vmatest.Sequential, false))
	before := runtime.NumGoroutine()
	for range 5 {
		rc, _, err := vma.Decompress(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 100000)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after closing, %d before", n, before)
	}
}
