package providers_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// sweeper is a provider whose platform holds resources of three jobs.
type sweeper struct {
	*providertest.Fake
	mu      sync.Mutex
	sweeps  int
	deleted []string
	swept   chan struct{}
}

func (s *sweeper) SweepOrphans(_ context.Context, isLive func(string) bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, job := range []string{"job-over", "job-live", "job-unknown"} {
		if !isLive(job) {
			out = append(out, job)
		}
	}
	s.deleted = append(s.deleted, out...)
	s.sweeps++
	if s.sweeps == 1 {
		close(s.swept)
	}
	return out, nil
}

// The sweep runs once the instance is connected, deletes what jobs that
// are over left, and keeps what a job it cannot tell about left.
func TestSweepOrphansOnlyWhatEndedJobsLeft(t *testing.T) {
	sw := &sweeper{Fake: providertest.NewFake("cloud"), swept: make(chan struct{})}
	set, err := providers.NewSet(slog.New(slog.NewTextHandler(io.Discard, nil)), &providers.Instance{Provider: sw})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		set.SweepOrphans(ctx, time.Hour, func(_ context.Context, job string) (bool, error) {
			switch job {
			case "job-live":
				return true, nil
			case "job-unknown":
				return false, errors.New("store unreachable")
			}
			return false, nil
		})
	}()
	// Not connected yet: no sweep.
	time.Sleep(50 * time.Millisecond)
	sw.mu.Lock()
	early := sw.sweeps
	sw.mu.Unlock()
	if early != 0 {
		t.Fatalf("swept %d times before the instance connected", early)
	}
	if err := set.ConnectAll(ctx); err != nil {
		t.Fatal(err)
	}
	<-sw.swept
	cancel()
	<-done
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if !slices.Equal(sw.deleted, []string{"job-over"}) || sw.sweeps != 1 {
		t.Errorf("%d sweeps deleted %v, want one deleting job-over", sw.sweeps, sw.deleted)
	}
}
