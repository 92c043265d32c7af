package ova

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"sync"
)

// sink is the bottom of the writer pipeline: it hashes the archive bytes
// (SHA-256 of the file as written) and writes them to the destination on
// its own goroutine. That moves the archive hash and the write syscalls off
// the goroutine that reads the source and hashes each member, so on two or
// more cores the archive costs about one hash pass, not two.
//
// Writes are coalesced into sinkBufSize buffers; sinkBuffers of them bound
// the memory in flight.
type sink struct {
	w    io.Writer
	h    hash.Hash
	n    int64
	cur  []byte
	work chan []byte
	free chan []byte
	done chan struct{}

	mu  sync.Mutex
	err error // first error of the writer goroutine
}

const (
	sinkBufSize = 1 << 20
	sinkBuffers = 4
)

func newSink(w io.Writer) *sink {
	s := &sink{
		w:    w,
		h:    sha256.New(),
		work: make(chan []byte, sinkBuffers),
		free: make(chan []byte, sinkBuffers),
		done: make(chan struct{}),
	}
	for range sinkBuffers {
		s.free <- make([]byte, 0, sinkBufSize)
	}
	s.cur = <-s.free
	go s.run(s.work) // passed in: Close sets s.work to nil
	return s
}

func (s *sink) run(work <-chan []byte) {
	defer close(s.done)
	for b := range work {
		if s.failed() == nil {
			s.h.Write(b)
			if _, err := s.w.Write(b); err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
		}
		s.free <- b[:0]
	}
}

func (s *sink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Write copies p into the pipeline. It is not safe for concurrent use (the
// tar writer and the compressors above it write from one goroutine at a
// time).
func (s *sink) Write(p []byte) (int, error) {
	if err := s.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(s.cur[len(s.cur):cap(s.cur)], p)
		s.cur = s.cur[:len(s.cur)+k]
		p = p[k:]
		if len(s.cur) == cap(s.cur) {
			s.work <- s.cur
			s.cur = <-s.free
		}
	}
	s.n += int64(n)
	return n, nil
}

// Close flushes what is buffered, waits for the writer goroutine and
// returns its first error.
func (s *sink) Close() error {
	if s.work == nil {
		return s.failed()
	}
	if len(s.cur) > 0 {
		s.work <- s.cur
	}
	close(s.work)
	s.work = nil
	<-s.done
	return s.failed()
}

// sum returns the hex SHA-256 of everything written; valid after Close.
func (s *sink) sum() string { return hex.EncodeToString(s.h.Sum(nil)) }

// countingWriter counts the uncompressed tar bytes.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
