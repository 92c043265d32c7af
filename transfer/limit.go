package transfer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/hypersdk/hypersdk/internal/backoff"
)

// clock is the time source of a Downloader; tests substitute a fake one so
// that rate limiting and backoff are asserted without wall-clock waits.
type clock interface {
	Now() time.Time
	// SleepUntil returns when t is reached or ctx is done (ctx's error).
	SleepUntil(ctx context.Context, t time.Time) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	return backoff.Wait(ctx, d)
}

// tokenBucket is the part of *rate.Limiter the throttle uses.
type tokenBucket interface {
	ReserveN(t time.Time, n int) *rate.Reservation
	Burst() int
	Limit() rate.Limit
}

// throttle enforces a byte rate shared by every stream of a Downloader.
type throttle struct {
	bucket tokenBucket
	clock  clock
	// mu makes "read the clock, reserve" atomic: reservations then reach the
	// bucket in time order and it never credits the same interval twice.
	mu sync.Mutex
}

// newThrottle returns nil (no limit) for bytesPerSec <= 0. The burst is a
// tenth of a second of traffic, within [32 KiB, 1 MiB], but never more than
// one second's worth: enough to keep syscalls large, small enough that the
// rate holds over short windows.
func newThrottle(bytesPerSec int64, c clock) *throttle {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := min(max(bytesPerSec/10, 32<<10), 1<<20, bytesPerSec)
	return &throttle{bucket: rate.NewLimiter(rate.Limit(bytesPerSec), int(burst)), clock: c}
}

// readSize bounds one read so that a slow limit does not pull a whole
// buffer off the socket and then sit on it.
func (t *throttle) readSize(buf int) int {
	if t == nil {
		return buf
	}
	return min(buf, max(t.bucket.Burst(), 4<<10))
}

// wait blocks until n bytes may pass. n may exceed the bucket's burst: the
// bytes are taken in burst-sized pieces, because a single reservation larger
// than the burst is refused outright.
func (t *throttle) wait(ctx context.Context, n int) error {
	if t == nil {
		return nil
	}
	for n > 0 {
		if t.bucket.Limit() == rate.Inf {
			return nil
		}
		burst := t.bucket.Burst()
		if burst < 1 {
			return noRetry(fmt.Errorf("transfer: bandwidth limiter has burst %d and admits nothing", burst))
		}
		take := min(n, burst)
		t.mu.Lock()
		now := t.clock.Now()
		r := t.bucket.ReserveN(now, take)
		t.mu.Unlock()
		if !r.OK() {
			return noRetry(fmt.Errorf("transfer: bandwidth limiter refused %d bytes", take))
		}
		if d := r.DelayFrom(now); d > 0 {
			if err := t.clock.SleepUntil(ctx, now.Add(d)); err != nil {
				r.CancelAt(t.clock.Now()) // give back what we did not use
				return err
			}
		}
		n -= take
	}
	return nil
}

// watchdog cancels a request whose body stops flowing. Reads only bump a
// counter (cheap at any rate); a timer looks at it four times per timeout, so
// a stall is caught between one and one and a quarter timeouts after the
// last byte.
type watchdog struct {
	period time.Duration
	cancel context.CancelCauseFunc
	ticks  atomic.Int64
	paused atomic.Bool
	// mu guards the rest: the first check can fire before AfterFunc has
	// even returned the timer to store.
	mu    sync.Mutex
	last  int64
	idle  int
	timer *time.Timer
}

const watchdogChecks = 4

func newWatchdog(timeout time.Duration, cancel context.CancelCauseFunc) *watchdog {
	if timeout <= 0 {
		return nil
	}
	w := &watchdog{period: max(timeout/watchdogChecks, time.Millisecond), cancel: cancel}
	w.mu.Lock()
	w.timer = time.AfterFunc(w.period, w.check)
	w.mu.Unlock()
	return w
}

func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.ticks.Load()
	switch {
	case w.paused.Load() || n != w.last:
		w.last, w.idle = n, 0
	default:
		w.idle++
		if w.idle >= watchdogChecks {
			w.cancel(errStalled)
			return
		}
	}
	w.timer.Reset(w.period)
}

// kick records progress.
func (w *watchdog) kick() {
	if w != nil {
		w.ticks.Add(1)
	}
}

// pause suspends stall detection while we wait on ourselves (the bandwidth
// limiter), not on the server.
func (w *watchdog) pause(p bool) {
	if w != nil {
		w.paused.Store(p)
		w.ticks.Add(1)
	}
}

func (w *watchdog) stop() {
	if w != nil {
		w.mu.Lock()
		w.timer.Stop()
		w.mu.Unlock()
	}
}
