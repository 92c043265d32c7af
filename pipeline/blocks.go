package pipeline

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // Azure's range checksum; verified, not trusted for security
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/providers"
)

// Block download tuning. The concurrency follows coldsnap (64 workers
// against EBS direct), reached by slow start from 16.
const (
	blockStartConcurrency = 16
	blockMaxConcurrency   = 64
	// blockBufferBudget caps the memory of block buffers: workers ×
	// BlockSize stays within it.
	blockBufferBudget = 64 << 20
	maxBlockSize      = 64 << 20
	blockFetchTimeout = 2 * time.Minute
	// blockAttempts is how many times one block is tried before the
	// export attempt fails (the job engine retries it, resuming).
	blockAttempts = 10
	// The journal is written after every journalSyncBytes of written
	// data or journalSyncInterval, whichever comes first: a crash loses
	// at most that much work, and dirty pages stay bounded.
	journalSyncBytes    = 64 << 20
	journalSyncInterval = 2 * time.Second
	journalMaxBatch     = 1 << 16 // cells, zero blocks included
)

// blockRetry spaces the attempts of one block.
var blockRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.5}

// errBlockChecksum: a block's bytes do not match the checksum the
// platform sent with them (corrupted in transit): fetched again.
var errBlockChecksum = errors.New("block checksum mismatch")

// checkBlockSource refuses a block source the engine cannot work with.
func checkBlockSource(d *providers.DiskSource) error {
	b := d.Blocks
	switch {
	case d.Format != providers.SourceRaw:
		return fmt.Errorf("disk %s: a block source serves raw disk bytes, not %q", d.Name, d.Format)
	case d.Capacity <= 0:
		return fmt.Errorf("disk %s: a block source needs its capacity", d.Name)
	case b.BlockSize <= 0 || b.BlockSize%512 != 0 || b.BlockSize > maxBlockSize:
		return fmt.Errorf("disk %s: block size %d is not a multiple of 512 up to %d", d.Name, b.BlockSize, maxBlockSize)
	case b.List == nil || b.Fetch == nil:
		return fmt.Errorf("disk %s: a block source needs List and Fetch", d.Name)
	}
	return nil
}

// blockFiles names the files of a block download: the raw part file the
// blocks are written into and its journal. A raw export's part file
// becomes the disk; other formats are encoded from it.
func (r *run) blockFiles(it *item) (part, journal string) {
	stage := it.name
	if r.opts.DiskFormat != providers.DiskRaw {
		stage += ".src"
	}
	return stage + ".part", stage + ".journal"
}

// fetchBlocks produces a block source item: its blocks fetched into a
// sparse raw part file (resuming from the journal an earlier attempt
// left), the file then hashed, or encoded in the requested format. The
// part file and journal outlive a failure that may heal (Export removes
// them on a permanent one). Into object storage the blocks stream instead
// (streamBlocks).
func (r *run) fetchBlocks(ctx context.Context, it *item, report func(done, total int64)) error {
	if r.sink != nil {
		return r.streamBlocks(ctx, it, report)
	}
	d := it.disk
	src := d.Blocks
	partName, journalName := r.blockFiles(it)
	r.notePartial(partName, journalName)
	part, err := safepath.OpenFile(r.root, partName, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return providers.Permanent(fmt.Errorf("output %w", err))
	}
	cells := (d.Capacity + src.BlockSize - 1) / src.BlockSize
	id := journalIdentity{Source: src.ID, Capacity: d.Capacity, BlockSize: src.BlockSize}
	var (
		j       *blockJournal
		done    cellSet
		resumed bool
	)
	if src.ID != "" {
		j, done, resumed, err = openJournal(r.root, journalName, id, cells)
		if err != nil {
			part.Close()
			return providers.Permanent(fmt.Errorf("output %w", err))
		}
		defer j.Close()
	} else {
		done = newCellSet(cells)
	}
	if resumed {
		// The journal is only trusted with the part file it was kept with.
		if fi, err := part.Stat(); err != nil || fi.Size() != d.Capacity {
			resumed, done = false, newCellSet(cells)
		}
	}
	if !resumed {
		// The part file is emptied before the journal names the new source.
		err = part.Truncate(0)
		if err == nil {
			err = part.Truncate(d.Capacity) // all holes
		}
		if err == nil && j != nil {
			err = j.reset(id)
		}
		if err != nil {
			part.Close()
			return fmt.Errorf("write %s: %w", partName, err)
		}
	}
	e := r.newBlockEngine(d, report)
	e.file, e.journal, e.done = part, j, done
	start := time.Now()
	err = e.run(ctx)
	r.resumed.Add(e.resumedBytes.Load())
	e.logDone(r, start, err)
	if err != nil {
		part.Close()
		return err
	}
	if r.opts.DiskFormat == providers.DiskRaw {
		if err := r.keepRaw(ctx, it, part, partName, d.Capacity); err != nil {
			return err
		}
	} else {
		err = r.encodeRawFile(ctx, it, part, partName, d.Capacity)
		part.Close()
		if err != nil {
			return err
		}
		if err := r.root.Remove(partName); err != nil {
			return err
		}
	}
	if j != nil {
		_ = r.root.Remove(journalName)
	}
	r.dropPartial(partName, journalName)
	return nil
}

// newBlockEngine returns the engine of block source disk d, without its
// part file and journal.
func (r *run) newBlockEngine(d *providers.DiskSource, report func(done, total int64)) *blockEngine {
	e := &blockEngine{src: d.Blocks, disk: d.Name, capacity: d.Capacity, timeout: d.Blocks.Timeout, report: report}
	if e.timeout <= 0 {
		e.timeout = blockFetchTimeout
	}
	if r.opts.BandwidthLimit > 0 {
		e.bandwidth = rate.NewLimiter(rate.Limit(r.opts.BandwidthLimit), int(d.Blocks.BlockSize))
	}
	return e
}

// logDone logs what the download of a disk's blocks did.
func (e *blockEngine) logDone(r *run, start time.Time, err error) {
	limit, peak := 0, 0
	if e.limiter != nil {
		limit, peak = e.limiter.state()
	}
	r.log.Info("disk blocks fetched", "disk", e.disk, "resumed_blocks", e.skipped.Load(), "fetched_blocks", e.fetched.Load(),
		"bytes", e.doneBytes.Load(), "throttled", e.throttled.Load(), "checksum_mismatches", e.mismatches.Load(),
		"retries", e.retries.Load(), "concurrency", limit, "peak_concurrency", peak,
		"syncs", e.syncs, "sync_ms", e.syncTime.Milliseconds(), "duration", time.Since(start).Round(time.Millisecond).String(), "error", err)
}

// encodeRawFile encodes the complete raw disk in f in the requested disk
// format, through the same writers as every other source: its data
// extents (SEEK_DATA) for the image writers, its bytes for VMDK.
func (r *run) encodeRawFile(ctx context.Context, it *item, f *os.File, name string, capacity int64) error {
	img, err := disk.OpenRaw(&disk.File{Name: name, R: f, Size: capacity})
	if err != nil {
		return err
	}
	return r.encode(ctx, it, io.NewSectionReader(f, 0, capacity), disk.FromImage(img))
}

// hashSparse feeds the capacity bytes of the raw file f to h, reading
// only its data: holes are hashed as the zeros they read as.
func hashSparse(ctx context.Context, h io.Writer, f *os.File, name string, capacity int64) error {
	img, err := disk.OpenRaw(&disk.File{Name: name, R: f, Size: capacity})
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	zeros := make([]byte, len(buf))
	hashZeros := func(n int64) {
		for n > 0 {
			k := min(n, int64(len(zeros)))
			h.Write(zeros[:k])
			n -= k
		}
	}
	var off int64
	for e, err := range img.Extents() {
		if err != nil {
			return err
		}
		hashZeros(e.Offset - off)
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, e.Offset, e.Length), buf); err != nil {
			return fmt.Errorf("read back %s: %w", name, err)
		}
		off = e.End()
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
	}
	hashZeros(capacity - off)
	return nil
}

// blockEngine downloads the listed blocks of one source into its part
// file. Goroutines: one lister, up to blockMaxConcurrency workers gated
// by the adaptive limiter, one journal writer.
type blockEngine struct {
	src       *providers.BlockSource
	disk      string
	capacity  int64
	file      *os.File
	journal   *blockJournal // nil: no resume for this source
	done      cellSet       // cells durable from an earlier attempt
	timeout   time.Duration
	bandwidth *rate.Limiter // nil: unlimited
	// report tells the bytes of finished blocks and, once the listing
	// ended, the bytes of all listed blocks (-1 until then).
	report  func(done, total int64)
	limiter *aimd

	refreshMu  sync.Mutex
	refreshGen atomic.Uint64

	doneBytes, listedBytes, resumedBytes             atomic.Int64
	skipped, fetched, throttled, mismatches, retries atomic.Int64
	syncs                                            int
	syncTime                                         time.Duration
}

// finished is a block whose bytes are in the part file.
type finished struct {
	cell    int64
	written int64 // bytes written (0 for an all-zero block)
}

// workers is how many fetchers the engine runs: the concurrency cap,
// lowered by the block buffer budget and the source's own cap.
func (e *blockEngine) workers() int {
	n := min(blockMaxConcurrency, max(1, int(blockBufferBudget/e.src.BlockSize)))
	if e.src.MaxConcurrency > 0 {
		n = min(n, e.src.MaxConcurrency)
	}
	return n
}

func (e *blockEngine) run(ctx context.Context) error {
	workers := e.workers()
	e.limiter = newAIMD(blockStartConcurrency, workers)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel(err) })
	}

	work := make(chan providers.Block, workers)
	results := make(chan finished, workers)
	journalDone := make(chan error, 1)
	go func() { journalDone <- e.writeJournal(results, fail) }()

	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(work)
		if err := e.list(ctx, work); err != nil {
			fail(err)
		}
	})
	var fetchers sync.WaitGroup
	for range workers {
		fetchers.Go(func() {
			// Allocated on first use: idle workers hold nothing. Freed
			// once the worker has finished its last block.
			var (
				buf  []byte
				free = func() {}
			)
			defer func() { free() }()
			for b := range work {
				if buf == nil {
					buf, free = newBlockBuffer(int(e.src.BlockSize))
				}
				f, err := e.fetchBlock(ctx, b, buf[:b.Length])
				if err != nil {
					fail(err)
					continue // drain work so the lister ends
				}
				results <- f
			}
		})
	}
	fetchers.Wait()
	close(results)
	wg.Wait()
	// Blocks written before a failure are journaled all the same: they
	// are what the next attempt will not fetch again.
	if err := <-journalDone; err != nil {
		fail(err)
	}
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	return nil
}

// list checks every listed block and hands those still missing to the
// workers. The total becomes known when the listing ends.
func (e *blockEngine) list(ctx context.Context, work chan<- providers.Block) error {
	bs := e.src.BlockSize
	cells := int64(len(e.done)) * 64
	seen := newCellSet(cells)
	for b, err := range e.src.List(ctx) {
		if err != nil {
			return fmt.Errorf("disk %s: list blocks: %w", e.disk, err)
		}
		if err := e.checkListed(b, seen); err != nil {
			return err
		}
		cell := b.Offset / bs
		e.listedBytes.Add(b.Length)
		if e.done.has(cell) {
			e.skipped.Add(1)
			e.doneBytes.Add(b.Length)
			e.resumedBytes.Add(b.Length)
			continue
		}
		select {
		case work <- b:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	e.report(e.doneBytes.Load(), e.listedBytes.Load())
	return nil
}

// checkListed refuses a listed block that breaks the contract (outside
// its cell or the disk, or a second one in a cell) and adds its cell to
// seen. A listing that breaks the contract will break it again: the error
// is permanent.
func (e *blockEngine) checkListed(b providers.Block, seen cellSet) error {
	bs := e.src.BlockSize
	cell := b.Offset / bs
	if b.Offset < 0 || b.Length <= 0 || b.Offset+b.Length > e.capacity || b.Offset+b.Length > (cell+1)*bs {
		return providers.Permanent(fmt.Errorf("disk %s: the platform listed a block of %d bytes at %d, outside its %d-byte cell or the %d-byte disk",
			e.disk, b.Length, b.Offset, bs, e.capacity))
	}
	if seen.has(cell) {
		return providers.Permanent(fmt.Errorf("disk %s: the platform listed two blocks in cell %d", e.disk, cell))
	}
	seen.add(cell)
	return nil
}

// fetchBlock fetches, verifies and writes block b through buf (b.Length
// long), retrying what may heal.
func (e *blockEngine) fetchBlock(ctx context.Context, b providers.Block, buf []byte) (finished, error) {
	if err := e.get(ctx, b, buf); err != nil {
		return finished{}, err
	}
	f := finished{cell: b.Offset / e.src.BlockSize}
	if !disk.IsZero(buf) {
		if _, err := e.file.WriteAt(buf, b.Offset); err != nil {
			return finished{}, fmt.Errorf("disk %s: write block at %d: %w", e.disk, b.Offset, err)
		}
		f.written = b.Length
	}
	e.report(e.doneBytes.Add(b.Length), -1)
	return f, nil
}

// get fetches block b into buf (b.Length long) and verifies it, under
// the bandwidth and concurrency limits, retrying what may heal.
func (e *blockEngine) get(ctx context.Context, b providers.Block, buf []byte) error {
	for attempt := 1; ; attempt++ {
		if e.bandwidth != nil {
			if err := e.bandwidth.WaitN(ctx, len(buf)); err != nil {
				return context.Cause(ctx)
			}
		}
		epoch, err := e.limiter.acquire(ctx)
		if err != nil {
			return err
		}
		gen := e.refreshGen.Load()
		err = e.fetchOnce(ctx, b, buf)
		switch {
		case err == nil:
			e.limiter.release(epoch, outcomeOK)
		case errors.Is(err, providers.ErrThrottled):
			e.throttled.Add(1)
			e.limiter.release(epoch, outcomeThrottled)
		default:
			e.limiter.release(epoch, outcomeFailed)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		err = fmt.Errorf("disk %s: block at %d: %w", e.disk, b.Offset, err)
		if providers.IsPermanent(err) {
			return err
		}
		if errors.Is(err, providers.ErrExpired) {
			if e.src.Refresh == nil {
				return err
			}
			if rerr := e.refresh(ctx, gen); rerr != nil {
				return fmt.Errorf("disk %s: renew access: %w (after %w)", e.disk, rerr, err)
			}
		}
		if attempt >= blockAttempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		e.retries.Add(1)
		if err := blockRetry.Sleep(ctx, attempt); err != nil {
			return context.Cause(ctx)
		}
	}
	e.fetched.Add(1)
	return nil
}

// fetchOnce makes one request for b under the per-request deadline and
// verifies what came back.
func (e *blockEngine) fetchOnce(ctx context.Context, b providers.Block, buf []byte) error {
	fctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	sums, err := e.src.Fetch(fctx, b, buf)
	if err != nil {
		return err
	}
	if sums.SHA256 != nil {
		if got := sha256.Sum256(buf); !bytes.Equal(got[:], sums.SHA256) {
			e.mismatches.Add(1)
			return fmt.Errorf("%w: SHA-256 %x, the platform sent %x", errBlockChecksum, got, sums.SHA256)
		}
	}
	if sums.MD5 != nil {
		if got := md5.Sum(buf); !bytes.Equal(got[:], sums.MD5) { //nolint:gosec
			e.mismatches.Add(1)
			return fmt.Errorf("%w: MD5 %x, the platform sent %x", errBlockChecksum, got, sums.MD5)
		}
	}
	return nil
}

// refresh renews the source's access once for all the workers whose
// fetch, sent in generation gen, found it expired.
func (e *blockEngine) refresh(ctx context.Context, gen uint64) error {
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	if e.refreshGen.Load() != gen {
		return nil // another worker renewed it meanwhile
	}
	if err := e.src.Refresh(ctx); err != nil {
		return err
	}
	e.refreshGen.Add(1)
	return nil
}

// writeJournal records finished blocks once their bytes are durable:
// after journalSyncBytes of data or journalSyncInterval, the part file is
// synced, then the cells finished before that sync are appended to the
// journal. It drains results to the end, so blocks written before a
// failure are recorded too; its own failure ends the download at once.
func (e *blockEngine) writeJournal(results <-chan finished, fail func(error)) error {
	var (
		pending []int64
		bytes   int64
		err     error
	)
	tick := time.NewTicker(journalSyncInterval)
	defer tick.Stop()
	flush := func() {
		if len(pending) == 0 || err != nil {
			pending, bytes = pending[:0], 0
			return
		}
		start := time.Now()
		if bytes > 0 {
			err = e.file.Sync()
		}
		if err == nil && e.journal != nil {
			err = e.journal.record(pending)
		}
		e.syncs++
		e.syncTime += time.Since(start)
		if err != nil {
			err = fmt.Errorf("disk %s: record finished blocks: %w", e.disk, err)
			fail(err)
		}
		pending, bytes = pending[:0], 0
	}
	for {
		select {
		case f, ok := <-results:
			if !ok {
				flush()
				return err
			}
			pending = append(pending, f.cell)
			bytes += f.written
			if bytes >= journalSyncBytes || len(pending) >= journalMaxBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}
