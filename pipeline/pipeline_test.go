package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hypersdk/hypersdk/disk/formats"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/vmdk"
)

// exporter is a provider that hands over fixed sources and records how
// the pipeline ends its export.
type exporter struct {
	vm    *providers.VMInfo
	disks []providers.DiskSource

	mu        sync.Mutex
	prepared  int
	events    []string // "finish" and "cleanup", in call order
	finishErr error
}

func (e *exporter) PrepareExport(_ context.Context, _ string, _ providers.ExportOptions) (*providers.Export, error) {
	e.mu.Lock()
	e.prepared++
	e.mu.Unlock()
	return &providers.Export{
		VM: e.vm, Disks: e.disks,
		Finish: func(_ context.Context, err error) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.events = append(e.events, "finish")
			e.finishErr = err
			return nil
		},
		Cleanup: func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.events = append(e.events, "cleanup")
		},
	}, nil
}

// wantEnded checks that Finish ran once, then Cleanup once, and that
// Finish heard a failure exactly when the export failed.
func (e *exporter) wantEnded(t *testing.T, failed bool) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.Equal(e.events, []string{"finish", "cleanup"}) {
		t.Errorf("platform hooks called %v, want [finish cleanup]", e.events)
	}
	if failed != (e.finishErr != nil) {
		t.Errorf("Finish told %v; export failed: %v", e.finishErr, failed)
	}
}

func newExporter(disks ...providers.DiskSource) *exporter {
	vm := &providers.VMInfo{Name: "web01", ID: "vm-1", CPUs: 2, MemoryMiB: 1024, GuestOS: "otherGuest64"}
	for _, d := range disks {
		vm.Disks = append(vm.Disks, providers.DiskInfo{Label: d.Name, CapacityBytes: d.Capacity, Controller: "scsi0"})
	}
	return &exporter{vm: vm, disks: disks}
}

// diskBytes returns a disk image of size bytes: data blocks with zero
// blocks between them, so a raw output has holes and a VMDK skips grains.
func diskBytes(seed uint64, size int) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
	for off := 0; off < size; off += 64 << 10 {
		if (off/(64<<10))%3 == 1 {
			continue // a hole
		}
		for i := off; i < min(off+64<<10, size); i++ {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

func readerDisk(name string, data []byte) providers.DiskSource {
	return providers.DiskSource{
		Name: name, Format: providers.SourceRaw, Capacity: int64(len(data)), Size: int64(len(data)),
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// recorder collects progress reports.
type recorder struct {
	mu      sync.Mutex
	reports []progress.Report
}

func (r *recorder) add(p progress.Report) {
	r.mu.Lock()
	r.reports = append(r.reports, p)
	r.mu.Unlock()
}

// lastDownload is the last download report.
func (r *recorder) lastDownload() progress.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last progress.Report
	for _, p := range r.reports {
		if p.Phase == progress.PhaseDownloading {
			last = p
		}
	}
	return last
}

func TestReaderRawDiskExportsAsRawAndVMDK(t *testing.T) {
	data := diskBytes(1, 3<<20+512*7) // not a multiple of the grain size
	want := sum(data)
	for _, df := range []providers.DiskFormat{providers.DiskRaw, providers.DiskVMDK} {
		t.Run(string(df), func(t *testing.T) {
			dir := t.TempDir()
			e := newExporter(readerDisk("disk-0", data))
			var rec recorder
			res, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{
				OutputDir: dir, Format: providers.FormatDisks, DiskFormat: df, Progress: rec.add,
			})
			if err != nil {
				t.Fatal(err)
			}
			e.wantEnded(t, false)
			name := "web01-disk-0." + string(df)
			if got, wantNames := listDir(t, dir), []string{name, "web01.json", "web01.sha256"}; !slices.Equal(got, wantNames) {
				t.Errorf("output %v, want %v", got, wantNames)
			}
			out, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			disk := out
			if df == providers.DiskVMDK {
				s, err := vmdk.NewStreamReader(bytes.NewReader(out), name)
				if err != nil {
					t.Fatal(err)
				}
				if s.Size() != int64(len(data)) {
					t.Errorf("VMDK capacity %d, want %d", s.Size(), len(data))
				}
				if disk, err = io.ReadAll(s.Raw()); err != nil {
					t.Fatal(err)
				}
			}
			if got := sum(disk); got != want {
				t.Errorf("disk content SHA-256 %s, source %s", got, want)
			}
			var disks int
			for _, f := range res.Files {
				if f.Kind != "disk" {
					continue
				}
				disks++
				if f.Path != name || f.SHA256 != sum(out) || f.Size != int64(len(out)) {
					t.Errorf("result file %+v, want %s of %d bytes, SHA-256 %s", f, name, len(out), sum(out))
				}
			}
			if disks != 1 {
				t.Errorf("%d disks in the result", disks)
			}
			mf, err := os.ReadFile(filepath.Join(dir, "web01.sha256"))
			if err != nil {
				t.Fatal(err)
			}
			if line := "SHA256(" + name + ")= " + sum(out) + "\n"; !strings.Contains(string(mf), line) {
				t.Errorf("manifest lacks %q:\n%s", line, mf)
			}
			// Honest totals: the source's bytes, known from the start, reached.
			last := rec.lastDownload()
			if last.BytesTotal != int64(len(data)) || last.BytesDone != last.BytesTotal ||
				last.Item != "web01-disk-0."+string(df) || last.ItemBytes != int64(len(data)) || last.ItemSize != int64(len(data)) {
				t.Errorf("last download report %+v, want %d of %d bytes", last, len(data), len(data))
			}
		})
	}
}

// failingReader yields n bytes of data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestLaterDiskFailureRemovesEveryFile(t *testing.T) {
	first := diskBytes(2, 1<<20)
	firstDone := make(chan struct{})
	d0 := readerDisk("disk-0", first)
	d0.Open = func(context.Context) (io.ReadCloser, error) {
		// The pipeline closes a source once its file is committed.
		return closeFunc{Reader: bytes.NewReader(first), close: func() { close(firstDone) }}, nil
	}
	broken := errors.New("platform went away")
	d1 := providers.DiskSource{Name: "disk-1", Format: providers.SourceRaw, Capacity: 1 << 20, Size: 1 << 20,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			select {
			case <-firstDone: // fail only once disk-0 is on disk
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return io.NopCloser(&failingReader{data: diskBytes(3, 300<<10), err: broken}), nil
		}}
	for _, f := range []providers.Format{providers.FormatOVF, providers.FormatDisks} {
		t.Run(string(f), func(t *testing.T) {
			firstDone = make(chan struct{})
			dir := t.TempDir()
			e := newExporter(d0, d1)
			_, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{
				OutputDir: dir, Format: f, ParallelDownloads: 2,
			})
			if !errors.Is(err, broken) {
				t.Fatalf("export returned %v, want the source's error", err)
			}
			select {
			case <-firstDone:
			default:
				t.Fatal("disk-0 was never written")
			}
			if left := listDir(t, dir); len(left) != 0 {
				t.Errorf("failed export left %v", left)
			}
			e.wantEnded(t, true)
		})
	}
}

type closeFunc struct {
	io.Reader
	close func()
}

func (c closeFunc) Close() error { c.close(); return nil }

// blockingReader yields data, then blocks until its context ends.
type blockingReader struct {
	ctx  context.Context
	data []byte
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		return n, nil
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

func TestCancelEndsThePlatformSideAndRemovesFiles(t *testing.T) {
	done := diskBytes(4, 256<<10)
	slow := providers.DiskSource{Name: "disk-1", Format: providers.SourceRaw, Capacity: 1 << 20, Size: 1 << 20,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			return io.NopCloser(&blockingReader{ctx: ctx, data: diskBytes(5, 128<<10)}), nil
		}}
	for _, df := range []providers.DiskFormat{providers.DiskRaw, providers.DiskVMDK} {
		t.Run(string(df), func(t *testing.T) {
			dir := t.TempDir()
			e := newExporter(readerDisk("disk-0", done), slow)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var once sync.Once
			_, err := pipeline.Export(ctx, e, "vm-1", providers.ExportOptions{
				OutputDir: dir, Format: providers.FormatDisks, DiskFormat: df, ParallelDownloads: 2,
				Progress: func(p progress.Report) {
					if p.Item == "web01-disk-1."+string(df) && p.ItemBytes > 0 {
						once.Do(cancel)
					}
				},
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled export returned %v, want context.Canceled", err)
			}
			if left := listDir(t, dir); len(left) != 0 {
				t.Errorf("cancelled export left %v", left)
			}
			e.wantEnded(t, true)
		})
	}
}

func TestCheckOptionsNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  providers.ExportOptions
		field string
	}{
		{"format", providers.ExportOptions{Format: "zip"}, "format:"},
		{"disk format", providers.ExportOptions{DiskFormat: "qcow9"}, "disk_format:"},
		{"raw in ovf", providers.ExportOptions{Format: providers.FormatOVF, DiskFormat: providers.DiskRaw}, "disk_format:"},
		{"raw in ova", providers.ExportOptions{Format: providers.FormatOVA, DiskFormat: providers.DiskRaw}, "disk_format:"},
		{"compress without ova", providers.ExportOptions{Format: providers.FormatDisks, Compress: true}, "compress:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			err := pipeline.CheckOptions(&opts)
			if !errors.Is(err, providers.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("CheckOptions = %v, want an invalid argument naming %q", err, tc.field)
			}
			// Export refuses the same options before the platform is asked.
			opts, dir := tc.opts, t.TempDir()
			opts.OutputDir = dir
			e := newExporter(readerDisk("disk-0", make([]byte, 4096)))
			_, err = pipeline.Export(context.Background(), e, "vm-1", opts)
			if !errors.Is(err, providers.ErrInvalidArgument) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Export = %v, want a permanent invalid argument naming %q", err, tc.field)
			}
			if e.prepared != 0 || len(e.events) != 0 {
				t.Errorf("platform prepared %d times, hooks %v, for refused options", e.prepared, e.events)
			}
			if left := listDir(t, dir); len(left) != 0 {
				t.Errorf("refused export wrote %v", left)
			}
		})
	}
	opts := providers.ExportOptions{}
	if err := pipeline.CheckOptions(&opts); err != nil || opts.Format != providers.FormatOVF || opts.DiskFormat != providers.DiskVMDK {
		t.Errorf("defaults: %v, format %q, disk format %q; want ovf and vmdk", err, opts.Format, opts.DiskFormat)
	}
}

// Every disk format the options check accepts can be written.
func TestEveryDiskFormatHasAWriter(t *testing.T) {
	for _, name := range providers.DiskFormats() {
		s, err := formats.Lookup(name)
		if err != nil || s.Write == nil {
			t.Errorf("disk format %s: %v (writer %v)", name, err, s.Write != nil)
		}
	}
}

// lastBytesReader serves data, then what a verifying source reports at
// its end: err together with the last bytes (withLast) or on the Read
// after them; and then extra bytes beyond the disk, if any.
type lastBytesReader struct {
	data     []byte
	err      error
	withLast bool
	extra    []byte
}

func (l *lastBytesReader) Read(p []byte) (int, error) {
	if len(l.data) > 0 {
		n := copy(p, l.data)
		l.data = l.data[n:]
		if len(l.data) == 0 && l.withLast {
			return n, l.err
		}
		return n, nil
	}
	if len(l.extra) > 0 {
		n := copy(p, l.extra)
		l.extra = l.extra[n:]
		return n, nil
	}
	if l.err != nil {
		return 0, l.err
	}
	return 0, io.EOF
}

// A raw source is read to its end: a failure it reports with its last
// bytes or after them (a whole-object checksum), or bytes beyond the disk,
// fail the export instead of being dropped.
func TestRawSourceIsReadToItsEnd(t *testing.T) {
	data := diskBytes(9, 1<<20) // a multiple of every reader's buffer
	mismatch := errors.New("CRC32C mismatch")
	for _, tc := range []struct {
		name string
		src  func() io.Reader
		want string
	}{
		{"error with the last bytes", func() io.Reader { return &lastBytesReader{data: slices.Clone(data), err: mismatch, withLast: true} }, mismatch.Error()},
		{"error after the last bytes", func() io.Reader { return &lastBytesReader{data: slices.Clone(data), err: mismatch} }, mismatch.Error()},
		{"bytes beyond the disk", func() io.Reader { return &lastBytesReader{data: slices.Clone(data), extra: []byte{1}} }, "holds more than the disk's 1048576 bytes"},
	} {
		for _, df := range []providers.DiskFormat{providers.DiskRaw, providers.DiskQCOW2, providers.DiskVMDK} {
			t.Run(tc.name+"/"+string(df), func(t *testing.T) {
				d := readerDisk("disk-0", data)
				d.Open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(tc.src()), nil }
				dir := t.TempDir()
				_, err := pipeline.Export(context.Background(), newExporter(d), "vm-1", providers.ExportOptions{
					OutputDir: dir, Format: providers.FormatDisks, DiskFormat: df,
				})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("export returned %v, want a failure naming %q", err, tc.want)
				}
				if left := listDir(t, dir); len(left) != 0 {
					t.Errorf("failed export left %v", left)
				}
			})
		}
	}
}
