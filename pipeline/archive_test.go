package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	ovapkg "github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/vmdk"
)

// memSink is object storage in memory, with the upload semantics the
// archive relies on: reserved bytes are filled once, before Commit.
type memSink struct {
	mu        sync.Mutex
	objects   map[string][]byte
	removed   []string
	maxHeld   int64 // the most reserved-and-unfilled bytes seen
	committed []string
}

func newMemSink() *memSink { return &memSink{objects: map[string][]byte{}} }

func (s *memSink) Location() string { return "mem://bucket/" }

func (s *memSink) Create(_ context.Context, name string, _ int64) (providers.SinkWriter, error) {
	return &memObject{s: s, name: name, reserved: map[int64]int64{}}, nil
}

func (s *memSink) Open(_ context.Context, name string, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[name]
	if !ok {
		return nil, fmt.Errorf("%s: no such object", name)
	}
	b = b[off:]
	if n >= 0 {
		b = b[:n]
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *memSink) Remove(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, name)
	s.removed = append(s.removed, name)
	return nil
}

func (s *memSink) Release(string) error { return nil }

func (s *memSink) Started() ([]string, error) { return nil, nil }

type memObject struct {
	s        *memSink
	name     string
	b        []byte
	reserved map[int64]int64
}

func (o *memObject) Write(p []byte) (int, error) { o.b = append(o.b, p...); return len(p), nil }

func (o *memObject) Reserve(n int64) (int64, error) {
	off := int64(len(o.b))
	o.b = append(o.b, make([]byte, n)...)
	o.reserved[off] = n
	o.s.mu.Lock()
	var held int64
	for _, k := range o.reserved {
		held += k
	}
	o.s.maxHeld = max(o.s.maxHeld, held)
	o.s.mu.Unlock()
	return off, nil
}

// WriteAt fills a reserved region, or patches written bytes (an image
// writer's tables: nothing of the object is uploaded before Commit here).
func (o *memObject) WriteAt(p []byte, off int64) (int, error) {
	if n, ok := o.reserved[off]; ok && n == int64(len(p)) {
		delete(o.reserved, off)
		return copy(o.b[off:], p), nil
	}
	for r, n := range o.reserved {
		if off < r+n && r < off+int64(len(p)) {
			return 0, fmt.Errorf("%s: %d bytes at %d: overlaps the reserved region at %d", o.name, len(p), off, r)
		}
	}
	if off < 0 || off+int64(len(p)) > int64(len(o.b)) {
		return 0, fmt.Errorf("%s: %d bytes at %d: beyond the %d written", o.name, len(p), off, len(o.b))
	}
	return copy(o.b[off:], p), nil
}

func (o *memObject) Commit(context.Context) error {
	if len(o.reserved) > 0 {
		return fmt.Errorf("%s: reserved regions never filled: %v", o.name, o.reserved)
	}
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	o.s.objects[o.name] = o.b
	o.s.committed = append(o.s.committed, o.name)
	return nil
}

func (o *memObject) Close() error { return nil }

// slowDisk is a reader disk whose reads are slowed, so that the disks
// after it finish their downloads first if nothing orders them.
func slowDisk(name string, data []byte, delay time.Duration) providers.DiskSource {
	d := readerDisk(name, data)
	d.Open = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(&slowReader{r: bytes.NewReader(data), delay: delay}), nil
	}
	return d
}

type slowReader struct {
	r     io.Reader
	delay time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.r.Read(p[:min(len(p), 256<<10)])
}

// An uncompressed OVA to object storage streams its disks into the
// archive object in descriptor order, however the downloads race, with
// nothing of the disks written to the output root; the archive validates
// (manifest included), its disks decode to the sources, and the result
// names the archive with the SHA-256 of the object as stored.
func TestOVAStreamsIntoTheObject(t *testing.T) {
	disks := [][]byte{diskBytes(11, 3<<20+4096), diskBytes(12, 1<<20), diskBytes(13, 2<<20)}
	e := newExporter(slowDisk("disk-0", disks[0], 5*time.Millisecond), readerDisk("disk-1", disks[1]), readerDisk("disk-2", disks[2]))
	sink := newMemSink()
	dir := t.TempDir()
	done := make(chan struct{})
	most := make(chan int64, 1)
	go func() { most <- watchDir(dir, done) }()
	res, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatOVA, Output: sink, ParallelDownloads: 3,
	})
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	e.wantEnded(t, false)
	if n := <-most; n > 4<<10 {
		t.Errorf("the output root held %d bytes during the export", n)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("output root left with %v", names)
	}
	if !slices.Equal(sink.committed, []string{"web01.ova"}) {
		t.Fatalf("objects committed %v, want the OVA alone", sink.committed)
	}
	archive := sink.objects["web01.ova"]
	if len(res.Files) != 1 || res.Files[0].Path != "web01.ova" || res.Files[0].SHA256 != sum(archive) || res.Files[0].Size != int64(len(archive)) {
		t.Errorf("result files %+v, the object has %d bytes, SHA-256 %s", res.Files, len(archive), sum(archive))
	}
	if res.Format != providers.FormatOVA || res.OVAPath != "web01.ova" {
		t.Errorf("result format %s, OVA %q", res.Format, res.OVAPath)
	}
	path := filepath.Join(t.TempDir(), "web01.ova")
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	rep, err := ovapkg.Extract(context.Background(), path, out, ovapkg.ExtractOptions{})
	if err != nil {
		t.Fatalf("extract: %v", err)
	}
	if !rep.Verified {
		t.Error("the manifest was not verified")
	}
	var names []string
	for _, m := range res.Members {
		names = append(names, m.Path)
	}
	want := []string{"web01.ovf", "web01-disk-0.vmdk", "web01-disk-1.vmdk", "web01-disk-2.vmdk", "web01.mf"}
	if !slices.Equal(names, want) {
		t.Errorf("members %v, want %v", names, want)
	}
	for i, data := range disks {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("web01-disk-%d.vmdk", i)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := vmdk.NewStreamReader(bytes.NewReader(b), "disk")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(s.Raw())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("disk %d decodes to other bytes than its source", i)
		}
	}
	if sink.maxHeld > 8<<10 {
		t.Errorf("%d bytes reserved at once", sink.maxHeld)
	}
}

// watchDir polls dir until done and returns the most bytes its files
// held at once.
func watchDir(dir string, done <-chan struct{}) int64 {
	var most int64
	for {
		var n int64
		filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return nil
		})
		most = max(most, n)
		select {
		case <-done:
			return most
		case <-time.After(time.Millisecond):
		}
	}
}

// A disk failing midway fails the export before the archive is
// committed; an export no attempt follows removes the archive's upload.
func TestOVAStreamFailureCommitsNothing(t *testing.T) {
	good := diskBytes(14, 1<<20)
	bad := readerDisk("disk-1", diskBytes(15, 1<<20))
	bad.Open = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(&failingReader{data: diskBytes(15, 300<<10), err: errors.New("connection reset")}), nil
	}
	e := newExporter(readerDisk("disk-0", good), bad, readerDisk("disk-2", good))
	sink := newMemSink()
	dir := t.TempDir()
	_, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatOVA, Output: sink, ParallelDownloads: 2, FinalAttempt: true,
	})
	if err == nil {
		t.Fatal("the export succeeded")
	}
	e.wantEnded(t, true)
	if len(sink.committed) != 0 || !slices.Contains(sink.removed, "web01.ova") {
		t.Errorf("committed %v, removed %v", sink.committed, sink.removed)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("output root left with %v", names)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("the failure is reported as a cancellation: %v", err)
	}
}

// Filled disks (one stream fills them all, then each is encoded) take
// their turns in the archive too, even with one download at a time: a
// disk waiting for its turn holds no slot another needs.
func TestOVAStreamOfFilledDisks(t *testing.T) {
	data := [][]byte{diskBytes(16, 1<<20), diskBytes(17, 2<<20), diskBytes(18, 512<<10)}
	e := newStreamExporter(data...)
	sink := newMemSink()
	dir := t.TempDir()
	res, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatOVA, Output: sink, ParallelDownloads: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "web01.ova")
	if err := os.WriteFile(path, sink.objects["web01.ova"], 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := ovapkg.Extract(context.Background(), path, out, ovapkg.ExtractOptions{}); err != nil {
		t.Fatalf("extract: %v", err)
	}
	for i, want := range data {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("web01-disk-%d.vmdk", i)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := vmdk.NewStreamReader(bytes.NewReader(b), "disk")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(s.Raw())
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("disk %d decodes to other bytes than its source (%v)", i, err)
		}
	}
	if len(res.Members) != 5 {
		t.Errorf("members %+v", res.Members)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("output root left with %v", names)
	}
}
