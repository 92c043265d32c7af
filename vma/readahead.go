package vma

import (
	"io"
	"sync"
)

// readAhead runs a reader in a goroutine of its own, a few buffers ahead of
// its consumer: a decompressor that works synchronously (lzop) then
// decodes while the archive is parsed and the disks are written, instead
// of in turns. Memory: depth+2 buffers.
type readAhead struct {
	full chan chunk
	free chan []byte
	stop chan struct{}
	once sync.Once
	buf  []byte // the buffer being consumed, whole
	cur  []byte // its part not yet read
	err  error
}

type chunk struct {
	b   []byte // a whole buffer
	n   int    // bytes filled
	err error
}

func newReadAhead(r io.Reader, size, depth int) *readAhead {
	ra := &readAhead{full: make(chan chunk, depth), free: make(chan []byte, depth+2), stop: make(chan struct{})}
	for range depth + 2 {
		ra.free <- make([]byte, size)
	}
	go ra.run(r)
	return ra
}

func (ra *readAhead) run(r io.Reader) {
	defer close(ra.full)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(r, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case ra.full <- chunk{b: b, n: n, err: err}:
		case <-ra.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		c, ok := <-ra.full
		if !ok {
			return 0, io.ErrClosedPipe // Close was called
		}
		if ra.buf != nil {
			ra.free <- ra.buf
		}
		ra.buf, ra.cur, ra.err = c.b, c.b[:c.n], c.err
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the goroutine (after the read it may be in returns).
func (ra *readAhead) Close() error {
	ra.once.Do(func() { close(ra.stop) })
	return nil
}
