package transfer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// countingBucket wraps a limiter and records every reservation.
type countingBucket struct {
	tokenBucket
	mu       sync.Mutex
	reserved int64
	biggest  int
}

func (c *countingBucket) ReserveN(t time.Time, n int) *rate.Reservation {
	c.mu.Lock()
	c.reserved += int64(n)
	c.biggest = max(c.biggest, n)
	c.mu.Unlock()
	return c.tokenBucket.ReserveN(t, n)
}

func TestThrottleSplitsReadsLargerThanTheBurst(t *testing.T) {
	clk := newFakeClock()
	const bps, burst = 10_000, 1_000
	cb := &countingBucket{tokenBucket: rate.NewLimiter(bps, burst)}
	th := &throttle{bucket: cb, clock: clk}
	start := clk.Now()
	for range 4 {
		if err := th.wait(context.Background(), 16<<10); err != nil { // 16× the burst
			t.Fatal(err)
		}
	}
	if cb.reserved != 64<<10 || cb.biggest > burst {
		t.Fatalf("reserved %d bytes, largest piece %d (burst %d)", cb.reserved, cb.biggest, burst)
	}
	// The bucket starts full, so all but one burst is paid for in time.
	want := time.Duration(float64(64<<10-burst) / bps * float64(time.Second))
	if got := clk.Now().Sub(start); got < want-time.Millisecond || got > want+time.Millisecond {
		t.Fatalf("64 KiB at %d B/s took %v of fake time, want %v", bps, got, want)
	}
}

func TestThrottleNilAndInf(t *testing.T) {
	var th *throttle
	if err := th.wait(context.Background(), 1<<30); err != nil || th.readSize(1<<20) != 1<<20 {
		t.Fatal("nil throttle must be a no-op")
	}
	if newThrottle(0, realClock{}) != nil {
		t.Fatal("0 bytes/s means unlimited")
	}
	inf := &throttle{bucket: rate.NewLimiter(rate.Inf, 0), clock: realClock{}}
	if err := inf.wait(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
}

func TestThrottleCancelReturnsPromptly(t *testing.T) {
	th := newThrottle(1, realClock{}) // one byte per second
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := th.wait(ctx, 1<<20); err != context.Canceled {
		t.Fatalf("err %v", err)
	}
}

// TestBandwidthLimitIsShared downloads three files at once under one limit
// on a fake clock: every byte passes the limiter and the fake time elapsed is
// what the configured rate dictates for all of them together.
func TestBandwidthLimitIsShared(t *testing.T) {
	const limit = 2 * mib // bytes per second
	files := [][]byte{genData(3*mib, 40), genData(2*mib+3, 41), genData(mib-1, 42)}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		_, _ = fmt.Sscanf(r.URL.Path, "/%d", &i)
		serveBytes(w, r, files[i], "")
	}))
	defer ts.Close()
	clk := newFakeClock()
	d, _ := testDownloader(t, Options{Concurrency: 3, BandwidthLimit: limit}, clk)
	if got := d.limit.bucket.Limit(); got != rate.Limit(limit) {
		t.Fatalf("limiter rate %v, want %d", got, limit)
	}
	burst := d.limit.bucket.Burst()
	if burst <= 0 || burst > limit {
		t.Fatalf("burst %d", burst)
	}
	cb := &countingBucket{tokenBucket: d.limit.bucket}
	d.limit.bucket = cb

	dir := t.TempDir()
	var list []File
	var total int64
	for i, b := range files {
		list = append(list, File{URL: fmt.Sprintf("%s/%d", ts.URL, i), Path: filepath.Join(dir, fmt.Sprint(i))})
		total += int64(len(b))
	}
	start := clk.Now()
	if _, err := d.Download(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	for i, b := range files {
		checkFile(t, list[i].Path, b)
	}
	if cb.reserved != total || cb.biggest > burst {
		t.Fatalf("limiter saw %d of %d bytes, largest piece %d (burst %d)", cb.reserved, total, cb.biggest, burst)
	}
	want := time.Duration(float64(total-int64(burst)) / limit * float64(time.Second))
	if got := clk.Now().Sub(start); got < want-time.Millisecond || got > want+time.Millisecond {
		t.Fatalf("%d bytes at %d B/s took %v of fake time, want %v", total, limit, got, want)
	}
}

func TestWatchdogFiresOnlyWithoutProgress(t *testing.T) {
	fired := make(chan error, 1)
	w := newWatchdog(5*time.Millisecond, func(err error) { fired <- err })
	defer w.stop()
	w.pause(true) // waiting on ourselves is not a stall
	for range 5 {
		select {
		case err := <-fired:
			t.Fatalf("fired while paused: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	w.pause(false)
	if err := <-fired; err != errStalled {
		t.Fatalf("cause %v", err)
	}
}
