package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/daemon/jobs"
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
