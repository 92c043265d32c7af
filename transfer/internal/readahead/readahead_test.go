package readahead

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingAt is a ReaderAt over data that records the reads in flight.
type countingAt struct {
	data     []byte
	inflight atomic.Int32
	peak     atomic.Int32
	gate     chan struct{} // when set, every ReadAt waits for it
	failAt   int64         // a ReadAt covering this offset fails (-1: none)
}

var errBoom = errors.New("boom")

func (c *countingAt) ReadAt(p []byte, off int64) (int, error) {
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	for {
		old := c.peak.Load()
		if n <= old || c.peak.CompareAndSwap(old, n) {
			break
		}
	}
	if c.gate != nil {
		<-c.gate
	}
	if c.failAt >= 0 && off <= c.failAt && c.failAt < off+int64(len(p)) {
		k := copy(p, c.data[off:c.failAt])
		return k, errBoom
	}
	if off >= int64(len(c.data)) {
		return 0, io.EOF
	}
	k := copy(p, c.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func data(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestReadsRangeInOrderWithReadsInFlight(t *testing.T) {
	d := data(1<<20 + 12345)
	src := &countingAt{data: d, failAt: -1, gate: make(chan struct{})}
	released := make(chan struct{})
	r := New(context.Background(), src, 1000, int64(len(d))-2000, Options{BlockSize: 64 << 10, Depth: 4,
		Release: func() { close(released) }})
	// Every read waits at the gate: the Reader must have started Depth of
	// them before anyone consumed a byte.
	deadline := time.Now().Add(10 * time.Second)
	for src.inflight.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := src.inflight.Load(); got != 4 {
		t.Fatalf("%d reads in flight before consumption, want 4", got)
	}
	close(src.gate)
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, d[1000:len(d)-1000]) {
		t.Fatalf("got %d bytes that differ from the range", len(got))
	}
	if p := src.peak.Load(); p > 4 {
		t.Errorf("peak %d reads in flight, Depth is 4", p)
	}
	r.Close()
	<-released
}

func TestShortFileEndsWithEOF(t *testing.T) {
	d := data(100 << 10)
	r := New(context.Background(), &countingAt{data: d, failAt: -1}, 0, 300<<10, Options{BlockSize: 32 << 10, Depth: 3})
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, d) {
		t.Fatalf("got %d bytes, %v; want the %d bytes of the file", len(got), err, len(d))
	}
}

func TestErrorAfterTheBytesBeforeIt(t *testing.T) {
	d := data(200 << 10)
	r := New(context.Background(), &countingAt{data: d, failAt: 70000}, 0, int64(len(d)), Options{BlockSize: 32 << 10, Depth: 2})
	defer r.Close()
	got, err := io.ReadAll(r)
	if !errors.Is(err, errBoom) || !bytes.Equal(got, d[:70000]) {
		t.Fatalf("got %d bytes, %v; want 70000 bytes then boom", len(got), err)
	}
}

func TestCancelDoesNotWaitForAHungRead(t *testing.T) {
	src := &countingAt{data: data(1 << 20), failAt: -1, gate: make(chan struct{})}
	ctx, cancel := context.WithCancelCause(context.Background())
	var released sync.WaitGroup
	released.Add(1)
	r := New(ctx, src, 0, 1<<20, Options{Release: released.Done})
	stall := errors.New("stalled")
	go cancel(stall)
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, stall) {
		t.Fatalf("Read after cancel: %v, want the cause", err)
	}
	r.Close() // must return although every ReadAt is still blocked
	close(src.gate)
	released.Wait() // Release ran once the reads returned
}
