package pipeline_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// streamExporter hands over disks that one stream fills: its Fill writes
// the disks' non-zero 4 KiB blocks in a shuffled order across all disks,
// as a VMA archive's clusters arrive, from one goroutine.
type streamExporter struct {
	*exporter
	data [][]byte
	// failAfter, when > 0, fails Fill after that many blocks.
	failAfter int
	// fillCalls counts Fill calls; sinkSizes records the sinks' sizes.
	fillCalls int
	sinkSizes []int64
}

var errStreamBroke = errors.New("the stream broke")

func newStreamExporter(data ...[]byte) *streamExporter {
	var disks []providers.DiskSource
	for i, d := range data {
		disks = append(disks, providers.DiskSource{Name: "disk-" + string(rune('0'+i)), Format: providers.SourceRaw,
			Capacity: int64(len(d)), Size: -1, Filled: true})
	}
	return &streamExporter{exporter: newExporter(disks...), data: data}
}

func (s *streamExporter) PrepareExport(ctx context.Context, id string, opts providers.ExportOptions) (*providers.Export, error) {
	exp, err := s.exporter.PrepareExport(ctx, id, opts)
	if err != nil {
		return nil, err
	}
	exp.Fill = s.fill
	return exp, nil
}

func (s *streamExporter) fill(ctx context.Context, sinks []io.WriterAt, report func(done, total int64)) error {
	s.fillCalls++
	if len(sinks) != len(s.data) {
		return errors.New("wrong number of sinks")
	}
	type block struct{ disk, off int }
	var blocks []block
	var total int64
	for d, b := range s.data {
		total += int64(len(b))
		if f, ok := sinks[d].(*os.File); ok {
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			s.sinkSizes = append(s.sinkSizes, fi.Size())
		}
		for off := 0; off < len(b); off += 4096 {
			blocks = append(blocks, block{d, off})
		}
	}
	rand.New(rand.NewPCG(3, 3)).Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	var done int64
	for n, bl := range blocks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.failAfter > 0 && n == s.failAfter {
			return errStreamBroke
		}
		b := s.data[bl.disk][bl.off:min(bl.off+4096, len(s.data[bl.disk]))]
		if !isZero(b) {
			if _, err := sinks[bl.disk].WriteAt(b, int64(bl.off)); err != nil {
				return err
			}
		}
		done += int64(len(b))
		if n%64 == 0 {
			report(done, total)
		}
	}
	report(done, total)
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Filled disks come out of one Fill call as raw disks byte-identical to
// the source, sparse, exactly their capacity long, with honest progress;
// and as qcow2 disks qemu-img finds identical; nothing else is left in
// the output directory.
func TestFilledDisksExportFromOneStream(t *testing.T) {
	disktest.QemuImg(t)
	a := diskBytes(1, 3<<20+3*512) // not a multiple of 4 KiB
	b := diskBytes(2, 2<<20)
	for _, tc := range []struct {
		format providers.DiskFormat
		want   []string
	}{
		{providers.DiskRaw, []string{"web01-disk-0.raw", "web01-disk-1.raw", "web01.json", "web01.sha256"}},
		{providers.DiskQCOW2, []string{"web01-disk-0.qcow2", "web01-disk-1.qcow2", "web01.json", "web01.sha256"}},
	} {
		t.Run(string(tc.format), func(t *testing.T) {
			dir := t.TempDir()
			e := newStreamExporter(a, b)
			var rec recorder
			res, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{
				OutputDir: dir, Format: providers.FormatDisks, DiskFormat: tc.format, Progress: rec.add, ParallelDownloads: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			e.wantEnded(t, false)
			if e.fillCalls != 1 {
				t.Errorf("Fill called %d times", e.fillCalls)
			}
			if !slices.Equal(e.sinkSizes, []int64{int64(len(a)), int64(len(b))}) {
				t.Errorf("sinks of %v bytes, want the capacities", e.sinkSizes)
			}
			if got := listDir(t, dir); !slices.Equal(got, tc.want) {
				t.Errorf("output %v, want %v", got, tc.want)
			}
			for i, src := range [][]byte{a, b} {
				out := filepath.Join(dir, tc.want[i])
				srcPath := writeSource(t, src)
				if tc.format == providers.DiskRaw {
					if got, want := disktest.FileSHA256(t, out), sum(src); got != want {
						t.Errorf("%s: SHA-256 %s, source %s", out, got, want)
					}
					fi, err := os.Stat(out)
					if err != nil {
						t.Fatal(err)
					}
					if fi.Size() != int64(len(src)) {
						t.Errorf("%s: %d bytes, want %d", out, fi.Size(), len(src))
					}
					// diskBytes leaves every third 64 KiB block a hole.
					if alloc := disktest.Allocated(t, out); alloc > int64(len(src))*3/4 {
						t.Errorf("%s: %d of %d bytes allocated: holes filled", out, alloc, len(src))
					}
				} else {
					disktest.Check(t, out, "qcow2")
				}
				disktest.Compare(t, out, string(tc.format), srcPath, "raw")
				f := res.Files[i]
				if f.Path != tc.want[i] || f.Kind != "disk" {
					t.Errorf("result file %d: %+v", i, f)
				}
			}
			last := rec.lastDownload()
			total := int64(len(a) + len(b))
			if last.BytesTotal != total || last.BytesDone != total {
				t.Errorf("last download report %+v, want %d of %d", last, total, total)
			}
			rec.mu.Lock()
			for _, p := range rec.reports {
				if p.Phase == progress.PhaseDownloading && (p.BytesTotal != 0 && p.BytesDone > p.BytesTotal) {
					t.Errorf("report %+v: done above total", p)
				}
			}
			rec.mu.Unlock()
		})
	}
}

// A Fill that fails mid-stream fails the export, which removes every
// file it created (a stream is not resumed) and tells the platform.
func TestFilledDisksFailureRemovesEveryFile(t *testing.T) {
	for _, format := range []providers.DiskFormat{providers.DiskRaw, providers.DiskVMDK} {
		dir := t.TempDir()
		e := newStreamExporter(diskBytes(1, 1<<20), diskBytes(2, 1<<20))
		e.failAfter = 100
		_, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{
			OutputDir: dir, Format: providers.FormatDisks, DiskFormat: format,
		})
		if !errors.Is(err, errStreamBroke) {
			t.Fatalf("%s: export: %v, want the stream's error", format, err)
		}
		e.wantEnded(t, true)
		if left := listDir(t, dir); len(left) != 0 {
			t.Errorf("%s: a failed stream left %v", format, left)
		}
	}
}

// Filled disks without a Fill, and a Fill without Filled disks, are
// refused before anything is written.
func TestFilledDisksNeedAFill(t *testing.T) {
	e := newExporter(providers.DiskSource{Name: "disk-0", Format: providers.SourceRaw, Capacity: 1 << 20, Filled: true})
	_, err := pipeline.Export(context.Background(), e, "vm-1", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw})
	if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "no Fill") {
		t.Errorf("filled disk without Fill: %v", err)
	}
	s := newStreamExporter(diskBytes(1, 1<<20))
	s.disks[0].Filled = false
	s.disks[0].Open = readerDisk("disk-0", s.data[0]).Open
	_, err = pipeline.Export(context.Background(), s, "vm-1", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw})
	if err == nil || !strings.Contains(err.Error(), "no disk is Filled") {
		t.Errorf("Fill without filled disks: %v", err)
	}
}
