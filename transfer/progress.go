package transfer

import (
	"sync/atomic"
	"time"
)

// Progress is one report about a Download call: the file it concerns and the
// whole set. Sizes are -1 while unknown (a chunked body with no expected
// size). Byte counts are bytes written to the destination, so they go back
// down when a file has to restart from zero.
type Progress struct {
	// Path is the destination of the file this report is about.
	Path string
	// FileBytes and FileSize are that file's bytes written so far and its size.
	FileBytes int64
	FileSize  int64
	// Bytes and Total cover every file of the Download call.
	Bytes int64
	Total int64
	// Final marks the last report for Path: it is complete or has failed.
	Final bool
}

// ProgressFunc receives progress reports. It may be called from several
// goroutines at once and must be cheap; reports are throttled per file.
type ProgressFunc func(Progress)

// tracker aggregates progress over the files of one Download call.
type tracker struct {
	fn       ProgressFunc
	clock    clock
	interval time.Duration
	bytes    atomic.Int64
	total    atomic.Int64 // sum of the known sizes
	unknown  atomic.Int64 // files whose size is not known yet
}

type fileProgress struct {
	t     *tracker
	path  string
	bytes atomic.Int64
	size  atomic.Int64 // -1 unknown
	last  atomic.Int64 // UnixNano of the last report; 0 = none yet
}

func newTracker(fn ProgressFunc, c clock, interval time.Duration) *tracker {
	return &tracker{fn: fn, clock: c, interval: interval}
}

func (t *tracker) file(path string, size int64) *fileProgress {
	p := &fileProgress{t: t, path: path}
	p.size.Store(-1)
	t.unknown.Add(1)
	p.setSize(size)
	return p
}

// setSize records a file's size once it is known (negative: unknown).
func (p *fileProgress) setSize(n int64) {
	if n < 0 {
		return
	}
	old := p.size.Swap(n)
	if old < 0 {
		p.t.unknown.Add(-1)
		p.t.total.Add(n)
	} else {
		p.t.total.Add(n - old)
	}
}

// add records n more bytes (negative when a file restarts) and reports if the
// file's last report is older than the interval. Concurrent callers race
// for the report with a compare-and-swap, so at most one of them sends it.
func (p *fileProgress) add(n int64) {
	p.bytes.Add(n)
	p.t.bytes.Add(n)
	if p.t.fn == nil {
		return
	}
	now := p.t.clock.Now().UnixNano()
	last := p.last.Load()
	if last != 0 && now-last < int64(p.t.interval) {
		return
	}
	if p.last.CompareAndSwap(last, now) {
		p.report(false)
	}
}

func (p *fileProgress) final() {
	if p.t.fn != nil {
		p.report(true)
	}
}

func (p *fileProgress) report(final bool) {
	total := p.t.total.Load()
	if p.t.unknown.Load() > 0 {
		total = -1
	}
	p.t.fn(Progress{
		Path:      p.path,
		FileBytes: p.bytes.Load(),
		FileSize:  p.size.Load(),
		Bytes:     p.t.bytes.Load(),
		Total:     total,
		Final:     final,
	})
}
