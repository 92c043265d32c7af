// Package readahead turns an io.ReaderAt of a remote file (an SFTP or SMB
// file handle) into an ordered stream of one byte range with several reads
// in flight, which is what makes a remote file fast: one ReadAt at a time
// costs a round trip per block, Depth of them overlap the round trips.
//
// Memory is bounded by Depth × BlockSize per Reader. Reads are not
// cancellable on most remote-file clients, so a Reader never waits for one
// it no longer needs: Read returns as soon as its context ends, Close
// returns at once, and the Release callback (closing the file handle) runs
// only after the last read in flight has returned.
package readahead

import (
	"context"
	"errors"
	"io"
	"sync"
)

var errClosed = errors.New("read of a closed readahead.Reader")

// Options shapes a Reader.
type Options struct {
	// BlockSize is the length of one ReadAt. Default 1 MiB.
	BlockSize int
	// Depth is how many ReadAt calls may be in flight. Default 4.
	Depth int
	// Release, when set, runs once the Reader is closed and no ReadAt is in
	// flight any more (in a goroutine of its own if reads were still
	// running at Close): close the file handle there.
	Release func()
}

// block is one ReadAt: len(buf) bytes from off, n of them read.
type block struct {
	off  int64
	buf  []byte
	n    int
	err  error
	done chan struct{}
}

// Reader reads the bytes [off, off+n) of a ReaderAt in order.
type Reader struct {
	ctx  context.Context
	ra   io.ReaderAt
	opts Options
	next int64 // offset of the next block to start
	end  int64

	mu       sync.Mutex
	queue    []*block // started, in order; queue[0] is being consumed
	pos      int      // bytes of queue[0] handed out
	free     [][]byte // buffers of consumed blocks
	inflight int
	closed   bool
	released bool
	err      error // sticky: the first error handed out
}

// New returns a Reader of n bytes of ra from off (n < 0 is not allowed:
// callers know the size). The first reads start at once.
func New(ctx context.Context, ra io.ReaderAt, off, n int64, opts Options) *Reader {
	if opts.BlockSize <= 0 {
		opts.BlockSize = 1 << 20
	}
	if opts.Depth <= 0 {
		opts.Depth = 4
	}
	r := &Reader{ctx: ctx, ra: ra, opts: opts, next: off, end: off + max(n, 0)}
	r.mu.Lock()
	r.fill()
	r.mu.Unlock()
	return r
}

// fill starts blocks until Depth are queued or the range is covered.
// Called with mu held.
func (r *Reader) fill() {
	for !r.closed && len(r.queue) < r.opts.Depth && r.next < r.end {
		size := int(min(int64(r.opts.BlockSize), r.end-r.next))
		var buf []byte
		if k := len(r.free); k > 0 {
			buf, r.free = r.free[k-1][:size], r.free[:k-1]
		} else {
			buf = make([]byte, size, r.opts.BlockSize)
		}
		b := &block{off: r.next, buf: buf, done: make(chan struct{})}
		r.next += int64(size)
		r.queue = append(r.queue, b)
		r.inflight++
		go r.read(b)
	}
}

func (r *Reader) read(b *block) {
	n, err := r.ra.ReadAt(b.buf, b.off)
	if n == len(b.buf) && err == io.EOF {
		err = nil // a ReaderAt may report EOF with the last full block
	}
	b.n, b.err = n, err
	close(b.done)
	r.mu.Lock()
	r.inflight--
	release := r.closed && r.inflight == 0 && !r.released
	if release {
		r.released = true
	}
	r.mu.Unlock()
	if release && r.opts.Release != nil {
		r.opts.Release()
	}
}

// Read hands out the range's bytes in order. A short block (the file ended
// early) ends the stream with io.EOF after its bytes; a failed ReadAt ends
// it with that error after the bytes before it. Once ctx ends Read fails
// with ctx's cause without waiting for reads in flight.
func (r *Reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return 0, errClosed
	}
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return 0, err
	}
	if len(r.queue) == 0 {
		r.mu.Unlock()
		return 0, io.EOF
	}
	b := r.queue[0]
	r.mu.Unlock()

	select {
	case <-b.done:
	case <-r.ctx.Done():
		select {
		case <-b.done: // both ready: the bytes are there, use them
		default:
			return 0, r.fail(context.Cause(r.ctx))
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errClosed
	}
	n := copy(p, b.buf[r.pos:b.n])
	r.pos += n
	if r.pos < b.n {
		return n, nil
	}
	// The block is consumed: hand out its end, then start the next read.
	switch {
	case b.err != nil:
		r.err = b.err
	case b.n < len(b.buf):
		r.err = io.EOF // the file is shorter than the range
	}
	if r.err != nil {
		if n > 0 {
			return n, nil
		}
		return 0, r.err
	}
	r.queue = r.queue[1:]
	r.pos = 0
	r.free = append(r.free, b.buf)
	r.fill()
	return n, nil
}

func (r *Reader) fail(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// Close stops the Reader without waiting for reads in flight; Release runs
// once they have returned (now, if none is). It always returns nil.
func (r *Reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.queue, r.free = nil, nil
	release := r.inflight == 0 && !r.released
	if release {
		r.released = true
	}
	r.mu.Unlock()
	if release && r.opts.Release != nil {
		r.opts.Release()
	}
	return nil
}
