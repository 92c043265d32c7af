package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/formats"
)

// memWriter is a SinkWriter that holds every byte (nothing is uploaded,
// so WriteAt may patch anywhere written).
type memWriter struct{ b []byte }

func (m *memWriter) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }
func (m *memWriter) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(m.b)) {
		return 0, io.ErrShortWrite
	}
	return copy(m.b[off:], p), nil
}

func (m *memWriter) Reserve(n int64) (int64, error) {
	off := int64(len(m.b))
	m.b = append(m.b, make([]byte, n)...)
	return off, nil
}
func (m *memWriter) Commit(context.Context) error { return nil }
func (m *memWriter) Close() error                 { return nil }

// TestSinkTargetMovesForwardOnly: a Seek forward and a Truncate that
// grows append zeros, a Seek backward and a Truncate that would cut are
// refused, and a WriteAt voids the streaming hash.
func TestSinkTargetMovesForwardOnly(t *testing.T) {
	m := &memWriter{}
	st := &sinkTarget{w: m, name: "d.qcow2", h: sha256.New()}
	if _, err := st.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if off, err := st.Seek(10, io.SeekStart); err != nil || off != 10 {
		t.Fatalf("Seek forward = %d, %v", off, err)
	}
	if _, err := st.Seek(2, io.SeekStart); err == nil {
		t.Error("a Seek backward succeeded")
	}
	if err := st.Truncate(5); err == nil {
		t.Error("a Truncate below the bytes written succeeded")
	}
	if err := st.Truncate(16); err != nil {
		t.Fatal(err)
	}
	want := append([]byte("abc"), make([]byte, 13)...)
	if sum := sha256.Sum256(want); !bytes.Equal(m.b, want) || !bytes.Equal(st.h.Sum(nil), sum[:]) || st.patched {
		t.Fatalf("bytes %q (patched %v), want %q hashed as they passed", m.b, st.patched, want)
	}
	if _, err := st.WriteAt([]byte("X"), 4); err != nil || !st.patched {
		t.Fatalf("WriteAt: %v, patched %v", err, st.patched)
	}
}

// TestSinkTargetWritesWhatAFileHolds: a qcow2 image written through the
// target is the bytes the writer puts in a file (holes read as zeros).
func TestSinkTargetWritesWhatAFileHolds(t *testing.T) {
	data := make([]byte, 8<<20)
	for i := 0; i < len(data); i += 3 << 16 {
		copy(data[i:i+1<<16], bytes.Repeat([]byte{byte(i >> 16), 7}, 1<<15))
	}
	spec, err := formats.Lookup("qcow2")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "d.qcow2")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := func() disk.Source { return disk.FromReader(bytes.NewReader(data), int64(len(data))) }
	if err := spec.Write(context.Background(), f, src(), disk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	m := &memWriter{}
	st := &sinkTarget{w: m, name: "d.qcow2", h: sha256.New()}
	if err := spec.Write(context.Background(), st, src(), disk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.b, want) || st.end != int64(len(want)) {
		t.Fatalf("through the target: %d bytes (end %d), in a file: %d bytes, or they differ", len(m.b), st.end, len(want))
	}
	if !st.patched {
		t.Error("the qcow2 header patch did not void the streaming hash")
	}
}
