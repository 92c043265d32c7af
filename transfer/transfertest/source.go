package transfertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hypersdk/hypersdk/transfer"
)

// ErrInterrupted is what an Interrupt-ed Source fails with (it wraps
// transfer.ErrPermanent, so the Downloader stops at once and, with
// KeepPartial, keeps its part file).
var ErrInterrupted = fmt.Errorf("transfertest: interrupted: %w", transfer.ErrPermanent)

// Counting wraps a Source and records how it is used. Its zero value is not
// usable: build it with Count.
type Counting struct {
	src transfer.Source

	opens     atomic.Int64
	open      atomic.Int64 // ranges open now
	peak      atomic.Int64
	bytesRead atomic.Int64

	mu        sync.Mutex
	interrupt int64 // fail reads once this many bytes were read (0: never)
}

// Count returns a counting wrapper of src.
func Count(src transfer.Source) *Counting { return &Counting{src: src} }

// Interrupt makes reads fail with ErrInterrupted once n bytes in total
// have been read through the wrapper (n <= 0: never).
func (c *Counting) Interrupt(n int64) {
	c.mu.Lock()
	c.interrupt = n
	c.mu.Unlock()
}

// Opens is how many ranges were opened; Peak the most open at once;
// BytesRead the bytes that came out of them.
func (c *Counting) Opens() int64     { return c.opens.Load() }
func (c *Counting) Peak() int64      { return c.peak.Load() }
func (c *Counting) BytesRead() int64 { return c.bytesRead.Load() }

func (c *Counting) String() string { return c.src.String() }

// OpenRange opens the range on the wrapped Source.
func (c *Counting) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, transfer.SourceInfo, error) {
	rc, info, err := c.src.OpenRange(ctx, off, n)
	if err != nil {
		return nil, info, err
	}
	c.opens.Add(1)
	now := c.open.Add(1)
	for {
		p := c.peak.Load()
		if now <= p || c.peak.CompareAndSwap(p, now) {
			break
		}
	}
	return &countingReader{c: c, rc: rc}, info, nil
}

type countingReader struct {
	c      *Counting
	rc     io.ReadCloser
	closed atomic.Bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.c.mu.Lock()
	limit := r.c.interrupt
	r.c.mu.Unlock()
	if limit > 0 {
		left := limit - r.c.bytesRead.Load()
		if left <= 0 {
			return 0, ErrInterrupted
		}
		p = p[:min(int64(len(p)), left)]
	}
	n, err := r.rc.Read(p)
	r.c.bytesRead.Add(int64(n))
	return n, err
}

func (r *countingReader) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return errors.New("transfertest: range closed twice")
	}
	r.c.open.Add(-1)
	return r.rc.Close()
}
