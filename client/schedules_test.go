package client_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
	"github.com/hypersdk/hypersdk/client/clienttest"
)

// clock is a settable clock for the scheduler, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func TestSchedules(t *testing.T) {
	t.Parallel()
	// Wednesday 2026-03-25 12:00 UTC; Berlin moves to summer time on Sunday.
	clk := newClock(time.Date(2026, 3, 25, 12, 0, 0, 0, time.UTC))
	srv := clienttest.NewServer(t, clienttest.Options{Now: clk.Now})
	op := newClient(t, srv, clienttest.OperatorToken)
	viewer := newClient(t, srv, clienttest.ViewerToken)
	admin := newClient(t, srv, clienttest.AdminToken)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}

	spec := apitypes.ScheduleSpec{Name: "nightly-db01", Schedule: "30 2 * * *", Timezone: "Europe/Berlin",
		Job: apitypes.JobRequest{Provider: "lab", VM: "/DC0/vm/vm-001", Format: "ova"}}
	if _, err := viewer.CreateSchedule(ctx(t), spec); !client.IsProblem(err, "forbidden") {
		t.Fatalf("viewer create: %v", err)
	}
	sc, err := op.CreateSchedule(ctx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{
		time.Date(2026, 3, 26, 2, 30, 0, 0, berlin),
		time.Date(2026, 3, 27, 2, 30, 0, 0, berlin),
		time.Date(2026, 3, 28, 2, 30, 0, 0, berlin),
		time.Date(2026, 3, 29, 3, 30, 0, 0, berlin), // 02:30 does not exist: shifted past the gap
		time.Date(2026, 3, 30, 2, 30, 0, 0, berlin),
	}
	if !sc.Enabled || sc.Overlap != "skip" || sc.CatchUp != "once" || sc.CreatedBy != "ci-operator" || len(sc.NextRuns) != 5 {
		t.Fatalf("created %+v", sc)
	}
	for i, w := range want {
		if !sc.NextRuns[i].Equal(w) {
			t.Errorf("next run %d = %s, want %s", i, sc.NextRuns[i].In(berlin), w)
		}
	}

	// By name and by ID; list.
	byName, err := viewer.GetSchedule(ctx(t), "nightly-db01")
	if err != nil || byName.ID != sc.ID || byName.Job != spec.Job {
		t.Fatalf("get by name: %+v %v", byName, err)
	}
	if byID, err := viewer.GetSchedule(ctx(t), sc.ID); err != nil || byID.Name != "nightly-db01" {
		t.Fatalf("get by ID: %+v %v", byID, err)
	}
	list, err := viewer.ListSchedules(ctx(t))
	if err != nil || len(list) != 1 || list[0].ID != sc.ID {
		t.Fatalf("list %+v %v", list, err)
	}
	// Names are path segments, escaped: these reach the schedule route.
	for _, name := range []string{"a/b", "..", "x?y=1", "nightly-db01/run"} {
		if _, err := viewer.GetSchedule(ctx(t), name); !client.IsProblem(err, "schedule-not-found") {
			t.Errorf("get %q: %v", name, err)
		}
	}

	// Problems: a name in use, and every mistake of a bad spec at once.
	if _, err := op.CreateSchedule(ctx(t), spec); !client.IsProblem(err, "schedule-conflict") || client.StatusOf(err) != 409 {
		t.Fatalf("duplicate: %v", err)
	}
	_, err = op.CreateSchedule(ctx(t), apitypes.ScheduleSpec{Name: "bad", Schedule: "99 * * * *", Timezone: "Mars/Olympus",
		Job: apitypes.JobRequest{Provider: "nope", VM: "v"}})
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 422 || p.Slug() != "invalid-schedule" ||
		!strings.Contains(strings.Join(p.FieldErrors(), "\n"), "body.timezone: timezone \"Mars/Olympus\"") ||
		!strings.Contains(strings.Join(p.FieldErrors(), "\n"), `body.job.provider: no provider named "nope"`) {
		t.Fatalf("bad spec: %v", err)
	}

	// Preview: nothing saved.
	prev, err := viewer.PreviewSchedule(ctx(t), "0 3 * * *", "America/New_York", 3)
	if err != nil || prev.Timezone != "America/New_York" || len(prev.Next) != 3 {
		t.Fatalf("preview %+v %v", prev, err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	for _, n := range prev.Next {
		if n.In(ny).Hour() != 3 || n.In(ny).Minute() != 0 {
			t.Errorf("preview time %s", n.In(ny))
		}
	}
	if prev, err := viewer.PreviewSchedule(ctx(t), "@hourly", "", 0); err != nil || prev.Timezone != "UTC" || len(prev.Next) != 5 {
		t.Fatalf("preview defaults %+v %v", prev, err)
	}
	if _, err := viewer.PreviewSchedule(ctx(t), "every day", "", 0); !client.IsProblem(err, "invalid-schedule") {
		t.Fatalf("bad preview: %v", err)
	}

	// Update, pause, resume.
	upd, err := op.UpdateSchedule(ctx(t), "nightly-db01", apitypes.SchedulePatch{Schedule: new("0 3 * * *"), Overlap: new("queue")})
	if err != nil || upd.Schedule != "0 3 * * *" || upd.Overlap != "queue" || upd.Timezone != "Europe/Berlin" ||
		!upd.NextRun.Equal(time.Date(2026, 3, 26, 3, 0, 0, 0, berlin)) {
		t.Fatalf("update %+v %v", upd, err)
	}
	if off, err := op.DisableSchedule(ctx(t), sc.ID); err != nil || off.Enabled || off.NextRun != nil || len(off.NextRuns) != 0 {
		t.Fatalf("disable %+v %v", off, err)
	}
	clk.Add(48 * time.Hour) // paused across two due times: not made up
	on, err := op.EnableSchedule(ctx(t), "nightly-db01")
	if err != nil || !on.Enabled || !on.NextRun.Equal(time.Date(2026, 3, 28, 3, 0, 0, 0, berlin)) {
		t.Fatalf("enable %+v %v", on, err)
	}

	// Run now; the execution records the job's outcome (the fake's job may
	// already have finished when the execution is read back).
	x, err := op.RunSchedule(ctx(t), "nightly-db01")
	if err != nil || x.Kind != "manual" || (x.Status != "submitted" && x.Status != "succeeded") || x.JobID == "" || x.DueAt != nil {
		t.Fatalf("run %+v %v", x, err)
	}
	if j, err := op.WatchJob(ctx(t), x.JobID, 10*time.Millisecond, nil); err != nil || j.State != apitypes.JobSucceeded ||
		j.SubmittedBy != "schedule:nightly-db01" {
		t.Fatalf("job %+v %v", j, err)
	}
	// A scheduled run: the clock reaches the due time.
	clk.Set(on.NextRun.Add(3 * time.Second))
	if err := srv.Scheduler.RunDue(ctx(t)); err != nil {
		t.Fatal(err)
	}
	page, err := viewer.ScheduleHistory(ctx(t), "nightly-db01", "", 1)
	if err != nil || len(page.Items) != 1 || page.NextCursor == "" {
		t.Fatalf("history page %+v %v", page, err)
	}
	if s := page.Items[0]; s.Kind != "scheduled" || s.DueAt == nil || !s.DueAt.Equal(*on.NextRun) || s.LagSeconds != 3 {
		t.Fatalf("scheduled run %+v", s)
	}
	if _, err := op.WatchJob(ctx(t), page.Items[0].JobID, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	var all []*apitypes.Execution
	for x, err := range viewer.AllScheduleHistory(ctx(t), sc.ID, 1) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, x)
	}
	if len(all) != 2 || all[0].Kind != "scheduled" || all[1].Kind != "manual" {
		t.Fatalf("all history %+v", all)
	}
	for _, x := range all {
		if x.Status != "succeeded" || x.DurationSeconds == nil {
			t.Errorf("execution %+v: want succeeded with a duration", x)
		}
	}
	if got, err := viewer.GetSchedule(ctx(t), sc.ID); err != nil || got.RunCount != 2 || got.LastRun == nil {
		t.Fatalf("after runs %+v %v", got, err)
	}

	// Delete needs admin; history goes with the schedule.
	if err := op.DeleteSchedule(ctx(t), "nightly-db01"); !client.IsProblem(err, "forbidden") {
		t.Fatalf("operator delete: %v", err)
	}
	if err := admin.DeleteSchedule(ctx(t), "nightly-db01"); err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.ScheduleHistory(ctx(t), sc.ID, "", 0); !client.IsProblem(err, "schedule-not-found") || client.StatusOf(err) != 404 {
		t.Fatalf("history of deleted: %v", err)
	}
	if err := admin.DeleteSchedule(ctx(t), "nightly-db01"); !client.IsProblem(err, "schedule-not-found") {
		t.Fatalf("delete twice: %v", err)
	}
}
