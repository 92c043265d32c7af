package transfer

import (
	"sync/atomic"
	"time"

	"github.com/hypersdk/hypersdk/progress"
)

// A Download call reports in progress.Report, phase downloading: Item is the
// destination path of the file the report is about, ItemBytes and ItemSize
// that file's bytes written so far and its size, BytesDone and BytesTotal
// every file of the call. Sizes and the total are 0 while unknown (a chunked
// body with no expected size). Byte counts are bytes written to the
// destination, so they go back down when a file has to restart from zero.
// Reports are throttled per file; each file's last one is Final.

// tracker aggregates progress over the files of one Download call.
type tracker struct {
	fn       progress.Func
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

func newTracker(fn progress.Func, c clock, interval time.Duration) *tracker {
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
		total = 0
	}
	p.t.fn(progress.Report{
		Phase:      progress.PhaseDownloading,
		Item:       p.path,
		ItemBytes:  p.bytes.Load(),
		ItemSize:   max(p.size.Load(), 0),
		BytesDone:  p.t.bytes.Load(),
		BytesTotal: total,
		Final:      final,
	})
}
