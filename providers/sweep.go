package providers

import (
	"context"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/internal/backoff"
)

// OrphanSweeper is implemented by providers whose exports create platform
// resources tagged with the job id (AWS snapshot sets) that cost money
// while they live. Cleanup removes them when an export ends; a daemon
// killed mid-export, or a deletion that failed, leaves them behind, and
// the sweep finds them by their tag.
type OrphanSweeper interface {
	// SweepOrphans deletes what exports of jobs that isLive reports over
	// left on the platform and returns what it deleted. isLive must answer
	// true for every job that may still run.
	SweepOrphans(ctx context.Context, isLive func(jobID string) bool) ([]string, error)
}

// sweepRetry is how soon a sweep of an instance not yet connected is
// tried again.
const sweepRetry = time.Second

// SweepOrphans runs the sweep of every instance that is an OrphanSweeper
// as soon as it is connected (so a restarted daemon removes what the
// killed one left), then every interval, until ctx ends. isLive says
// whether a job may still run; when it cannot tell (err != nil) the job is
// taken for live: nothing is deleted on a doubt.
func (s *Set) SweepOrphans(ctx context.Context, interval time.Duration, isLive func(ctx context.Context, jobID string) (bool, error)) {
	var wg sync.WaitGroup
	for _, in := range s.List() {
		if sw, ok := in.Provider.(OrphanSweeper); ok {
			wg.Go(func() { s.sweep(ctx, in, sw, interval, isLive) })
		}
	}
	wg.Wait()
}

func (s *Set) sweep(ctx context.Context, in *Instance, sw OrphanSweeper, interval time.Duration, isLive func(context.Context, string) (bool, error)) {
	log := s.log.With("provider", in.Name())
	var wait time.Duration
	for {
		if backoff.Wait(ctx, wait) != nil {
			return
		}
		in.mu.Lock()
		connected := in.connected
		in.mu.Unlock()
		if !connected {
			wait = sweepRetry
			continue
		}
		deleted, err := sw.SweepOrphans(ctx, func(jobID string) bool {
			live, err := isLive(ctx, jobID)
			if err != nil {
				log.Warn("cannot tell whether a job is over; keeping what it left", "job_id", jobID, "err", err)
				return true
			}
			return live
		})
		if ctx.Err() != nil {
			return
		}
		if s.observer != nil {
			s.observer.OrphanSweep(in.Name(), len(deleted), err)
		}
		switch {
		case err != nil:
			log.Warn("orphan sweep failed; retrying later", "err", err, "deleted", deleted)
		case len(deleted) > 0:
			log.Info("orphan sweep deleted what ended jobs left", "deleted", deleted)
		}
		wait = interval
	}
}
