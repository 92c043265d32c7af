package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk/disktest"
	ovapkg "github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// shuffledJittery lists p's blocks out of order and delays each fetch by
// a random few milliseconds, so blocks finish out of order too.
func shuffledJittery(p *blockPlatform, seed uint64) *providers.BlockSource {
	rng := rand.New(rand.NewPCG(seed, 1))
	rng.Shuffle(len(p.blocks), func(i, j int) { p.blocks[i], p.blocks[j] = p.blocks[j], p.blocks[i] })
	src := p.source()
	fetch := src.Fetch
	src.Fetch = func(ctx context.Context, b providers.Block, dst []byte) (providers.BlockChecksums, error) {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		return fetch(ctx, b, dst)
	}
	return src
}

// A block source exported into object storage streams: blocks listed out
// of order and finished out of order are written in order into the
// object, zeros between them, with no file in the output root (the
// watch in exportToSink), no part file and no journal.
func TestBlockSourceStreamsIntoTheSink(t *testing.T) {
	const blockSize = 64 << 10
	capacity := int64(24<<20 + 3*512)
	data, listed := sparseDisk(7, capacity, blockSize)
	srcPath := writeSource(t, data)
	for _, df := range []providers.DiskFormat{providers.DiskRaw, providers.DiskQCOW2} {
		t.Run(string(df), func(t *testing.T) {
			p := newBlockPlatform("snap-7", data, slices.Clone(listed), blockSize)
			p.throttleShare = 0.05
			p.corrupt[listed[3].Offset/blockSize] = true // fetched again
			d := p.disk("disk-0")
			d.Blocks = shuffledJittery(p, 7)
			e := newExporter(d)
			sink := newMemSink()
			var (
				mu          sync.Mutex
				done, total int64
			)
			res, err := exportToSink(t, e, sink, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: df,
				Progress: func(pr progress.Report) {
					mu.Lock()
					defer mu.Unlock()
					if pr.Phase == progress.PhaseDownloading && pr.Item == "web01-disk-0."+string(df) {
						done, total = max(done, pr.ItemBytes), max(total, pr.ItemSize)
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			name := "web01-disk-0." + string(df)
			obj := sink.objects[name]
			if res.Files[0].SHA256 != sum(obj) {
				t.Errorf("result SHA-256 %s, the object's %s", res.Files[0].SHA256, sum(obj))
			}
			switch df {
			case providers.DiskRaw:
				if !bytes.Equal(obj, data) {
					t.Errorf("raw object differs from the source")
				}
			default:
				out := filepath.Join(t.TempDir(), name)
				if err := os.WriteFile(out, obj, 0o600); err != nil {
					t.Fatal(err)
				}
				disktest.Check(t, out, "qcow2")
				disktest.Compare(t, out, "qcow2", srcPath, "raw")
			}
			for cell, n := range p.delivered() {
				if want := 1 + b2i(p.corrupt[cell]); n != want {
					t.Errorf("cell %d delivered %d times, want %d", cell, n, want)
				}
			}
			if want := listedBytes(listed); done != want || total != want {
				t.Errorf("progress reached %d of %d bytes, want the %d listed", done, total, want)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A block that cannot be fetched fails the streamed export and nothing
// is committed.
func TestBlockSourceStreamFailureCommitsNothing(t *testing.T) {
	const blockSize = 64 << 10
	data, listed := sparseDisk(8, 8<<20, blockSize)
	for _, df := range []providers.DiskFormat{providers.DiskRaw, providers.DiskQCOW2} {
		t.Run(string(df), func(t *testing.T) {
			p := newBlockPlatform("snap-8", data, slices.Clone(listed), blockSize)
			bad := listed[len(listed)/2]
			delete(p.sums, bad.Offset/blockSize) // fetch: permanent "no block"
			d := p.disk("disk-0")
			d.Blocks = shuffledJittery(p, 8)
			e := newExporter(d)
			sink := newMemSink()
			_, err := exportToSink(t, e, sink, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: df, FinalAttempt: true})
			if err == nil || !providers.IsPermanent(err) {
				t.Fatalf("err = %v, want the block's permanent failure", err)
			}
			if len(sink.committed) != 0 || len(sink.objects) != 0 {
				t.Errorf("committed %v, objects left %d", sink.committed, len(sink.objects))
			}
		})
	}
}

// Two block disks stream into their members of an OVA object in turn,
// and the archive extracts and verifies to their bytes.
func TestBlockSourcesStreamIntoAnOVA(t *testing.T) {
	const blockSize = 64 << 10
	var (
		datas [][]byte
		disks []providers.DiskSource
	)
	for i := range 2 {
		data, listed := sparseDisk(uint64(20+i), int64(6<<20+i*4096+512), blockSize)
		p := newBlockPlatform(fmt.Sprintf("snap-%d", i), data, listed, blockSize)
		d := p.disk(fmt.Sprintf("disk-%d", i))
		d.Blocks = shuffledJittery(p, uint64(i))
		datas, disks = append(datas, data), append(disks, d)
	}
	sink := newMemSink()
	if _, err := exportToSink(t, newExporter(disks...), sink, providers.ExportOptions{Format: providers.FormatOVA, ParallelDownloads: 2}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "web01.ova")
	if err := os.WriteFile(path, sink.objects["web01.ova"], 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	rep, err := ovapkg.Extract(context.Background(), path, out, ovapkg.ExtractOptions{})
	if err != nil || !rep.Verified {
		t.Fatalf("extract: %v (verified %v)", err, rep != nil && rep.Verified)
	}
	for i, data := range datas {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("web01-disk-%d.vmdk", i)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(decodeVMDK(t, b), data) {
			t.Errorf("disk %d decodes to other bytes than its source", i)
		}
	}
}
