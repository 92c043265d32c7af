package disk_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
)

// sparseFile writes a raw image with data at the given offsets and holes
// elsewhere, size bytes long.
func sparseFile(t *testing.T, dir string, size int64, data map[int64][]byte) string {
	t.Helper()
	p := filepath.Join(dir, "src.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off, b := range data {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRawRoundTripKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	size := int64(64<<20 + 4096 + 17)
	data := map[int64][]byte{
		0:        bytes.Repeat([]byte("boot"), 1024),
		8 << 20:  bytes.Repeat([]byte{0xAB}, 3<<20),
		size - 9: []byte("last-byte"),
	}
	in := sparseFile(t, dir, size, data)
	img := disktest.OpenImage(t, in, disk.OpenRaw)
	ext := disktest.Extents(t, img)
	var covered int64
	for _, e := range ext {
		covered += e.Length
	}
	if covered >= size/2 {
		t.Fatalf("extents %v cover %d of %d bytes: holes not found", ext, covered, size)
	}

	out := filepath.Join(dir, "out.raw")
	disktest.WriteSource(t, disk.WriteRaw, disk.FromImage(img), out, disk.WriteOptions{})
	if a, b := disktest.FileSHA256(t, in), disktest.FileSHA256(t, out); a != b {
		t.Fatalf("raw copy differs: %s vs %s", a, b)
	}
	var st, st2 os.FileInfo
	st, _ = os.Stat(out)
	st2, _ = os.Stat(in)
	if st.Size() != st2.Size() {
		t.Fatalf("size %d, want %d", st.Size(), st2.Size())
	}
	if alloc := disktest.Allocated(t, out); alloc > 8<<20 {
		t.Fatalf("output allocates %d bytes for ~3 MiB of data: holes were written", alloc)
	}
}
