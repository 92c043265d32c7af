package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/providers"
)

// blockStreamWindow bounds the block buffers of a block source streamed
// into object storage: blocks fetched ahead of the encoder wait in it, in
// memory, for the blocks before them. It is twice the fetchers' budget so
// that one slow block does not idle every fetcher at once.
const blockStreamWindow = 2 * blockBufferBudget

// streamBlocks produces a block source item into object storage with no
// file in the output root: the whole listing is read first (List yields
// blocks in any order) and sorted, then the blocks are fetched by the
// block engine's workers (same limits, retries and checksums as for a
// file) into a reorder window of at most blockStreamWindow bytes, and
// the disk's bytes, zeros between blocks, are read in order into the
// encoder as a raw source's. Nothing is journaled: a resumed attempt
// fetches every block again, and the sink skips the parts it holds.
//
// Memory: the window (128 MiB), the listing (a Block per listed block:
// about 32 bytes plus its token; a fully written 1 TiB EBS snapshot lists
// 2 Mi blocks, some 200 MiB with tokens of ~70 bytes), and the sink's
// part buffers.
func (r *run) streamBlocks(ctx context.Context, it *item, report func(done, total int64)) error {
	e := r.newBlockEngine(it.disk, report)
	start := time.Now()
	blocks, err := e.listAll(ctx)
	if err == nil {
		// The encoder runs under ctx, not fctx: a failed fetch reaches it
		// as the stream's read error, not as its context's plain
		// "canceled".
		fctx, cancel := context.WithCancelCause(ctx)
		s := newBlockStream(fctx, cancel, e, blocks, max(1, int(blockStreamWindow/e.src.BlockSize)))
		err = r.convert(ctx, it, s)
		cancel(context.Canceled) // ends the fetchers if the encoder failed
		s.wait()
	}
	e.logDone(r, start, err)
	return err
}

// listAll reads the whole listing, checks it and sorts it by offset. The
// total becomes known at its end.
func (e *blockEngine) listAll(ctx context.Context) ([]providers.Block, error) {
	seen := newCellSet((e.capacity + e.src.BlockSize - 1) / e.src.BlockSize)
	var blocks []providers.Block
	for b, err := range e.src.List(ctx) {
		if err != nil {
			return nil, fmt.Errorf("disk %s: list blocks: %w", e.disk, err)
		}
		if err := e.checkListed(b, seen); err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
		e.listedBytes.Add(b.Length)
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	slices.SortFunc(blocks, func(a, b providers.Block) int { return cmp.Compare(a.Offset, b.Offset) })
	e.report(0, e.listedBytes.Load())
	return blocks, nil
}

// blockStream reads a block source's disk bytes in order while its blocks
// are fetched out of order. A block holds one of the window's slots from
// its dispatch until its bytes have been read: the dispatcher hands the
// blocks out in order, so the block the reader waits for is always
// dispatched, and no more than the window's slots are ever fetched ahead.
type blockStream struct {
	ctx    context.Context
	e      *blockEngine
	blocks []providers.Block // sorted by offset

	slots chan struct{} // one token per block dispatched and not yet read
	ready []chan []byte // block i's bytes arrive in ready[i%len(ready)]
	free  chan []byte   // buffers of blocks read, reused by the fetchers

	wg      sync.WaitGroup
	mu      sync.Mutex
	unmap   []func() // frees every buffer allocated, once all are unused
	next    int      // the next block to read
	pos     int64    // the disk offset read up to
	cur     []byte   // the unread rest of the block being read
	curBuf  []byte   // its buffer
	capBuf  int      // size of a buffer: the block size
	windowN int      // the window's slots
}

// newBlockStream starts fetching blocks into a window of windowN
// blocks; cancel is called with the first fetch failure, which the
// reader then returns.
func newBlockStream(ctx context.Context, cancel context.CancelCauseFunc, e *blockEngine, blocks []providers.Block, windowN int) *blockStream {
	workers := min(e.workers(), windowN)
	e.limiter = newAIMD(min(blockStartConcurrency, workers), workers)
	s := &blockStream{
		ctx: ctx, e: e, blocks: blocks,
		slots: make(chan struct{}, windowN), ready: make([]chan []byte, windowN), free: make(chan []byte, windowN),
		capBuf: int(e.src.BlockSize), windowN: windowN,
	}
	for i := range s.ready {
		s.ready[i] = make(chan []byte, 1)
	}
	type job struct {
		i int
		b providers.Block
	}
	work := make(chan job, workers)
	s.wg.Go(func() {
		defer close(work)
		for i, b := range blocks {
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case work <- job{i, b}:
			case <-ctx.Done():
				return
			}
		}
	})
	for range workers {
		s.wg.Go(func() {
			for j := range work {
				if ctx.Err() != nil {
					continue // drain work so the dispatcher ends
				}
				buf := s.buffer()[:j.b.Length]
				if err := e.get(ctx, j.b, buf); err != nil {
					cancel(err)
					continue
				}
				e.report(e.doneBytes.Add(j.b.Length), -1)
				// Never blocks: the slot, and so this channel, is this block's.
				s.ready[j.i%windowN] <- buf[:cap(buf)]
			}
		})
	}
	return s
}

// buffer returns a free block buffer, or a new one: there are never more
// than the window's slots, every buffer being held by a dispatched block
// or free.
func (s *blockStream) buffer() []byte {
	select {
	case b := <-s.free:
		return b
	default:
	}
	b, unmap := newBlockBuffer(s.capBuf)
	s.mu.Lock()
	s.unmap = append(s.unmap, unmap)
	s.mu.Unlock()
	return b
}

// Read reads the disk's bytes in order: zeros up to the next block, then
// the block once fetched. A failed fetch fails the read.
func (s *blockStream) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, context.Cause(s.ctx)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.cur) == 0 {
		end := s.e.capacity
		if s.next < len(s.blocks) {
			end = s.blocks[s.next].Offset
		}
		if s.pos < end {
			n := int(min(int64(len(p)), end-s.pos))
			clear(p[:n])
			s.pos += int64(n)
			return n, nil
		}
		if s.next == len(s.blocks) {
			return 0, io.EOF
		}
		select {
		case buf := <-s.ready[s.next%s.windowN]:
			s.curBuf, s.cur = buf, buf[:s.blocks[s.next].Length]
			s.next++
		case <-s.ctx.Done():
			return 0, context.Cause(s.ctx)
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	s.pos += int64(n)
	if len(s.cur) == 0 {
		// The buffer is free before the slot: a fetcher dispatched into
		// the slot finds it.
		s.free <- s.curBuf
		s.curBuf = nil
		<-s.slots
	}
	return n, nil
}

// wait waits for the dispatcher and fetchers to end (the context ended
// or every block was fetched) and frees the buffers.
func (s *blockStream) wait() {
	s.wg.Wait()
	for _, f := range s.unmap {
		f()
	}
}
