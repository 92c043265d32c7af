// Package backoff computes retry delays: exponential growth from a base delay,
// capped, with "full jitter" so that many clients retrying the same server do
// not synchronise. It is the one retry/backoff helper of the project; the
// transfer engine, the job engine and webhook delivery all use it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes an exponential backoff schedule.
type Policy struct {
	// Base is the delay before the first retry (before jitter).
	Base time.Duration
	// Max caps every delay (before jitter).
	Max time.Duration
	// Jitter is the fraction of each delay that is randomised, 0..1. With 0.5
	// a nominal 8s delay becomes a uniformly random delay in [4s, 8s].
	Jitter float64
}

// Default is a sensible schedule for network operations: 1s, 2s, 4s … 1m, with
// half of each delay randomised.
var Default = Policy{Base: time.Second, Max: time.Minute, Jitter: 0.5}

// Delay returns the delay before retry number attempt (1 for the first retry).
func (p Policy) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	base, maxDelay := p.Base, p.Max
	if base <= 0 {
		base = time.Second
	}
	if maxDelay <= 0 || maxDelay < base {
		maxDelay = base
	}
	d := base
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	j := min(max(p.Jitter, 0), 1)
	if j == 0 {
		return d
	}
	fixed := time.Duration(float64(d) * (1 - j))
	return fixed + rand.N(d-fixed+1)
}

// Sleep waits for the delay before retry number attempt, or until ctx is done,
// whichever comes first. It returns ctx.Err() when the context ended the wait.
func (p Policy) Sleep(ctx context.Context, attempt int) error {
	return Wait(ctx, p.Delay(attempt))
}

// Wait waits for d, or until ctx is done, whichever comes first. It returns
// ctx.Err() when the context ended the wait. It is the project's one
// context-aware sleep.
func Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
