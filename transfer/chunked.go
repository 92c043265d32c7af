package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// errRestartNeeded: a ranged request got an answer that makes the chunks
// unusable together (200, 416, another Content-Range or validator). The file
// restarts from zero as one stream instead of splicing two objects.
var errRestartNeeded = errors.New("ranged download must restart as a single stream")

// chunk is the byte range [start, end) of the file; written counts the bytes
// of its prefix already on disk.
type chunk struct {
	start, end int64
	written    atomic.Int64
}

func (c *chunk) done() bool { return c.start+c.written.Load() >= c.end }

// chunked downloads [j.offset, j.total) as parallel ranged GETs. first is
// the probe's response, which already carries bytes [j.offset, firstEnd).
//
// Bytes land out of order, so the part file is renamed to "<dest>.chunks"
// meanwhile: a crash leaves holes only in a file no later run trusts. The
// SHA-256 follows the contiguous prefix as it grows, reading it back (from
// the page cache) while the download goes on, so no second pass is needed at
// the end. On return j.offset is the hashed prefix and the file, trimmed to
// it, is back under its resumable ".part" name (or on success stays ready for
// commit).
func (j *fileJob) chunked(ctx context.Context, first *call, firstEnd int64) error {
	j.res.Chunked = true
	j.spliced = true
	if err := j.renameTo(j.chunks); err != nil {
		return err
	}
	// The rename must be durable before out-of-order bytes are.
	if err := syncDir(j.dir); err != nil {
		return noRetry(err)
	}
	j.log.Debug("downloading in parallel chunks", "size", j.total, "chunk_size", j.d.chunkSize,
		"streams", j.chunkConc)
	if j.f.Sparse {
		// Holes are left where zeros arrive: the file must already be as
		// long as the object, so that reading back a hole for the hash
		// finds zeros, not the end of the file.
		if err := j.out.Truncate(j.total); err != nil {
			return noRetry(err)
		}
	}

	err := j.fetchChunks(ctx, first, firstEnd)
	if err == nil {
		return nil
	}
	if errors.Is(err, errRestartNeeded) {
		j.log.Warn("restarting from zero as a single stream", "reason", err)
		if terr := j.restart(); terr != nil {
			return terr
		}
	}
	if terr := j.out.Truncate(j.offset); terr != nil {
		return noRetry(terr)
	}
	// Under the resumable name the prefix must be on disk first, or a power
	// cut could leave a ".part" with holes.
	if j.keepPartial || j.offset == 0 {
		if terr := j.out.Sync(); terr != nil {
			return noRetry(terr)
		}
	}
	if terr := j.renameTo(j.part); terr != nil {
		return terr
	}
	return err
}

func (j *fileJob) fetchChunks(ctx context.Context, first *call, firstEnd int64) error {
	var chunks []*chunk
	for s := j.offset; s < j.total; s += j.d.chunkSize {
		chunks = append(chunks, &chunk{start: s, end: min(s+j.d.chunkSize, j.total)})
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The probe's request was made under the attempt's context; a failure
	// elsewhere must interrupt it too.
	stop := context.AfterFunc(cctx, func() { first.cancel(context.Cause(cctx)) })
	defer stop()

	notify := make(chan struct{}, 1)
	hashed := j.offset
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := j.hashChunks(cctx, chunks, notify, &hashed); err != nil {
			cancel(err)
		}
	})
	var next atomic.Int64
	next.Store(1) // chunk 0 belongs to the probe
	for w := range min(j.chunkConc, len(chunks)) {
		wg.Go(func() {
			ch, c, end := chunks[0], first, firstEnd
			if w > 0 {
				i := next.Add(1) - 1
				if i >= int64(len(chunks)) {
					return
				}
				ch, c, end = chunks[i], nil, -1
			}
			for {
				if err := j.fetchChunk(cctx, ch, c, end, notify); err != nil {
					cancel(err)
					return
				}
				i := next.Add(1) - 1
				if i >= int64(len(chunks)) {
					return
				}
				ch, c, end = chunks[i], nil, -1
			}
		})
	}
	wg.Wait()
	j.offset = hashed
	if cctx.Err() == nil {
		return nil
	}
	err := context.Cause(cctx)
	if j.keepPartial && !errors.Is(err, errRestartNeeded) {
		// The hasher may trail the writers: catch it up so that the next run
		// resumes after every contiguous byte already on disk. The work is
		// bounded by what the chunk streams had in flight.
		bp := j.d.getBuf()
		next := 0
		// On a read error the hash still covers exactly [0, hashed).
		_ = j.hashFile(context.Background(), *bp, &hashed, contiguousEnd(chunks, &next))
		j.offset = hashed
		j.d.putBuf(bp)
	}
	return err
}

// fetchChunk gets one chunk, resuming within it after breaks. c, when not
// nil, is a response already carrying the chunk's first bytes up to cEnd.
func (j *fileJob) fetchChunk(ctx context.Context, ch *chunk, c *call, cEnd int64, notify chan<- struct{}) error {
	fails := 0
	for {
		pos := ch.start + ch.written.Load()
		if pos >= ch.end {
			if c != nil {
				c.close()
			}
			return nil
		}
		var err error
		end := cEnd
		if c == nil {
			c, err = j.request(ctx, pos, ch.end-1, j.validator)
			if err == nil {
				end, err = j.checkChunk(c.seg, pos)
			}
		}
		if err == nil {
			err = j.streamChunk(ctx, c, ch, min(end, ch.end), notify)
		}
		if c != nil {
			c.close()
			c = nil
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !retryable(err) {
			return err
		}
		if ch.start+ch.written.Load() > pos {
			fails = 0
		}
		fails++
		if fails > j.d.maxRetries {
			return noRetry(fmt.Errorf("giving up on bytes %d-%d after %d attempts without progress: %w",
				ch.start, ch.end-1, fails, err))
		}
		j.retries.Add(1)
		j.log.Warn("chunk interrupted, retrying", "error", err, "attempt", fails, "offset", pos)
		if err := j.d.pause(ctx, fails, err); err != nil {
			return context.Cause(ctx)
		}
	}
}

// checkChunk validates the answer to a request for the bytes from pos on
// and returns where its bytes end.
func (j *fileJob) checkChunk(seg segment, pos int64) (int64, error) {
	if seg.whole || seg.beyond {
		return 0, fmt.Errorf("%s: %s to a ranged request: %w", j.url, seg.desc, errRestartNeeded)
	}
	if seg.start != pos || (seg.total >= 0 && seg.total != j.total) {
		return 0, fmt.Errorf("%s: %w (%s for byte %d): %w", j.url, errBadContentRange,
			seg.desc, pos, errRestartNeeded)
	}
	if seg.validator != "" && j.validator != "" && seg.validator != j.validator {
		return 0, fmt.Errorf("%s: %w: %w", j.url, errObjectChanged, errRestartNeeded)
	}
	return seg.end, nil
}

// streamChunk writes c's body into ch up to limit, reading while a pipe
// writes earlier blocks; ch.written only counts bytes already written.
func (j *fileJob) streamChunk(ctx context.Context, c *call, ch *chunk, limit int64, notify chan<- struct{}) error {
	pos := ch.start + ch.written.Load() // ch.written is the pipe's now
	p := j.d.newPipe(j.out, pos, j.f.Sparse, func(b block) {
		ch.written.Add(int64(b.n))
		j.prog.add(int64(b.n))
		select {
		case notify <- struct{}{}:
		default: // a wake-up is already pending
		}
	})
	var err error
	for pos < limit { // anything the server sends beyond the chunk is dropped
		bp := p.buf(c.wd)
		if bp == nil {
			break // the write failed; wait says why
		}
		buf := (*bp)[:j.d.limit.readSize(len(*bp))]
		n, rerr := readSome(c.seg.body, buf[:min(int64(len(buf)), limit-pos)], c.wd)
		if n > 0 {
			j.transferred.Add(int64(n))
			c.wd.pause(true)
			werr := j.d.limit.wait(c.ctx, n)
			c.wd.pause(false)
			if werr != nil {
				p.put(bp)
				err = j.netErr(ctx, c, werr)
				break
			}
			p.send(block{buf: bp, n: n, off: pos}, c.wd)
			pos += int64(n)
		} else {
			p.put(bp)
		}
		if rerr == io.EOF {
			if pos < limit {
				err = fmt.Errorf("%s: %w (range ended at byte %d, expected %d)", j.url, errShortBody, pos, limit)
			}
			break
		}
		if rerr != nil {
			err = j.netErr(ctx, c, rerr)
			break
		}
	}
	if werr := p.wait(); werr != nil {
		return noRetry(fmt.Errorf("write %s: %w", j.cur, werr))
	}
	return err
}

// hashChunks feeds j.h the file's contiguous prefix as chunks fill it, from
// *hashed up to the end of the last chunk.
func (j *fileJob) hashChunks(ctx context.Context, chunks []*chunk, notify <-chan struct{}, hashed *int64) error {
	bp := j.d.getBuf()
	defer j.d.putBuf(bp)
	total := chunks[len(chunks)-1].end
	next := 0 // first chunk not known to be complete
	for *hashed < total {
		end := contiguousEnd(chunks, &next)
		if end <= *hashed {
			select {
			case <-notify:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			continue
		}
		if err := j.hashFile(ctx, *bp, hashed, end); err != nil {
			return err
		}
	}
	return nil
}

// contiguousEnd is where the run of written bytes from the first chunk ends;
// *next skips chunks already known to be complete.
func contiguousEnd(chunks []*chunk, next *int) int64 {
	for *next < len(chunks) && chunks[*next].done() {
		*next++
	}
	if *next == len(chunks) {
		return chunks[len(chunks)-1].end
	}
	c := chunks[*next]
	return c.start + c.written.Load()
}

// hashFile feeds j.h the part file's bytes [*hashed, end), read back from
// the page cache.
func (j *fileJob) hashFile(ctx context.Context, buf []byte, hashed *int64, end int64) error {
	for *hashed < end {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		n := min(int64(len(buf)), end-*hashed)
		m, err := j.out.ReadAt(buf[:n], *hashed)
		j.h.Write(buf[:m])
		*hashed += int64(m)
		if err != nil && int64(m) < n {
			return noRetry(fmt.Errorf("read back %s: %w", j.cur, err))
		}
	}
	return nil
}
