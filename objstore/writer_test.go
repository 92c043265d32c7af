package objstore_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/objstore"
)

const mib = 1 << 20

// openWriterSink is a sink on versitygw behind a gate that counts the
// parts it forwards.
func openWriterSink(t *testing.T) (*objstore.Sink, *gate) {
	t.Helper()
	srv := s3test.Start(t, s3test.Options{})
	srv.CreateBucket(t, "wbk")
	g := newGate(t, srv.URL, -1, s3Part)
	ts := objstore.Targets{{Name: "test", URL: "s3://wbk/", S3: objstore.S3Config{
		Endpoint: g.srv.URL, Region: srv.Region, AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey, PathStyle: true}}}
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	sink, err := ts.Open(context.Background(), "output", "s3://wbk/p/", root, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sink, g
}

// pattern is n bytes that differ from part to part and from zeros.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i/4096)
	}
	return b
}

func write(t *testing.T, w io.Writer, want *[]byte, p []byte) {
	t.Helper()
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	*want = append(*want, p...)
}

func writeAt(t *testing.T, w interface {
	WriteAt([]byte, int64) (int, error)
}, want []byte, p []byte, off int64) {
	t.Helper()
	if n, err := w.WriteAt(p, off); err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
	}
	copy(want[off:], p)
}

// TestWriterWriteAtReserve: WriteAt patches part 1 (held until Commit);
// a region reserved across a part boundary keeps both parts in memory,
// unsent, while later parts stream on, until WriteAt has filled all of
// it; WriteAt on an uploaded part is refused naming the object and the
// offset. The object reads back as the bytes written, and every part is
// sent once.
func TestWriterWriteAtReserve(t *testing.T) {
	sink, g := openWriterSink(t)
	ctx := context.Background()
	w, err := sink.Create(ctx, "obj", 100*mib) // 16 MiB parts
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var want []byte
	write(t, w, &want, pattern(1, 20*mib))
	writeAt(t, w, want, []byte("the header, written last"), 100)
	write(t, w, &want, pattern(2, 20*mib)) // part 2 is full and sent

	_, err = w.WriteAt([]byte("late"), 17*mib)
	if err == nil || !strings.Contains(err.Error(), "s3://wbk/p/obj") || !strings.Contains(err.Error(), strconv.Itoa(17*mib)) {
		t.Fatalf("WriteAt on an uploaded part: %v, want an error naming the object and the offset", err)
	}

	// Parts 3 (32-48 MiB) and 4 (48-64 MiB) hold the reserved 40-50 MiB.
	off, err := w.Reserve(10 * mib)
	if err != nil || off != 40*mib {
		t.Fatalf("Reserve = %d, %v, want offset %d", off, err, 40*mib)
	}
	want = append(want, make([]byte, 10*mib)...)
	write(t, w, &want, pattern(3, 40*mib)) // parts 5 full, 6 filling
	if n := objstore.HeldParts(w); n != 3 {
		t.Errorf("%d parts held, want 3 (part 1 and the two holding the reserved bytes)", n)
	}
	sent, _ := g.snapshot()
	for _, n := range []int{1, 3, 4} {
		if c := sent["p/obj#"+strconv.Itoa(n)]; c != 0 {
			t.Errorf("held part %d was sent %d times before it was filled", n, c)
		}
	}

	writeAt(t, w, want, pattern(4, 6*mib), 40*mib)
	if n := objstore.HeldParts(w); n != 3 {
		t.Errorf("%d parts held after a partial fill, want 3", n)
	}
	writeAt(t, w, want, pattern(5, 4*mib), 46*mib)
	if n := objstore.HeldParts(w); n != 1 {
		t.Errorf("%d parts held once the reserved bytes are filled, want 1 (part 1)", n)
	}
	writeAt(t, w, want, []byte("patched in the part filling"), 81*mib)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	rc, err := sink.Open(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the object (%d bytes) is not the bytes written (%d)", len(got), len(want))
	}
	// A range reads back too.
	rc, err = sink.Open(ctx, "obj", 40*mib-3, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, want[40*mib-3:40*mib+7]) {
		t.Errorf("range read: %d bytes, %v", len(got), err)
	}
	sent, _ = g.snapshot()
	for n := 1; n <= 6; n++ {
		if c := sent["p/obj#"+strconv.Itoa(n)]; c != 1 {
			t.Errorf("part %d sent %d times, want 1", n, c)
		}
	}
}

// TestWriterReserveUnfilled: reserved bytes never filled are sent as
// zeros at Commit; a WriteAt beyond what is written is refused.
func TestWriterReserveUnfilled(t *testing.T) {
	sink, _ := openWriterSink(t)
	ctx := context.Background()
	w, err := sink.Create(ctx, "obj", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var want []byte
	write(t, w, &want, pattern(1, 17*mib))
	if _, err := w.Reserve(20 * mib); err != nil {
		t.Fatal(err)
	}
	want = append(want, make([]byte, 20*mib)...)
	write(t, w, &want, pattern(2, mib))
	if _, err := w.WriteAt([]byte("x"), int64(len(want))); err == nil {
		t.Error("WriteAt beyond the bytes written succeeded")
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := sink.Open(ctx, "obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the object (%d bytes, %v) is not the bytes written (%d)", len(got), err, len(want))
	}
}
