package disktest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
)

// WriteFunc is a format's writer, as every format package spells it.
type WriteFunc func(ctx context.Context, t disk.Target, src disk.Source, o disk.WriteOptions) error

// WriteSource writes src with write into a new file at outPath, failing
// the test on any error (the file's Close included).
func WriteSource(t testing.TB, write WriteFunc, src disk.Source, outPath string, o disk.WriteOptions) {
	t.Helper()
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := write(context.Background(), out, src, o); err != nil {
		t.Fatalf("Write %s: %v", outPath, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// WriteFromRaw converts the raw file at rawPath into a new image at
// outPath with write: the path every conversion takes (OpenRaw, FromImage).
func WriteFromRaw(t testing.TB, write WriteFunc, rawPath, outPath string, o disk.WriteOptions) {
	t.Helper()
	WriteSource(t, write, disk.FromImage(OpenImage(t, rawPath, disk.OpenRaw)), outPath, o)
}

// OpenImage opens the image at path with open (a format's Open); the image
// and its file close when the test ends.
func OpenImage[I disk.Image](t testing.TB, path string, open func(*disk.File) (I, error)) I {
	t.Helper()
	f, err := disk.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	img, err := open(f)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// SHA256 is the hex SHA-256 of everything r yields.
func SHA256(t testing.TB, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatalf("SHA-256: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FileSHA256 is the hex SHA-256 of the file at path: for a raw image, of
// its virtual disk.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return SHA256(t, f)
}

// ImageSHA256 is the hex SHA-256 of img's virtual disk, every byte of it
// read through ReadAt (holes included), so it equals FileSHA256 of the raw
// file with the same content.
func ImageSHA256(t testing.TB, img disk.Image) string {
	t.Helper()
	return SHA256(t, io.NewSectionReader(img, 0, img.Info().VirtualSize))
}

// Extents collects img's extents, failing the test on an error or unless
// they ascend, are merged (no two touch), are not empty and lie within the
// virtual size.
func Extents(t testing.TB, img disk.Image) []disk.Extent {
	t.Helper()
	var out []disk.Extent
	size := img.Info().VirtualSize
	end := int64(-1)
	for e, err := range img.Extents() {
		if err != nil {
			t.Fatalf("Extents: %v", err)
		}
		if e.Offset <= end || e.Offset < 0 || e.Length <= 0 || e.End() > size {
			t.Fatalf("extent %+v after one ending at %d, virtual size %d: out of order, unmerged, empty or out of range", e, end, size)
		}
		end = e.End()
		out = append(out, e)
	}
	return out
}

// MemTarget is an in-memory disk.Target for small images: writes past
// the end grow it, and only absolute seeks are needed by the writers.
type MemTarget struct {
	b   []byte
	pos int64
}

// Bytes is the image written so far.
func (m *MemTarget) Bytes() []byte { return m.b }

func (m *MemTarget) Write(p []byte) (int, error) {
	n, err := m.WriteAt(p, m.pos)
	m.pos += int64(n)
	return n, err
}

func (m *MemTarget) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("MemTarget: negative offset")
	}
	m.grow(off + int64(len(p)))
	return copy(m.b[off:], p), nil
}

func (m *MemTarget) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekStart || off < 0 {
		return 0, errors.New("MemTarget: only SeekStart to a non-negative offset")
	}
	m.pos = off
	return off, nil
}

func (m *MemTarget) Truncate(size int64) error {
	if size < 0 {
		return errors.New("MemTarget: negative size")
	}
	m.grow(size)
	m.b = m.b[:size]
	return nil
}

func (m *MemTarget) grow(n int64) {
	if n > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, n-int64(len(m.b)))...)
	}
}
