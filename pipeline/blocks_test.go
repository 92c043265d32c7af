package pipeline_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// blockPlatform is an in-memory block store as EBS direct or an Azure
// page blob serves it: it lists the blocks holding data and serves each
// with its SHA-256. It can throttle a share of requests, corrupt chosen
// blocks on their first delivery (the checksum then no longer matches),
// add latency to every request and count deliveries per block.
type blockPlatform struct {
	id        string
	capacity  int64
	blockSize int64
	blocks    []providers.Block // listed: the blocks holding data, in order
	// read fills dst with the disk's bytes at off.
	read func(off int64, dst []byte)
	sums map[int64][32]byte // per listed cell

	throttleShare float64
	corrupt       map[int64]bool // cells corrupted on their first delivery
	latency       time.Duration
	// onDeliver, when set, is called after each delivery with the number
	// of deliveries so far.
	onDeliver func(total int64)

	mu         sync.Mutex
	deliveries map[int64]int // per cell: fetches that returned bytes
	total      atomic.Int64
	throttled  atomic.Int64
	inFlight   atomic.Int64
	maxFlight  atomic.Int64
}

func (p *blockPlatform) source() *providers.BlockSource {
	return &providers.BlockSource{
		ID: p.id, BlockSize: p.blockSize,
		List: func(context.Context) iter.Seq2[providers.Block, error] {
			return func(yield func(providers.Block, error) bool) {
				for _, b := range p.blocks {
					if !yield(b, nil) {
						return
					}
				}
			}
		},
		Fetch: p.fetch,
	}
}

func (p *blockPlatform) disk(name string) providers.DiskSource {
	return providers.DiskSource{Name: name, Format: providers.SourceRaw, Capacity: p.capacity, Blocks: p.source()}
}

func (p *blockPlatform) fetch(ctx context.Context, b providers.Block, dst []byte) (providers.BlockChecksums, error) {
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	for m := p.maxFlight.Load(); n > m && !p.maxFlight.CompareAndSwap(m, n); m = p.maxFlight.Load() {
	}
	if p.latency > 0 {
		t := time.NewTimer(p.latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return providers.BlockChecksums{}, ctx.Err()
		}
	}
	if p.throttleShare > 0 && rand.Float64() < p.throttleShare {
		p.throttled.Add(1)
		return providers.BlockChecksums{}, fmt.Errorf("RequestThrottledException: %w", providers.ErrThrottled)
	}
	cell := b.Offset / p.blockSize
	sum, ok := p.sums[cell]
	if !ok || int64(len(dst)) != b.Length {
		return providers.BlockChecksums{}, providers.Permanent(fmt.Errorf("no block at %d", b.Offset))
	}
	p.read(b.Offset, dst)
	p.mu.Lock()
	p.deliveries[cell]++
	first := p.deliveries[cell] == 1
	p.mu.Unlock()
	if first && p.corrupt[cell] {
		dst[len(dst)/2] ^= 0x5a
	}
	total := p.total.Add(1)
	if p.onDeliver != nil {
		p.onDeliver(total)
	}
	return providers.BlockChecksums{SHA256: sum[:]}, nil
}

// delivered returns the deliveries per cell and clears them.
func (p *blockPlatform) delivered() map[int64]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.deliveries
	p.deliveries = map[int64]int{}
	p.total.Store(0)
	return d
}

// sparseDisk is a test disk of capacity bytes on a grid of blockSize
// cells: about half the cells hold random data and are listed, the rest
// are unlisted holes; one listed cell is explicitly all zeros; the
// capacity is not a multiple of the block size and the data ends at an
// unaligned offset inside the last (short, listed) block.
func sparseDisk(seed uint64, capacity, blockSize int64) (data []byte, listed []providers.Block) {
	data = make([]byte, capacity)
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), 1}))
	cells := (capacity + blockSize - 1) / blockSize
	zeroCell := cells / 3
	for c := range cells {
		off := c * blockSize
		length := min(blockSize, capacity-off)
		last := c == cells-1
		switch {
		case c == zeroCell, last, rng.IntN(2) == 0:
		default:
			continue // a hole: never listed
		}
		listed = append(listed, providers.Block{Offset: off, Length: length, Token: fmt.Sprintf("token-%d-%d", seed, c)})
		if c == zeroCell {
			continue
		}
		end := off + length
		if last {
			end = off + max(1, length*2/3-7) // data stops at an odd offset short of the disk's end
		}
		fill := data[off:end]
		for i := range fill {
			fill[i] = byte(rng.Uint32())
		}
		if !last {
			// Some zero runs inside data blocks, as file systems leave.
			clear(fill[rng.IntN(len(fill)/2):][:len(fill)/4])
		}
	}
	return data, listed
}

// newBlockPlatform serves data, listing listed.
func newBlockPlatform(id string, data []byte, listed []providers.Block, blockSize int64) *blockPlatform {
	p := &blockPlatform{
		id: id, capacity: int64(len(data)), blockSize: blockSize, blocks: listed,
		read:       func(off int64, dst []byte) { copy(dst, data[off:]) },
		sums:       map[int64][32]byte{},
		corrupt:    map[int64]bool{},
		deliveries: map[int64]int{},
	}
	for _, b := range listed {
		if b.Offset >= 0 && b.Length >= 0 && b.Offset+b.Length <= int64(len(data)) { // bad listings are tests' own
			p.sums[b.Offset/blockSize] = sha256.Sum256(data[b.Offset : b.Offset+b.Length])
		}
	}
	return p
}

func listedBytes(blocks []providers.Block) (n int64) {
	for _, b := range blocks {
		n += b.Length
	}
	return n
}

// writeSource writes data as a raw file for qemu-img compare.
func writeSource(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "source.raw")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func exportBlocks(ctx context.Context, dir string, df providers.DiskFormat, progressFn progress.Func, disks ...providers.DiskSource) (*providers.ExportResult, *exporter, error) {
	e := newExporter(disks...)
	res, err := pipeline.Export(ctx, e, "vm-1", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: df, Progress: progressFn,
	})
	return res, e, err
}

// wantHoles checks that the raw file at path is sparse: only the listed
// blocks holding data are allocated (the file system's SEEK_DATA says
// so); the explicit zero block and the unlisted cells are holes.
func wantHoles(t *testing.T, path string, data []byte, listed []providers.Block, blockSize int64) {
	t.Helper()
	dataCells := map[int64]bool{}
	for _, b := range listed {
		if !disk.IsZero(data[b.Offset : b.Offset+b.Length]) {
			dataCells[b.Offset/blockSize] = true
		}
	}
	img := disktest.OpenImage(t, path, disk.OpenRaw)
	for _, e := range disktest.Extents(t, img) {
		for c := e.Offset / blockSize; c*blockSize < e.End(); c++ {
			if !dataCells[c] {
				t.Errorf("cell %d (%d bytes at %d) is allocated, but no listed block holds data there", c, blockSize, c*blockSize)
			}
		}
	}
	// Extent trees take a few blocks of their own.
	if alloc, limit := disktest.Allocated(t, path), nonZeroBytes(data, listed)+64<<10; alloc > limit {
		t.Errorf("raw disk allocates %d bytes, more than its %d bytes of non-zero blocks", alloc, limit)
	}
}

// nonZeroBytes is the bytes of listed blocks that are not all zeros:
// what a sparse output may allocate.
func nonZeroBytes(data []byte, listed []providers.Block) (n int64) {
	for _, b := range listed {
		if !disk.IsZero(data[b.Offset : b.Offset+b.Length]) {
			n += b.Length
		}
	}
	return n
}

func TestBlockSourceExportsRawByteIdenticalAndSparse(t *testing.T) {
	const blockSize = 64 << 10
	capacity := int64(24<<20 + 5*512) // not a multiple of the block size
	data, listed := sparseDisk(1, capacity, blockSize)
	srcPath := writeSource(t, data)
	for _, tc := range []struct {
		name          string
		throttle      float64
		corruptShare  float64
		wantThrottled bool
	}{
		{name: "clean"},
		{name: "throttled and corrupted", throttle: 0.2, corruptShare: 0.02, wantThrottled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newBlockPlatform("snap-1", data, listed, blockSize)
			p.throttleShare = tc.throttle
			rng := rand.New(rand.NewPCG(7, 7))
			for _, b := range listed {
				if rng.Float64() < tc.corruptShare {
					p.corrupt[b.Offset/blockSize] = true
				}
			}
			if tc.corruptShare > 0 && len(p.corrupt) == 0 {
				p.corrupt[listed[0].Offset/blockSize] = true
			}
			dir := t.TempDir()
			var rec recorder
			res, e, err := exportBlocks(context.Background(), dir, providers.DiskRaw, rec.add, p.disk("disk-0"))
			if err != nil {
				t.Fatal(err)
			}
			e.wantEnded(t, false)
			name := "web01-disk-0.raw"
			if got, want := listDir(t, dir), []string{name, "web01.json", "web01.sha256"}; !slices.Equal(got, want) {
				t.Errorf("output %v, want %v (no part file or journal left)", got, want)
			}
			out := filepath.Join(dir, name)
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != capacity {
				t.Errorf("raw disk is %d bytes, want the capacity %d", fi.Size(), capacity)
			}
			want := sum(data)
			if got := disktest.FileSHA256(t, out); got != want {
				t.Errorf("raw disk SHA-256 %s, source %s", got, want)
			}
			if f := diskFile(res); f.SHA256 != want || f.Size != capacity {
				t.Errorf("result %+v, want SHA-256 %s and %d bytes", f, want, capacity)
			}
			disktest.Compare(t, out, "raw", srcPath, "raw")
			wantHoles(t, out, data, listed, blockSize)
			got := p.delivered()
			for _, b := range listed {
				c := b.Offset / blockSize
				want := 1
				if p.corrupt[c] {
					want = 2
				}
				if got[c] != want {
					t.Errorf("block %d delivered %d times, want %d", c, got[c], want)
				}
			}
			if len(got) != len(listed) {
				t.Errorf("%d blocks delivered, %d listed", len(got), len(listed))
			}
			if tc.wantThrottled && p.throttled.Load() == 0 {
				t.Error("the platform throttled no request")
			}
			last := rec.lastDownload()
			if total := listedBytes(listed); last.BytesTotal != total || last.BytesDone != total || last.ItemSize != total {
				t.Errorf("last download report %+v, want %d of %d bytes (the listed blocks)", last, total, total)
			}
		})
	}
}

func diskFile(res *providers.ExportResult) providers.ExportedFile {
	for _, f := range res.Files {
		if f.Kind == "disk" {
			return f
		}
	}
	return providers.ExportedFile{}
}

func TestBlockSourceExportsImageFormats(t *testing.T) {
	const blockSize = 32 << 10
	capacity := int64(16<<20 + 3*512)
	data, listed := sparseDisk(2, capacity, blockSize)
	srcPath := writeSource(t, data)
	for _, tc := range []struct {
		df   providers.DiskFormat
		qemu string
	}{
		{providers.DiskQCOW2, "qcow2"},
		{providers.DiskVHDX, "vhdx"},
		{providers.DiskVMDK, "vmdk"},
	} {
		t.Run(string(tc.df), func(t *testing.T) {
			p := newBlockPlatform("snap-2", data, listed, blockSize)
			p.throttleShare = 0.1
			dir := t.TempDir()
			res, _, err := exportBlocks(context.Background(), dir, tc.df, nil, p.disk("disk-0"))
			if err != nil {
				t.Fatal(err)
			}
			name := "web01-disk-0." + string(tc.df)
			if got, want := listDir(t, dir), []string{name, "web01.json", "web01.sha256"}; !slices.Equal(got, want) {
				t.Errorf("output %v, want %v", got, want)
			}
			out := filepath.Join(dir, name)
			if tc.qemu != "vhdx" {
				disktest.Check(t, out, tc.qemu)
			}
			disktest.Compare(t, out, tc.qemu, srcPath, "raw")
			if info := disktest.QemuInfo(t, out, tc.qemu); info.VirtualSize < capacity {
				t.Errorf("virtual size %d, want at least %d", info.VirtualSize, capacity)
			}
			if f := diskFile(res); f.SHA256 != disktest.FileSHA256(t, out) {
				t.Errorf("result SHA-256 %s does not match the file", f.SHA256)
			}
		})
	}
}

func TestBlockSourceResumesAfterCancel(t *testing.T) {
	const blockSize = 8 << 10 // many blocks, so that in-flight ones are few percent
	capacity := int64(32<<20 + 512)
	data, listed := sparseDisk(3, capacity, blockSize)
	srcPath := writeSource(t, data)
	for _, df := range []providers.DiskFormat{providers.DiskRaw, providers.DiskQCOW2} {
		t.Run(string(df), func(t *testing.T) {
			p := newBlockPlatform("snap-3", data, listed, blockSize)
			p.latency = time.Millisecond
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			stopAt := int64(len(listed) * 2 / 5)
			p.onDeliver = func(n int64) {
				if n == stopAt {
					cancel()
				}
			}
			_, e, err := exportBlocks(ctx, dir, df, nil, p.disk("disk-0"))
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled export returned %v", err)
			}
			e.wantEnded(t, true)
			stage := "web01-disk-0." + string(df)
			if df != providers.DiskRaw {
				stage += ".src"
			}
			if got, want := listDir(t, dir), []string{stage + ".journal", stage + ".part"}; !slices.Equal(got, want) {
				t.Fatalf("cancelled export left %v, want %v", got, want)
			}
			first := p.delivered()
			p.onDeliver = nil

			res, _, err := exportBlocks(context.Background(), dir, df, nil, p.disk("disk-0"))
			if err != nil {
				t.Fatal(err)
			}
			second := p.delivered()
			// The result counts exactly the listed bytes not fetched again.
			var resumed int64
			for _, b := range listed {
				if second[b.Offset/blockSize] == 0 {
					resumed += b.Length
				}
			}
			if res.ResumedBytes != resumed || resumed == 0 {
				t.Errorf("result reports %d resumed bytes, the platform served all but %d", res.ResumedBytes, resumed)
			}
			again := 0
			for c := range second {
				if first[c] > 0 {
					again++
				}
			}
			if len(second)+len(first)-again != len(listed) {
				t.Errorf("%d + %d blocks delivered (%d twice), %d listed", len(first), len(second), again, len(listed))
			}
			// Only the blocks in flight at the cancellation come again.
			if limit := len(listed) * 3 / 100; again > limit {
				t.Errorf("the resumed export fetched %d blocks again (of %d fetched before), want at most %d", again, len(first), limit)
			}
			t.Logf("%d blocks listed; %d fetched before the cancellation, %d fetched again after it", len(listed), len(first), again)
			name := "web01-disk-0." + string(df)
			if got, want := listDir(t, dir), []string{name, "web01.json", "web01.sha256"}; !slices.Equal(got, want) {
				t.Errorf("output %v, want %v", got, want)
			}
			out := filepath.Join(dir, name)
			if df == providers.DiskRaw {
				if got := disktest.FileSHA256(t, out); got != sum(data) {
					t.Errorf("resumed raw disk SHA-256 %s, source %s", got, sum(data))
				}
			}
			disktest.Compare(t, out, string(df), srcPath, "raw")
		})
	}
}

// interrupt runs an export of p into dir and cancels it after stopAt
// blocks arrived, leaving a part file and a journal.
func interrupt(t *testing.T, dir string, p *blockPlatform, stopAt int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.onDeliver = func(n int64) {
		if n == stopAt {
			cancel()
		}
	}
	if _, _, err := exportBlocks(ctx, dir, providers.DiskRaw, nil, p.disk("disk-0")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export returned %v", err)
	}
	p.onDeliver = nil
	p.delivered()
}

func TestBlockSourceIgnoresAnotherSourcesJournal(t *testing.T) {
	const blockSize = 16 << 10
	capacity := int64(8 << 20)
	dataA, listedA := sparseDisk(4, capacity, blockSize)
	dataB, listedB := sparseDisk(5, capacity, blockSize)
	dir := t.TempDir()
	a := newBlockPlatform("snap-A", dataA, listedA, blockSize)
	a.latency = time.Millisecond
	interrupt(t, dir, a, int64(len(listedA)/2))

	b := newBlockPlatform("snap-B", dataB, listedB, blockSize)
	if _, _, err := exportBlocks(context.Background(), dir, providers.DiskRaw, nil, b.disk("disk-0")); err != nil {
		t.Fatal(err)
	}
	if got := disktest.FileSHA256(t, filepath.Join(dir, "web01-disk-0.raw")); got != sum(dataB) {
		t.Errorf("disk SHA-256 %s, want snap-B's %s", got, sum(dataB))
	}
	if got := b.delivered(); len(got) != len(listedB) {
		t.Errorf("%d of snap-B's %d blocks fetched: another source's journal was trusted", len(got), len(listedB))
	}
}

func TestBlockSourceSurvivesATornJournal(t *testing.T) {
	const blockSize = 16 << 10
	capacity := int64(8<<20 + 1024)
	data, listed := sparseDisk(6, capacity, blockSize)
	dir := t.TempDir()
	p := newBlockPlatform("snap-6", data, listed, blockSize)
	p.latency = time.Millisecond
	// Two interrupted attempts: two batches in the journal.
	interrupt(t, dir, p, int64(len(listed)/4))
	interrupt(t, dir, p, int64(len(listed)/4))
	// A crash in the middle of appending a batch leaves it short.
	journal := filepath.Join(dir, "web01-disk-0.raw.journal")
	fi, err := os.Stat(journal)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(journal, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	if _, _, err := exportBlocks(context.Background(), dir, providers.DiskRaw, nil, p.disk("disk-0")); err != nil {
		t.Fatal(err)
	}
	if got := disktest.FileSHA256(t, filepath.Join(dir, "web01-disk-0.raw")); got != sum(data) {
		t.Errorf("disk SHA-256 %s after a torn journal, want %s", got, sum(data))
	}
	if got := p.delivered(); len(got) == 0 || len(got) >= len(listed) {
		t.Errorf("%d of %d blocks fetched after a torn journal: want those of the torn batch and the rest", len(got), len(listed))
	}
}

func TestBlockSourcePermanentFailureRemovesPartials(t *testing.T) {
	const blockSize = 16 << 10
	data, listed := sparseDisk(7, 4<<20, blockSize)
	p := newBlockPlatform("snap-7", data, listed, blockSize)
	src := p.source()
	var calls atomic.Int64
	denied := providers.Permanent(fmt.Errorf("AccessDeniedException: %w", providers.ErrAuth))
	src.Fetch = func(ctx context.Context, b providers.Block, dst []byte) (providers.BlockChecksums, error) {
		if calls.Add(1) > 20 {
			return providers.BlockChecksums{}, denied
		}
		return p.fetch(ctx, b, dst)
	}
	d := p.disk("disk-0")
	d.Blocks = src
	dir := t.TempDir()
	_, e, err := exportBlocks(context.Background(), dir, providers.DiskRaw, nil, d)
	if !errors.Is(err, providers.ErrAuth) || !providers.IsPermanent(err) {
		t.Fatalf("export returned %v, want the permanent auth failure", err)
	}
	e.wantEnded(t, true)
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("permanently failed export left %v", left)
	}
}

func TestBlockSourceRefreshesExpiredAccess(t *testing.T) {
	const blockSize = 16 << 10
	data, listed := sparseDisk(8, 4<<20, blockSize)
	p := newBlockPlatform("snap-8", data, listed, blockSize)
	src := p.source()
	var grant, refreshes atomic.Int64
	src.Fetch = func(ctx context.Context, b providers.Block, dst []byte) (providers.BlockChecksums, error) {
		// The first grant expires after 30 deliveries.
		if grant.Load() == 0 && p.total.Load() >= 30 {
			return providers.BlockChecksums{}, fmt.Errorf("AuthenticationFailed: signed expiry time has passed: %w", providers.ErrExpired)
		}
		return p.fetch(ctx, b, dst)
	}
	src.Refresh = func(context.Context) error {
		refreshes.Add(1)
		grant.Add(1)
		return nil
	}
	d := p.disk("disk-0")
	d.Blocks = src
	dir := t.TempDir()
	if _, _, err := exportBlocks(context.Background(), dir, providers.DiskRaw, nil, d); err != nil {
		t.Fatal(err)
	}
	if n := refreshes.Load(); n != 1 {
		t.Errorf("access renewed %d times, want once for every worker that saw it expire", n)
	}
	if got := disktest.FileSHA256(t, filepath.Join(dir, "web01-disk-0.raw")); got != sum(data) {
		t.Errorf("disk SHA-256 %s, want %s", got, sum(data))
	}
	for c, n := range p.delivered() {
		if n != 1 {
			t.Errorf("block %d delivered %d times", c, n)
		}
	}
}

func TestBlockSourceRefusesBadListings(t *testing.T) {
	const blockSize = 16 << 10
	data, listed := sparseDisk(9, 1<<20, blockSize)
	for _, tc := range []struct {
		name  string
		block providers.Block
	}{
		{"past the end", providers.Block{Offset: 1<<20 - 512, Length: 1024}},
		{"across cells", providers.Block{Offset: blockSize - 512, Length: 1024}},
		{"twice", listed[0]},
		{"empty", providers.Block{Offset: 0, Length: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newBlockPlatform("snap-9", data, append(slices.Clone(listed), tc.block), blockSize)
			dir := t.TempDir()
			_, _, err := exportBlocks(context.Background(), dir, providers.DiskRaw, nil, p.disk("disk-0"))
			if err == nil || !providers.IsPermanent(err) {
				t.Fatalf("export of a bad listing returned %v, want a permanent failure", err)
			}
			if left := listDir(t, dir); len(left) != 0 {
				t.Errorf("refused listing left %v", left)
			}
		})
	}
}

// Memory stays flat: what the export allocates is bounded by its block
// buffers, not by the disk's size.
func TestBlockSourceMemoryIsBounded(t *testing.T) {
	const blockSize = 64 << 10
	capacity := int64(48 << 20)
	data, listed := sparseDisk(10, capacity, blockSize)
	p := newBlockPlatform("snap-10", data, listed, blockSize)
	dir := t.TempDir()
	var before, after runtimeMem
	before.read()
	if _, _, err := exportBlocks(context.Background(), dir, providers.DiskRaw, nil, p.disk("disk-0")); err != nil {
		t.Fatal(err)
	}
	after.read()
	allocated := after.total - before.total
	// 64 workers × 64 KiB buffers, the read-back buffers and small change.
	if limit := uint64(12 << 20); allocated > limit {
		t.Errorf("exporting %d MiB of blocks allocated %d MiB, want at most %d MiB", listedBytes(listed)>>20, allocated>>20, limit>>20)
	}
	t.Logf("exporting %d MiB of blocks allocated %.1f MiB", listedBytes(listed)>>20, float64(allocated)/(1<<20))
}

// runtimeMem is the allocation counter of the runtime.
type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.total = s.TotalAlloc
}

// TestBlockSourceResumeStateKeptOnlyWhileAnAttemptFollows: a failure that
// may heal keeps the part file and journal for the next attempt, unless
// no attempt follows (the job's last attempt, or a cancel with
// providers.ErrAbandoned); a last attempt cancelled for another reason
// (the daemon shutting down hands the job back) keeps them.
func TestBlockSourceResumeStateKeptOnlyWhileAnAttemptFollows(t *testing.T) {
	const blockSize = 16 << 10
	data, listed := sparseDisk(8, 4<<20, blockSize)
	listFailure := errors.New("ListSnapshotBlocks: connection reset")
	for _, tc := range []struct {
		name   string
		final  bool
		cancel error // cancel cause after some blocks; nil: List fails
		kept   bool
	}{
		{name: "transient failure, attempts follow", kept: true},
		{name: "transient failure, last attempt", final: true},
		{name: "cancelled: abandoned", cancel: providers.ErrAbandoned},
		{name: "cancelled: shutdown, last attempt", final: true, cancel: errors.New("daemon shutting down"), kept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newBlockPlatform("snap-8", data, listed, blockSize)
			p.latency = time.Millisecond
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			src := p.source()
			if tc.cancel != nil {
				p.onDeliver = func(n int64) {
					if n == int64(len(listed)/3) {
						cancel(tc.cancel)
					}
				}
			} else {
				src.List = func(context.Context) iter.Seq2[providers.Block, error] {
					return func(yield func(providers.Block, error) bool) {
						for _, b := range listed[:len(listed)/2] {
							if !yield(b, nil) {
								return
							}
						}
						yield(providers.Block{}, listFailure)
					}
				}
			}
			d := p.disk("disk-0")
			d.Blocks = src
			dir := t.TempDir()
			e := newExporter(d)
			_, err := pipeline.Export(ctx, e, "vm-1", providers.ExportOptions{
				OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, FinalAttempt: tc.final,
			})
			if err == nil || providers.IsPermanent(err) {
				t.Fatalf("export returned %v, want a failure that may heal", err)
			}
			e.wantEnded(t, true)
			var want []string
			if tc.kept {
				want = []string{"web01-disk-0.raw.journal", "web01-disk-0.raw.part"}
			}
			if got := listDir(t, dir); !slices.Equal(got, want) {
				t.Errorf("the failed export left %v, want %v", got, want)
			}
		})
	}
}
