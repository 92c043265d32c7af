package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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

// leaderDuties is what the cluster's leader runs, once per cluster: the
// schedules and the orphan sweeps. It returns when leadership ends.
func leaderDuties(sched *scheduler.Scheduler, set *providers.Set, engine *jobs.Manager, log *slog.Logger) func(ctx context.Context) {
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
		set.SweepOrphans(ctx, orphanSweepInterval, jobMayRun(engine))
		<-ctx.Done()
	}
}
