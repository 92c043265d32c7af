package pipeline

import (
	"context"
	"sync"
)

// aimd is an adaptive concurrency limit for requests to one platform,
// TCP-style: it starts at start, grows by one per success (slow start)
// until the first throttling answer, then by one per limit successes
// (additive increase), and halves on throttling (multiplicative
// decrease), never below 1 nor above max. Throttling answers to requests
// that were sent before the last decrease do not halve again: they
// reflect the old limit, not the new one.
type aimd struct {
	mu        sync.Mutex
	limit     int
	max       int
	inUse     int
	slowStart bool
	successes int           // since the last increase, in additive mode
	epoch     uint64        // bumped by every decrease
	wake      chan struct{} // closed when a slot frees or the limit grows
	peak      int
}

// outcome of a request, told to release.
type outcome int

const (
	outcomeOK        outcome = iota
	outcomeFailed            // a failure that says nothing about load
	outcomeThrottled         // the platform asked us to slow down
)

func newAIMD(start, maxLimit int) *aimd {
	maxLimit = max(1, maxLimit)
	start = min(max(1, start), maxLimit)
	return &aimd{limit: start, max: maxLimit, slowStart: true, wake: make(chan struct{}), peak: start}
}

// acquire waits for a free slot and returns the epoch the request is
// sent in, to hand back to release.
func (a *aimd) acquire(ctx context.Context) (uint64, error) {
	for {
		a.mu.Lock()
		if a.inUse < a.limit {
			a.inUse++
			e := a.epoch
			a.mu.Unlock()
			return e, nil
		}
		w := a.wake
		a.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// release frees the slot of a request sent in epoch and adapts the limit
// to its outcome.
func (a *aimd) release(epoch uint64, o outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inUse--
	switch o {
	case outcomeOK:
		if a.slowStart {
			a.grow()
		} else if a.successes++; a.successes >= a.limit {
			a.grow()
		}
	case outcomeThrottled:
		if epoch == a.epoch {
			a.limit = max(1, a.limit/2)
			a.slowStart, a.successes = false, 0
			a.epoch++
		}
	}
	close(a.wake)
	a.wake = make(chan struct{})
}

func (a *aimd) grow() {
	a.successes = 0
	if a.limit < a.max {
		a.limit++
		a.peak = max(a.peak, a.limit)
	}
}

// state returns the current limit and the highest it reached.
func (a *aimd) state() (limit, peak int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limit, a.peak
}
