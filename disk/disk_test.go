package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
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
	f, err := OpenFile(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := OpenRaw(f)
	if err != nil {
		t.Fatal(err)
	}
	var ext []Extent
	for e, err := range img.Extents() {
		if err != nil {
			t.Fatal(err)
		}
		ext = append(ext, e)
	}
	var covered int64
	for _, e := range ext {
		covered += e.Length
	}
	if covered >= size/2 {
		t.Fatalf("extents %v cover %d of %d bytes: holes not found", ext, covered, size)
	}

	out := filepath.Join(dir, "out.raw")
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteRaw(context.Background(), o, FromImage(img), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if a, b := digest(t, in), digest(t, out); a != b {
		t.Fatalf("raw copy differs: %x vs %x", a, b)
	}
	var st, st2 os.FileInfo
	st, _ = os.Stat(out)
	st2, _ = os.Stat(in)
	if st.Size() != st2.Size() {
		t.Fatalf("size %d, want %d", st.Size(), st2.Size())
	}
	if alloc := allocated(t, out); alloc > 8<<20 {
		t.Fatalf("output allocates %d bytes for ~3 MiB of data: holes were written", alloc)
	}
}

func TestFromReaderShortSource(t *testing.T) {
	src := FromReader(bytes.NewReader(make([]byte, 100)), 200)
	if _, err := src.NextExtent(); err != nil {
		t.Fatal(err)
	}
	_, err := io.ReadAll(src)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short source: %v, want unexpected EOF", err)
	}
}

func TestRelatedStaysBeside(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "img")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(sub, "parent.vhdx"), []byte("p"), 0o600)
	os.WriteFile(filepath.Join(sub, "child"), []byte("c"), 0o600)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(sub, "link"))
	f, err := OpenFile(filepath.Join(sub, "child"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := f.Open(`C:\Hyper-V\Disks\parent.vhdx`)
	if err != nil {
		t.Fatalf("parent by Windows path: %v", err)
	}
	p.Close()
	for _, bad := range []string{"../secret", "link", "/etc/passwd"} {
		if g, err := f.Open(bad); err == nil {
			g.Close()
			t.Errorf("Open(%q) escaped the image's directory", bad)
		}
	}
}

func TestFormatErrorNamesFileStructureOffset(t *testing.T) {
	err := error(Errorf(&File{Name: "a.qcow2"}, QCOW2, "L1 table", 196608, "entry %d points past the end", 3))
	want := "a.qcow2: qcow2 L1 table at offset 196608: entry 3 points past the end"
	if err.Error() != want || !errors.Is(err, ErrFormat) {
		t.Fatalf("got %q", err)
	}
}

func digest(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}
