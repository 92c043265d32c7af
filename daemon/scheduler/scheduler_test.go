package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/scheduler"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// clock is the injected clock: tests move it, nothing sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type env struct {
	db    *store.DB
	clk   *clock
	jobs  *jobs.Manager
	fake  *providertest.Fake
	sched *scheduler.Scheduler
}

func newEnv(t *testing.T, db *store.DB, start time.Time, node string) *env {
	t.Helper()
	fake := providertest.NewFake("lab")
	set, _ := providers.NewSet(quiet(), &providers.Instance{Provider: fake})
	if err := set.ConnectAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: start}
	cfg := config.Default()
	e := &env{db: db, clk: clk, fake: fake}
	m, err := jobs.New(db, set, jobs.Options{NodeID: node, Jobs: cfg.Jobs, Export: cfg.Export, ExportDir: t.TempDir(),
		HeartbeatInterval: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond, Logger: quiet(),
		Events: jobs.EventSinks{scheduler.ExecutionRecorder{}}})
	if err != nil {
		t.Fatal(err)
	}
	e.jobs = m
	e.sched = scheduler.New(db, m, scheduler.Options{Now: clk.Now, Logger: quiet()})
	return e
}

func at(h, m int) time.Time { return time.Date(2026, 6, 1, h, m, 0, 0, time.UTC) }

func spec(name, expr string) apitypes.ScheduleSpec {
	return apitypes.ScheduleSpec{Name: name, Schedule: expr, Job: apitypes.JobRequest{Provider: "lab", VM: "vm-001"}}
}

func history(t *testing.T, s *scheduler.Scheduler, id string) []*apitypes.Execution {
	t.Helper()
	h, _, err := s.History(context.Background(), id, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestFiresOnTimeOnceWithHistory(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, at(10, 2), "a")
		ctx := context.Background()
		sc, err := e.sched.Create(ctx, spec("five", "*/5 * * * *"), "tester")
		if err != nil {
			t.Fatal(err)
		}
		if !sc.NextRun.Equal(at(10, 5)) || len(sc.NextRuns) != 5 || !sc.NextRuns[4].Equal(at(10, 25)) {
			t.Fatalf("next runs %v", sc.NextRuns)
		}
		e.clk.Set(at(10, 4))
		_ = e.sched.RunDue(ctx)
		if n := len(history(t, e.sched, sc.ID)); n != 0 {
			t.Fatalf("fired early: %d", n)
		}
		e.clk.Set(at(10, 5).Add(200 * time.Millisecond))
		for range 3 {
			if err := e.sched.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
		}
		h := history(t, e.sched, sc.ID)
		if len(h) != 1 || h[0].Kind != apitypes.ExecutionScheduled || h[0].Status != apitypes.ExecutionSubmitted || h[0].JobID == "" ||
			!h[0].DueAt.Equal(at(10, 5)) || h[0].LagSeconds > 1 {
			t.Fatalf("history %+v", h)
		}
		j, err := e.jobs.Get(ctx, h[0].JobID)
		if err != nil || j.SubmittedBy != "schedule:five" || j.VM != "vm-001" {
			t.Fatalf("job %+v %v", j, err)
		}
		sc, _ = e.sched.Get(ctx, "five")
		if sc.RunCount != 1 || !sc.NextRun.Equal(at(10, 10)) || sc.LastRun == nil {
			t.Fatalf("schedule after run %+v", sc)
		}
	})
}

// The daemon is down across two due times: catch_up once makes up with
// exactly one run, recorded as such; none makes none. Both resume on time.
func TestCatchUpPolicies(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, at(10, 0), "a")
		once, _ := e.sched.Create(ctx, spec("hourly-once", "@hourly"), "t")
		s := spec("hourly-none", "@hourly")
		s.CatchUp = apitypes.CatchUpNone
		s.Overlap = apitypes.OverlapAllow
		none, _ := e.sched.Create(ctx, s, "t")
		// Down from 10:00 to 12:30 (11:00 and 12:00 missed); a new daemon starts.
		e.clk.Set(at(12, 30))
		restarted := scheduler.New(db, e.jobs, scheduler.Options{Now: e.clk.Now, Logger: quiet()})
		if err := restarted.Start(ctx); err != nil {
			t.Fatal(err)
		}
		restarted.Stop()
		h := history(t, restarted, once.ID)
		if len(h) != 1 || h[0].Kind != apitypes.ExecutionCatchUp || !h[0].DueAt.Equal(at(12, 0)) {
			t.Fatalf("catch_up once: %+v", h)
		}
		if h := history(t, restarted, none.ID); len(h) != 0 {
			t.Fatalf("catch_up none ran %d times", len(h))
		}
		for _, id := range []string{once.ID, none.ID} {
			sc, _ := restarted.Get(ctx, id)
			if !sc.NextRun.Equal(at(13, 0)) {
				t.Errorf("%s next run %v", sc.Name, sc.NextRun)
			}
		}
		e.clk.Set(at(13, 0))
		_ = restarted.RunDue(ctx)
		if h := history(t, restarted, none.ID); len(h) != 1 || h[0].Kind != apitypes.ExecutionScheduled {
			t.Fatalf("none resumes on time: %+v", h)
		}
	})
}

// Two daemons share one PostgreSQL database: 20 schedules over 10
// simulated minutes, both firing concurrently every tick: every due time
// runs exactly once.
func TestTwoDaemonsFireEachDueTimeOnce(t *testing.T) {
	db := storetest.Open(t, store.Postgres)
	ctx := context.Background()
	a := newEnv(t, db, at(9, 59), "a")
	b := newEnv(t, db, at(9, 59), "b")
	b.clk = a.clk
	b.sched = scheduler.New(db, b.jobs, scheduler.Options{Now: a.clk.Now, Logger: quiet()})
	var ids []string
	for i := range 20 {
		s := spec(fmt.Sprintf("s%02d", i), "* * * * *")
		s.Overlap = apitypes.OverlapAllow
		sc, err := a.sched.Create(ctx, s, "t")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sc.ID)
	}
	for minute := range 10 {
		for _, sub := range []time.Duration{0, 250 * time.Millisecond, 30 * time.Second} {
			a.clk.Set(at(10, minute).Add(sub))
			var wg sync.WaitGroup
			for _, s := range []*scheduler.Scheduler{a.sched, b.sched} {
				wg.Go(func() {
					if err := s.RunDue(ctx); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
	}
	for _, id := range ids {
		h := history(t, a.sched, id)
		seen := map[time.Time]int{}
		for _, x := range h {
			seen[*x.DueAt]++
		}
		if len(h) != 10 || len(seen) != 10 {
			t.Fatalf("schedule %s: %d executions over %d due times", id, len(h), len(seen))
		}
	}
}

// overlap: skip — a run still going when the next is due: no second run,
// the skip is in the history; queue — the run waits and starts after.
func TestOverlapPolicies(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, at(10, 0), "a")
		skip, _ := e.sched.Create(ctx, spec("skip", "*/10 * * * *"), "t")
		qs := spec("queue", "*/10 * * * *")
		qs.Overlap = apitypes.OverlapQueue
		queue, _ := e.sched.Create(ctx, qs, "t")
		// The job engine is not working jobs: each run stays queued, longer
		// than the interval.
		for _, m := range []int{10, 20, 30} {
			e.clk.Set(at(10, m))
			if err := e.sched.RunDue(ctx); err != nil {
				t.Fatal(err)
			}
		}
		h := history(t, e.sched, skip.ID)
		if len(h) != 3 || h[2].Status != apitypes.ExecutionSubmitted || h[1].Status != apitypes.ExecutionSkipped || h[0].Status != apitypes.ExecutionSkipped {
			t.Fatalf("skip history %+v", h)
		}
		list, _, _ := e.jobs.List(ctx, apitypes.JobFilter{})
		active := map[string]int{}
		for _, j := range list {
			active[j.SubmittedBy]++
		}
		if active["schedule:skip"] != 1 || active["schedule:queue"] != 1 {
			t.Fatalf("jobs per schedule %v", active)
		}
		// The queued schedule's first job ends; its waiting run starts.
		qh := history(t, e.sched, queue.ID)
		if _, err := e.jobs.Cancel(ctx, qh[0].JobID, "t"); err != nil {
			t.Fatal(err)
		}
		e.clk.Set(at(10, 31))
		_ = e.sched.RunDue(ctx)
		qh = history(t, e.sched, queue.ID)
		if len(qh) != 2 || qh[0].Kind != apitypes.ExecutionQueued || !qh[0].DueAt.Equal(at(10, 20)) {
			t.Fatalf("queue history %+v", qh)
		}
	})
}

func TestEndDateMaxRunsAndPause(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	e := newEnv(t, db, at(10, 0), "a")
	s := spec("twice", "*/10 * * * *")
	s.Overlap = apitypes.OverlapAllow
	two := 2
	s.MaxRuns = &two
	max2, _ := e.sched.Create(ctx, s, "t")
	if sc, _ := e.sched.Get(ctx, max2.ID); len(sc.NextRuns) != 2 {
		t.Fatalf("next runs of a 2-run schedule: %v", sc.NextRuns)
	}
	e.clk.Set(at(10, 10))
	_ = e.sched.RunDue(ctx)
	if sc, _ := e.sched.Get(ctx, max2.ID); len(sc.NextRuns) != 1 {
		t.Fatalf("next runs after 1 of 2: %v", sc.NextRuns)
	}
	for _, m := range []int{20, 30, 40} {
		e.clk.Set(at(10, m))
		_ = e.sched.RunDue(ctx)
	}
	if h := history(t, e.sched, max2.ID); len(h) != 2 {
		t.Fatalf("max_runs 2: %d runs", len(h))
	}
	if sc, _ := e.sched.Get(ctx, max2.ID); sc.Enabled || sc.NextRun != nil {
		t.Fatalf("finished schedule still enabled: %+v", sc)
	}
	on := true
	if _, err := e.sched.Update(ctx, max2.ID, apitypes.SchedulePatch{Enabled: &on}); !errors.Is(err, scheduler.ErrConflict) {
		t.Fatalf("enabling a finished schedule: %v", err)
	}
	p := spec("paused", "*/10 * * * *")
	off := false
	p.Enabled = &off
	paused, _ := e.sched.Create(ctx, p, "t")
	e.clk.Set(at(11, 0))
	_ = e.sched.RunDue(ctx)
	if h := history(t, e.sched, paused.ID); len(h) != 0 {
		t.Fatal("a paused schedule ran")
	}
	sc, err := e.sched.Update(ctx, paused.ID, apitypes.SchedulePatch{Enabled: &on})
	if err != nil || !sc.NextRun.Equal(at(11, 10)) {
		t.Fatalf("resume: next %v, %v", sc.NextRun, err)
	}
	x, err := e.sched.RunNow(ctx, "paused")
	if err != nil || x.Kind != apitypes.ExecutionManual || x.JobID == "" {
		t.Fatalf("run now %+v %v", x, err)
	}
}

func TestValidation(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newEnv(t, db, at(10, 0), "a")
	ctx := context.Background()
	for _, tc := range []struct {
		spec apitypes.ScheduleSpec
		want string
	}{
		{apitypes.ScheduleSpec{Name: "x", Schedule: "nope", Job: apitypes.JobRequest{Provider: "lab", VM: "v"}}, "use 5 fields"},
		{apitypes.ScheduleSpec{Name: "x", Schedule: "@daily", Timezone: "Moon/Base", Job: apitypes.JobRequest{Provider: "lab", VM: "v"}}, "IANA"},
		{apitypes.ScheduleSpec{Name: "x", Schedule: "@daily", Job: apitypes.JobRequest{Provider: "other", VM: "v"}}, `no provider named "other"`},
		{apitypes.ScheduleSpec{Name: "bad name!", Schedule: "@daily", Job: apitypes.JobRequest{Provider: "lab", VM: "v"}}, "name:"},
		{apitypes.ScheduleSpec{Name: "x", Schedule: "@daily", Overlap: "sometimes", Job: apitypes.JobRequest{Provider: "lab", VM: "v"}}, "overlap"},
		{apitypes.ScheduleSpec{Name: "x", Schedule: "@daily", Timezone: "Local", Job: apitypes.JobRequest{Provider: "lab", VM: "v"}}, "different zone on every host"},
		{apitypes.ScheduleSpec{Name: "sch_0123", Schedule: "@daily", Job: apitypes.JobRequest{Provider: "lab", VM: "v"}}, "reserved for schedule IDs"},
		{apitypes.ScheduleSpec{Name: "x", Schedule: "nope", Timezone: "Moon/Base", Job: apitypes.JobRequest{Provider: "lab", VM: "v"}}, "use 5 fields"},
		{apitypes.ScheduleSpec{Name: "x", Schedule: "nope", Timezone: "Moon/Base", Job: apitypes.JobRequest{Provider: "lab", VM: "v"}}, "IANA"},
	} {
		if _, err := e.sched.Create(ctx, tc.spec, "t"); !errors.Is(err, scheduler.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.want)
		}
	}
	if _, err := e.sched.Create(ctx, spec("dup", "@daily"), "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sched.Create(ctx, spec("dup", "@daily"), "t"); !errors.Is(err, scheduler.ErrConflict) {
		t.Errorf("duplicate name: %v", err)
	}
}

// When a scheduled job ends, its execution records the final status and
// duration.
func TestExecutionRecordsJobOutcome(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db, at(10, 0), "a")
		if err := e.jobs.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer e.jobs.Stop(ctx)
		sc, _ := e.sched.Create(ctx, spec("runs", "@hourly"), "t")
		e.clk.Set(at(11, 0))
		_ = e.sched.RunDue(ctx)
		deadline := time.Now().Add(30 * time.Second)
		for {
			h := history(t, e.sched, sc.ID)
			if len(h) == 1 && h[0].Status == "succeeded" && h[0].DurationSeconds != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("execution not updated: %+v", h[0])
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
