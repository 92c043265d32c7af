package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/scheduler"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers"
)

// orphanSweepInterval is how often providers that tag what exports create
// (AWS snapshot sets) are swept for what ended jobs left, after the sweep
// at start.
const orphanSweepInterval = 5 * time.Minute

// localJobPrefix starts the job ids `hyperctl export --local` makes up:
// such an export runs in a process of its own that no daemon can ask.
const localJobPrefix = "local-"

// jobMayRun is the sweep's isLive: a job of this daemon's store may run
// until it is over (queued or running: not yet terminal, retries
// included); a job the store does not hold is over (deleted from the
// store, or never one of its jobs), except a local export's, which the
// store cannot know about.
func jobMayRun(engine *jobs.Manager) func(ctx context.Context, jobID string) (bool, error) {
	return func(ctx context.Context, jobID string) (bool, error) {
		if strings.HasPrefix(jobID, localJobPrefix) {
			return true, nil
		}
		j, err := engine.Get(ctx, jobID)
		if errors.Is(err, jobs.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return !j.State.Terminal(), nil
	}
}

// uploadSweepLabel is the provider label under which the orphan metrics
// count the sweep of object-storage uploads that ended jobs left.
const uploadSweepLabel = "output_targets"

// sweepUploads runs the job engine's sweep of uploads that ended jobs left
// in object storage at once (so a restarted daemon removes what the
// killed one left) and then every interval, until ctx ends; obs counts
// each sweep in the orphan metrics.
func sweepUploads(ctx context.Context, engine *jobs.Manager, obs providers.Observer, interval time.Duration, log *slog.Logger) {
	log = log.With("sweep", uploadSweepLabel)
	for {
		removed, err := engine.SweepUploads(ctx)
		if ctx.Err() != nil {
			return
		}
		obs.OrphanSweep(uploadSweepLabel, len(removed), err)
		switch {
		case err != nil:
			log.Warn("sweep of object-storage uploads failed; retrying later", "err", err, "removed", removed)
		case len(removed) > 0:
			log.Info("sweep removed what ended jobs' uploads left in object storage", "removed", removed)
		}
		if backoff.Wait(ctx, interval) != nil {
			return
		}
	}
}

// leaderDuties is what the cluster's leader runs, once per cluster: the
// schedules and the orphan sweeps (platforms' and object storage's). It
// returns when leadership ends.
func leaderDuties(sched *scheduler.Scheduler, set *providers.Set, engine *jobs.Manager, obs providers.Observer, log *slog.Logger) func(ctx context.Context) {
	return func(ctx context.Context) {
		for {
			err := sched.Start(ctx)
			if err == nil {
				break
			}
			log.Warn("starting the scheduler failed; retrying", "err", err)
			if backoff.Wait(ctx, 5*time.Second) != nil {
				return
			}
		}
		defer sched.Stop()
		var wg sync.WaitGroup
		wg.Go(func() { sweepUploads(ctx, engine, obs, orphanSweepInterval, log) })
		set.SweepOrphans(ctx, orphanSweepInterval, jobMayRun(engine))
		wg.Wait()
	}
}
