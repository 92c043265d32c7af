package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
	"github.com/hypersdk/hypersdk/client/clienttest"
	"github.com/hypersdk/hypersdk/providers"
)

// clock is the scheduler's clock and hyperctl's, set by the test.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// scheduleHarness runs hyperctl against a daemon whose scheduler, like
// hyperctl, reads clk.
type scheduleHarness struct {
	*harness
	clk *clock
}

// Wednesday 2026-03-25 12:00 UTC (13:00 in Berlin); Berlin moves to summer
// time on Sunday the 29th at 02:00.
var t0 = time.Date(2026, 3, 25, 12, 0, 0, 0, time.UTC)

func newScheduleHarness(t *testing.T, o clienttest.Options) *scheduleHarness {
	t.Helper()
	clk := &clock{}
	clk.Set(t0)
	o.Now = clk.Now
	return &scheduleHarness{harness: newHarness(t, o), clk: clk}
}

func (h *scheduleHarness) run(args ...string) result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	e := h.env(&stdout, &stderr)
	e.now = h.clk.Now
	code := run(ctx, args, e)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (h *scheduleHarness) as(token string, args ...string) result {
	h.t.Helper()
	old := h.vars["HYPERSDK_TOKEN"]
	h.vars["HYPERSDK_TOKEN"] = token
	defer func() { h.vars["HYPERSDK_TOKEN"] = old }()
	return h.run(args...)
}

func (h *scheduleHarness) schedule(name string) *apitypes.Schedule {
	h.t.Helper()
	r := h.run("schedules", "get", name, "-o", "json").expect(h.t, 0)
	var sc apitypes.Schedule
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		h.t.Fatalf("get -o json: %v\n%s", err, r.stdout)
	}
	return &sc
}

func (h *scheduleHarness) history(name string, args ...string) *apitypes.ExecutionList {
	h.t.Helper()
	r := h.run(append([]string{"schedules", "history", name, "-o", "json"}, args...)...).expect(h.t, 0)
	var l apitypes.ExecutionList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		h.t.Fatalf("history -o json: %v\n%s", err, r.stdout)
	}
	return &l
}

// lines returns the non-empty lines of s that contain want.
func lines(s, want string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.TrimSpace(l) != "" && strings.Contains(l, want) {
			out = append(out, l)
		}
	}
	return out
}

func TestSchedulesCreateGetList(t *testing.T) {
	t.Parallel()
	h := newScheduleHarness(t, clienttest.Options{})

	r := h.run("schedules", "create", "nightly-db01", "30 2 * * *", "--timezone", "Europe/Berlin",
		"--provider", "lab", "--vm", "/DC0/vm/vm-001", "--format", "ova", "--compress", "--compression", "zstd",
		"--compression-level", "3", "--snapshot", "--parallel", "2", "--bandwidth-limit", "50MiB", "--max-attempts", "2",
		"--overlap", "queue", "--max-runs", "30").
		expect(t, 0, "schedule nightly-db01 created", "Schedule:", "30 2 * * *", "Time zone:", "Europe/Berlin",
			"Overlap:", "queue", "Catch-up:", "once", "Runs:", "0/30", "Next run:", "Thu 2026-03-26 02:30:00 CET (in 13h30m)",
			"Job template:", "Provider:", "lab", "VM:", "/DC0/vm/vm-001", "<export directory>/<job id> (one per run)",
			"Format:", "ova, compressed with zstd (level 3)",
			"Options:", "snapshot, 2 parallel downloads, limit 50.0 MiB/s, 2 attempts",
			"Next runs (Europe/Berlin):")
	// The next five runs on Berlin's wall clock; Sunday's 02:30 does not
	// exist and runs shifted past the gap.
	next := []string{
		"Thu 2026-03-26 02:30:00 CET   in 13h30m",
		"Fri 2026-03-27 02:30:00 CET   in 37h30m",
		"Sat 2026-03-28 02:30:00 CET   in 2d13h",
		"Sun 2026-03-29 03:30:00 CEST  in 3d13h",
		"Mon 2026-03-30 02:30:00 CEST  in 4d12h",
	}
	for _, n := range next {
		if len(lines(r.stdout, n)) != 1 {
			t.Fatalf("next runs lack %q:\n%s", n, r.stdout)
		}
	}
	// get shows the same; its JSON is the API's schedule with the template.
	r = h.run("schedules", "get", "nightly-db01").expect(t, 0, "ID:", "sch_", "Created:", "by ci-operator")
	for _, n := range next {
		if len(lines(r.stdout, n)) != 1 {
			t.Fatalf("get lacks %q:\n%s", n, r.stdout)
		}
	}
	sc := h.schedule("nightly-db01")
	want := apitypes.JobRequest{Provider: "lab", VM: "/DC0/vm/vm-001", Format: "ova", Compress: new(true), Compression: "zstd",
		CompressionLevel: new(3), Snapshot: true, ParallelDownloads: 2, BandwidthLimit: 50 << 20, MaxAttempts: 2}
	if got, _ := json.Marshal(sc.Job); string(got) != string(must(json.Marshal(want))) {
		t.Fatalf("template %s, want %s", got, must(json.Marshal(want)))
	}
	berlin := must(time.LoadLocation("Europe/Berlin"))
	if len(sc.NextRuns) != 5 || !sc.NextRuns[3].Equal(time.Date(2026, 3, 29, 3, 30, 0, 0, berlin)) || *sc.MaxRuns != 30 {
		t.Fatalf("schedule %+v", sc)
	}
	if h.run("schedules", "get", sc.ID, "-o", "json").expect(t, 0).stdout != h.run("schedules", "get", "nightly-db01", "-o", "json").stdout {
		t.Fatal("get by ID and by name differ")
	}

	// A second one, paused, with defaults.
	h.clk.Add(30 * time.Minute)
	h.run("schedules", "create", "web-6h", "@every 6h", "--provider", "lab", "--vm", "vm-002", "--disabled",
		"--end-at", "2026-12-31T23:00:00Z").
		expect(t, 0, "schedule web-6h created", "Time zone:", "UTC", "no (paused; runs missed while paused are not made up)",
			"Next run:", "- (paused)", "End at:", "Thu 2026-12-31 23:00:00 UTC", "Format:", "the daemon's default", "skip")

	// list: table, JSON, YAML.
	r = h.run("schedules", "list").expect(t, 0)
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(rows) != 3 {
		t.Fatalf("list:\n%s", r.stdout)
	}
	for i, want := range [][]string{
		{"NAME", "SCHEDULE", "TZ", "ENABLED", "NEXT RUN", "LAST RUN", "RUNS", "OVERLAP"},
		{"nightly-db01", "30 2 * * *", "Europe/Berlin", "yes", "in 13h (Thu 2026-03-26 02:30 CET)", "-", "0/30", "queue"},
		{"web-6h", "@every 6h", "UTC", "no", "paused", "-", "0", "skip"},
	} {
		cells := strings.Split(rows[i], "  ")
		var got []string
		for _, c := range cells {
			if c = strings.TrimSpace(c); c != "" {
				got = append(got, c)
			}
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
	}
	if col := strings.Index(rows[0], "NEXT RUN"); strings.Index(rows[1], "in 13h") != col || strings.Index(rows[2], "paused") != col {
		t.Errorf("columns not aligned:\n%s", r.stdout)
	}
	r = h.run("schedules", "list", "-o", "json").expect(t, 0)
	var list struct{ Items []*apitypes.Schedule }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Items) != 2 || list.Items[0].Name != "nightly-db01" ||
		len(list.Items[0].NextRuns) != 5 || list.Items[1].Enabled || list.Items[1].EndAt == nil {
		t.Fatalf("list -o json: %v\n%s", err, r.stdout)
	}
	r = h.run("schedules", "list", "-o", "yaml").expect(t, 0)
	var y struct {
		Items []map[string]any `yaml:"items"`
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &y); err != nil || len(y.Items) != 2 {
		t.Fatalf("list -o yaml: %v\n%s", err, r.stdout)
	}
	if y.Items[0]["name"] != "nightly-db01" || y.Items[0]["catch_up"] != "once" || y.Items[0]["max_runs"] != 30 ||
		!strings.Contains(r.stdout, "\n    job:\n      provider: lab\n") || strings.Contains(r.stdout, "{") {
		t.Fatalf("list -o yaml:\n%s", r.stdout)
	}

	// Mistakes the daemon finds: every problem named, exit 1.
	h.run("schedules", "create", "nightly-db01", "@daily", "--provider", "lab", "--vm", "vm-003").
		expect(t, 1, `create schedule nightly-db01: a schedule named "nightly-db01" exists (HTTP 409 schedule-conflict)`)
	r = h.run("schedules", "create", "bad", "61 25 * * *", "--timezone", "Europe/Berlin", "--provider", "nope", "--vm", "vm-001").
		expect(t, 1, "create schedule bad: ", "\n  argument CRON: "+`schedule "61 25 * * *": `, "use 5 fields", "\n  --provider: "+`no provider named "nope"`,
			"(HTTP 422 invalid-schedule)")
	if r.stdout != "" {
		t.Fatalf("stdout of a failure: %q", r.stdout)
	}
	h.run("schedules", "create", "bad", "@daily", "--timezone", "Mars/Olympus", "--provider", "lab", "--vm", "vm-001").
		expect(t, 1, `timezone "Mars/Olympus" is not an IANA time zone`, "(HTTP 422 invalid-schedule)")
	h.run("schedules", "create", "bad", "@daily", "--provider", "lab", "--vm", "v", "--overlap", "sometimes").
		expect(t, 1, "\n  --overlap: ", `"sometimes"`, "HTTP 422 validation-failed")
	h.run("schedules", "create", "bad name", "@daily", "--provider", "lab", "--vm", "v").
		expect(t, 1, "\n  argument NAME: letters, digits", "HTTP 422 invalid-schedule")
	h.as(clienttest.ViewerToken, "schedules", "create", "v", "@daily", "--provider", "lab", "--vm", "v").
		expect(t, 1, "HTTP 403 forbidden", "this operation needs operator")
	h.run("schedules", "get", "nope").expect(t, 1, "get schedule nope: schedule not found: nope (HTTP 404 schedule-not-found)")
	if list := h.run("schedules", "list", "-o", "json").stdout; strings.Count(list, `"name"`) != 2 {
		t.Fatalf("a refused create stored something:\n%s", list)
	}
}

// An expression that is no cron expression, or that matches no date, is
// refused with the reason before anything is saved (create, update and the
// dry run alike); a leap-day schedule is valid and runs in leap years.
func TestSchedulesRefuseExpressionsThatNeverRun(t *testing.T) {
	t.Parallel()
	h := newScheduleHarness(t, clienttest.Options{})
	h.run("schedules", "create", "bad", "7", "--provider", "lab", "--vm", "vm-001").
		expect(t, 1, "create schedule bad: invalid schedule (HTTP 422 invalid-schedule)",
			`argument CRON: schedule "7": expected exactly 5 fields, found 1`,
			"minute hour day-of-month month day-of-week", "@daily", "@every <duration>")
	h.run("schedules", "create", "bad", "0 0 31 2 *", "--provider", "lab", "--vm", "vm-001").
		expect(t, 1, `argument CRON: schedule "0 0 31 2 *": never fires: February has no day 31`)
	h.run("schedules", "create", "bad", "0 0 31 4,6,9,11 *", "--provider", "lab", "--vm", "vm-001").
		expect(t, 1, "argument CRON: ", "never fires: April, June, September and November have no day 31")
	h.run("schedules", "next", "0 0 30 2 *").expect(t, 1, `never fires: February has no day 30`)
	h.run("schedules", "list").expect(t, 0, "No schedules.")

	h.run("schedules", "create", "leap", "0 0 29 2 *", "--provider", "lab", "--vm", "vm-001").
		expect(t, 0, "schedule leap created", "Tue 2028-02-29 00:00:00 UTC")
	h.run("schedules", "update", "leap", "--schedule", "0 0 30 2 *").
		expect(t, 1, "update schedule leap: ", `--schedule: schedule "0 0 30 2 *": never fires: February has no day 30`)
	if sc := h.schedule("leap"); sc.Schedule != "0 0 29 2 *" || sc.NextRun == nil ||
		!sc.NextRun.Equal(time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("a refused update changed the schedule: %+v", sc)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSchedulesUpdateEnableDelete(t *testing.T) {
	t.Parallel()
	h := newScheduleHarness(t, clienttest.Options{})
	h.run("schedules", "create", "db", "30 2 * * *", "--timezone", "Europe/Berlin", "--provider", "lab", "--vm", "vm-001",
		"--format", "ova", "--compress", "--compression", "zstd", "--snapshot", "--output", "backups/db").expect(t, 0)

	// Timing and template flags together: only what is given changes.
	h.run("schedules", "update", "db", "--schedule", "0 3 * * *", "--timezone", "America/New_York", "--format", "ovf", "--compress=false",
		"--parallel", "4", "--power-off", "--power-off-timeout", "5m", "--catch-up", "none").
		expect(t, 0, "schedule db updated", "0 3 * * *", "America/New_York", "Thu 2026-03-26 03:00:00 EDT (in 19h)",
			"power-off (guest shutdown wait 5m), 4 parallel downloads", "backups/db (every run writes here)")
	sc := h.schedule("db")
	want := apitypes.JobRequest{Provider: "lab", VM: "vm-001", Output: "backups/db", Format: "ovf", Compress: new(false), Compression: "zstd",
		ParallelDownloads: 4, PowerOff: true, PowerOffTimeout: "5m"}
	if got := string(must(json.Marshal(sc.Job))); got != string(must(json.Marshal(want))) {
		t.Fatalf("merged template %s, want %s", got, must(json.Marshal(want)))
	}
	if sc.CatchUp != "none" || sc.Overlap != "skip" || sc.Schedule != "0 3 * * *" {
		t.Fatalf("updated %+v", sc)
	}
	// An empty value returns an option to the daemon's default; the VM
	// can change too.
	h.run("schedules", "update", "db", "--output", "", "--vm", "vm-002", "--max-runs", "7", "--end-at", "2027-01-01T00:00:00+01:00").expect(t, 0)
	sc = h.schedule("db")
	if sc.Job.Output != "" || sc.Job.VM != "vm-002" || sc.Job.Format != "ovf" || *sc.MaxRuns != 7 ||
		!sc.EndAt.Equal(time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)) || sc.Schedule != "0 3 * * *" {
		t.Fatalf("updated %+v %+v", sc, sc.Job)
	}
	// A bad change is refused whole.
	h.run("schedules", "update", "db", "--schedule", "0 3 * *", "--provider", "nope").
		expect(t, 1, "update schedule db: ", "use 5 fields", `no provider named "nope"`, "HTTP 422 invalid-schedule")
	if got := h.schedule("db"); got.Schedule != "0 3 * * *" || got.Job.Provider != "lab" {
		t.Fatalf("a refused update changed the schedule: %+v", got)
	}
	h.run("schedules", "update", "nope", "--format", "ova").expect(t, 1, "HTTP 404 schedule-not-found")

	// Pause and resume: the time paused is not made up.
	h.run("schedules", "disable", "db").expect(t, 0, "schedule db paused; 'hyperctl schedules enable db' resumes it")
	h.run("schedules", "list").expect(t, 0, "no", "paused")
	h.run("schedules", "next", "db").expect(t, 0, "Schedule db is paused")
	h.clk.Add(72 * time.Hour)
	h.run("schedules", "enable", "db").expect(t, 0, "schedule db enabled; next run: in 19h (Sun 2026-03-29 03:00 EDT)")
	h.as(clienttest.ViewerToken, "schedules", "disable", "db").expect(t, 1, "HTTP 403 forbidden")
	r := h.run("schedules", "disable", "db", "-o", "json").expect(t, 0)
	var off apitypes.Schedule
	if err := json.Unmarshal([]byte(r.stdout), &off); err != nil || off.Enabled {
		t.Fatalf("disable -o json: %v\n%s", err, r.stdout)
	}

	// Delete needs admin.
	h.run("schedules", "delete", "db").expect(t, 1, "delete schedule db: ", "HTTP 403 forbidden", "this operation needs admin",
		"its role does not allow this")
	h.as(clienttest.AdminToken, "schedules", "delete", "db").expect(t, 0, "schedule db deleted")
	h.run("schedules", "get", "db").expect(t, 1, "HTTP 404 schedule-not-found")
	h.as(clienttest.AdminToken, "schedules", "delete", "db").expect(t, 1, "HTTP 404 schedule-not-found")
	h.run("schedules", "list").expect(t, 0, "No schedules.")
}

func TestScheduleRunWaitAndHistory(t *testing.T) {
	t.Parallel()
	h := newScheduleHarness(t, clienttest.Options{})
	h.run("schedules", "create", "hourly-web", "0 * * * *", "--provider", "lab", "--vm", "vm-002", "--format", "ovf").expect(t, 0)
	h.run("schedules", "history", "hourly-web").expect(t, 0, "has not run yet")

	// run --wait follows the job as 'jobs watch' does.
	r := h.run("schedules", "run", "hourly-web", "--wait").expect(t, 0, "schedule hourly-web: execution ", " submitted job ",
		": succeeded", "succeeded: lab vm-002", "4 file(s), 1.5 MiB")
	jobID := strings.Fields(lines(r.stderr, "submitted job")[0])[6]
	hist := h.history("hourly-web")
	if len(hist.Items) != 1 {
		t.Fatalf("history %+v", hist)
	}
	x := hist.Items[0]
	if x.Kind != "manual" || x.Status != "succeeded" || x.JobID != jobID || x.DurationSeconds == nil || x.DueAt != nil ||
		!x.ExecutedAt.Equal(t0) {
		t.Fatalf("manual run %+v", x)
	}
	r = h.run("schedules", "history", "hourly-web").expect(t, 0, "EXECUTED", "DUE", "KIND", "STATUS", "JOB", "DURATION", "LAG", "DETAIL")
	row := lines(r.stdout, jobID)
	if len(row) != 1 || !strings.HasPrefix(row[0], "2026-03-25 12:00:00 UTC  -  ") || !strings.Contains(row[0], " manual ") ||
		!strings.Contains(row[0], " succeeded ") || strings.Contains(row[0], jobID+"  -") {
		t.Fatalf("history row (with a duration):\n%s", r.stdout)
	}

	// A failed run: --wait exits 1 and the history says failed.
	h.srv.Fake.FailNext("vm-002", providers.Permanent(errors.New("disk 2 is locked by another task")))
	h.run("schedules", "run", "hourly-web", "--wait").expect(t, 1, "failed after 1 of 3 attempt(s) (permanent)", "disk 2 is locked")
	if x := h.history("hourly-web").Items[0]; x.Status != "failed" || x.Kind != "manual" {
		t.Fatalf("failed run %+v", x)
	}

	// Without --wait: the execution; -o json is the API's.
	r = h.run("schedules", "run", "hourly-web", "-o", "json").expect(t, 0)
	var manual apitypes.Execution
	if err := json.Unmarshal([]byte(r.stdout), &manual); err != nil || manual.Kind != "manual" || manual.JobID == "" {
		t.Fatalf("run -o json: %v\n%s", err, r.stdout)
	}
	h.waitState(manual.JobID, apitypes.JobSucceeded)

	// A scheduled run, fired when the clock reaches the due time: DUE and LAG.
	h.clk.Set(time.Date(2026, 3, 25, 13, 0, 7, 0, time.UTC))
	if err := h.srv.Scheduler.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	hist = h.history("hourly-web")
	sched := hist.Items[0]
	if len(hist.Items) != 4 || sched.Kind != "scheduled" || sched.LagSeconds != 7 {
		t.Fatalf("history %+v", hist.Items)
	}
	h.waitState(sched.JobID, apitypes.JobSucceeded)
	r = h.run("schedules", "history", "hourly-web")
	row = lines(r.stdout, sched.JobID)
	if len(row) != 1 || !strings.HasPrefix(row[0], "2026-03-25 13:00:07 UTC  2026-03-25 13:00:00 UTC  scheduled  succeeded  "+sched.JobID) ||
		!strings.Contains(row[0], "  7s  ") {
		t.Fatalf("scheduled row:\n%s", r.stdout)
	}
	h.run("schedules", "list").expect(t, 0, "in 59m (Wed 2026-03-25 14:00 UTC)", "0s ago", " 4 ")

	// Paging.
	h.run("schedules", "history", "hourly-web", "--limit", "1").expect(t, 0, "scheduled", "More runs; use --all")
	if all := h.history("hourly-web", "--limit", "1", "--all"); len(all.Items) != 4 || all.NextCursor != "" || all.Items[3].JobID != jobID {
		t.Fatalf("--all: %+v", all)
	}
	h.run("schedules", "history", "nope").expect(t, 1, "HTTP 404 schedule-not-found")
	h.run("schedules", "run", "nope").expect(t, 1, "run schedule nope: ", "HTTP 404 schedule-not-found")
	h.as(clienttest.ViewerToken, "schedules", "run", "hourly-web").expect(t, 1, "HTTP 403 forbidden")
}

func TestScheduleRunLimitAndEndDate(t *testing.T) {
	t.Parallel()
	h := newScheduleHarness(t, clienttest.Options{})
	// Two runs left: only two of the listed due times happen.
	h.run("schedules", "create", "twice", "0 * * * *", "--provider", "lab", "--vm", "vm-001", "--max-runs", "2").expect(t, 0)
	r := h.run("schedules", "get", "twice").expect(t, 0, "Runs:", "0/2", "Next runs (UTC):", "Wed 2026-03-25 13:00:00 UTC  in 1h",
		"Wed 2026-03-25 14:00:00 UTC  in 2h")
	if strings.Contains(r.stdout, "15:00:00") {
		t.Fatalf("get lists a run past the limit:\n%s", r.stdout)
	}
	h.run("schedules", "run", "twice", "--wait").expect(t, 0)
	h.run("schedules", "run", "twice", "--wait").expect(t, 0)
	r = h.run("schedules", "get", "twice").expect(t, 0, "Runs:", "2/2", "Next run:", "- (run limit reached, 2 of 2)")
	if strings.Contains(r.stdout, "Next runs") {
		t.Fatalf("get lists runs past the limit:\n%s", r.stdout)
	}
	h.run("schedules", "list").expect(t, 0, "run limit reached, 2 of 2", "2/2")
	r = h.run("schedules", "next", "twice").expect(t, 0, "Schedule twice will not run again: run limit reached, 2 of 2.")
	if r.stdout != "" {
		t.Fatalf("next of an ended schedule: %q", r.stdout)
	}
	// The daemon disables it at its next due time.
	h.clk.Set(time.Date(2026, 3, 25, 13, 0, 0, 0, time.UTC))
	if err := h.srv.Scheduler.RunDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.run("schedules", "list").expect(t, 0, "no", "run limit reached, 2 of 2", "2/2")
	h.run("schedules", "get", "twice").expect(t, 0, "Enabled:", "no (run limit reached, 2 of 2)")
	if n := len(h.history("twice").Items); n != 2 {
		t.Fatalf("%d executions after the limit", n)
	}

	// An end date: due times after it are not listed.
	h.run("schedules", "create", "until", "0 12 * * *", "--provider", "lab", "--vm", "vm-001", "--end-at", "2026-03-27T12:00:00Z").
		expect(t, 0, "Next run:", "Thu 2026-03-26 12:00:00 UTC (in 23h)", "Fri 2026-03-27 12:00:00 UTC  in 47h")
	r = h.run("schedules", "next", "until", "-n", "10").expect(t, 0)
	if len(lines(r.stdout, " UTC  in ")) != 2 || strings.Contains(r.stderr, "reports the next 5") {
		t.Fatalf("next of a schedule with an end date:\n%s%s", r.stdout, r.stderr)
	}
}

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	h := newScheduleHarness(t, clienttest.Options{})

	// A dry run of an expression: the daemon computes from its real clock,
	// so only the wall-clock times are checked.
	r := h.run("schedules", "next", "0 3 * * *", "--timezone", "America/New_York").expect(t, 0, "Next runs of '0 3 * * *' (America/New_York):")
	rows := lines(r.stdout, " 03:00:00 E")
	if len(rows) != 5 || len(strings.Split(strings.TrimSpace(r.stdout), "\n")) != 6 {
		t.Fatalf("next:\n%s", r.stdout)
	}
	for _, row := range rows {
		if !strings.Contains(row, " 03:00:00 EST ") && !strings.Contains(row, " 03:00:00 EDT ") {
			t.Fatalf("not 03:00 in New York: %q", row)
		}
	}
	r = h.run("schedules", "next", "0 3 * * *", "--timezone", "America/New_York", "-n", "12", "-o", "json").expect(t, 0)
	var prev client.SchedulePreview
	if err := json.Unmarshal([]byte(r.stdout), &prev); err != nil || prev.Schedule != "0 3 * * *" || prev.Timezone != "America/New_York" || len(prev.Next) != 12 {
		t.Fatalf("next -o json: %v\n%s", err, r.stdout)
	}
	ny := must(time.LoadLocation("America/New_York"))
	for _, n := range prev.Next {
		if l := n.In(ny); l.Hour() != 3 || l.Minute() != 0 {
			t.Fatalf("next -o json: %s", l)
		}
	}
	h.run("schedules", "next", "@every 90m").expect(t, 0, "(UTC)", " UTC ")

	// A saved schedule's next runs, by name, on its zone's wall clock.
	h.run("schedules", "create", "db", "30 2 * * *", "--timezone", "Europe/Berlin", "--provider", "lab", "--vm", "vm-001").expect(t, 0)
	r = h.run("schedules", "next", "db", "-n", "4").expect(t, 0, "Next runs of '30 2 * * *' (Europe/Berlin):",
		"Thu 2026-03-26 02:30:00 CET   in 13h30m", "Sun 2026-03-29 03:30:00 CEST  in 3d13h")
	if strings.Contains(r.stdout, "2026-03-30") {
		t.Fatalf("-n 4 shows a fifth:\n%s", r.stdout)
	}
	h.run("schedules", "next", "db", "-n", "8").expect(t, 0, "Mon 2026-03-30 02:30:00 CEST", "reports the next 5 runs of a saved schedule",
		"hyperctl schedules next '30 2 * * *' --timezone Europe/Berlin -n 8")

	// Mistakes.
	h.run("schedules", "next", "nightly").expect(t, 1, `"nightly" is neither a schedule's name nor a valid expression`, "HTTP 422 invalid-schedule")
	h.run("schedules", "next", "0 3 * *").expect(t, 1, `preview "0 3 * *": `, "use 5 fields", "HTTP 422 invalid-schedule")
	h.run("schedules", "next", "@daily", "--timezone", "Mars/Olympus").expect(t, 1, `timezone "Mars/Olympus" is not an IANA time zone`)
	h.run("schedules", "next", "db", "--timezone", "UTC").expect(t, 2, "--timezone applies to an expression; schedule db runs in Europe/Berlin")
	h.run("schedules", "next", "0", "3", "*", "*", "*").expect(t, 2, "quote the expression")
	h.run("schedules", "next", "@daily", "-n", "0").expect(t, 2, "-n must be between 1 and 100")
}

func TestSchedulesUsageErrors(t *testing.T) {
	t.Parallel()
	h := newScheduleHarness(t, clienttest.Options{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"schedules", "create", "db", "@daily", "--vm", "x"}, "--provider and --vm are required"},
		{[]string{"schedules", "create", "db", "--provider", "lab", "--vm", "x"}, "takes 2 argument(s) (NAME CRON), got 1"},
		{[]string{"schedules", "create", "db", "30", "2", "*", "*", "*", "--provider", "lab", "--vm", "x"}, "quote the expression"},
		{[]string{"schedules", "create", "db", "@daily", "--provider", "lab", "--vm", "x", "--wait"}, "--wait does not apply to a schedule: a schedule is not a job; 'hyperctl schedules run NAME --wait'"},
		{[]string{"schedules", "create", "db", "@daily", "--provider", "lab", "--vm", "x", "--idempotency-key", "k"}, "--idempotency-key does not apply to a schedule"},
		{[]string{"schedules", "create", "db", "@daily", "--provider", "lab", "--vm", "x", "--snapshot", "--power-off"}, "none of the others can be"},
		{[]string{"schedules", "create", "db", "@daily", "--provider", "lab", "--vm", "x", "--bandwidth-limit", "fast"}, "--bandwidth-limit"},
		{[]string{"schedules", "create", "db", "@daily", "--provider", "lab", "--vm", "x", "--end-at", "tomorrow"}, "--end-at \"tomorrow\": want an RFC 3339 time"},
		{[]string{"schedules", "create", "db", "@daily", "--provider", "lab", "--vm", "x", "--max-runs", "0"}, "--max-runs must be at least 1"},
		{[]string{"schedules", "update", "db"}, "nothing to change"},
		{[]string{"schedules", "update", "db", "--format", "ova", "--wait"}, "--wait does not apply to a schedule"},
		{[]string{"schedules", "history", "db", "--limit", "5000"}, "--limit must be between 1 and 1000"},
		{[]string{"schedules", "get"}, "takes 1 argument(s) (NAME), got 0"},
		{[]string{"schedules", "frobnicate"}, `unknown command "frobnicate"`},
	} {
		h.run(tc.args...).expect(t, 2, tc.want, "--help' for usage")
	}
	if n := h.srv.JobCount(t); n != 0 {
		t.Fatalf("usage errors created %d jobs", n)
	}
	h.run("schedules", "list").expect(t, 0, "No schedules.")

	// The template flags of 'export' are there; the per-submission ones are not.
	r := h.run("schedules", "create", "--help").expect(t, 0, "--provider", "--vm", "--output", "--format", "--compression-level",
		"--snapshot", "--power-off-timeout", "--bandwidth-limit", "--max-attempts", "--timezone", "--overlap", "--catch-up",
		"--end-at", "--max-runs", "--disabled")
	if strings.Contains(r.stdout, "--wait") || strings.Contains(r.stdout, "--idempotency-key") {
		t.Fatalf("create --help offers per-submission flags:\n%s", r.stdout)
	}
	h.run("schedules").expect(t, 0, "create", "history", "next", "Daylight saving")
}

// TestTemplateFlags keeps update's merge in step with the export flags:
// every flag addSubmitFlags declares is a template field or refused.
func TestTemplateFlags(t *testing.T) {
	t.Parallel()
	cmd := &cobra.Command{Use: "x"}
	(&app{}).addSubmitFlags(cmd, &submitFlags{})
	seen := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		seen[f.Name] = true
		if templateFields[f.Name] == nil && submissionOnlyFlags[f.Name] == "" {
			t.Errorf("export flag --%s is neither merged by 'schedules update' nor refused", f.Name)
		}
	})
	for name := range templateFields {
		if !seen[name] {
			t.Errorf("templateFields has --%s, which addSubmitFlags does not declare", name)
		}
	}
}

func TestScheduleCompletion(t *testing.T) {
	t.Parallel()
	h := newScheduleHarness(t, clienttest.Options{})
	h.run("schedules", "create", "db", "30 2 * * *", "--timezone", "Europe/Berlin", "--provider", "lab", "--vm", "vm-001").expect(t, 0)
	for _, sub := range []string{"get", "update", "enable", "disable", "delete", "run", "history", "next"} {
		h.run("__complete", "schedules", sub, "").expect(t, 0, "db\t30 2 * * * (Europe/Berlin)")
	}
	h.run("__complete", "schedules", "create", "x", "@daily", "--overlap", "").expect(t, 0, "skip", "queue", "allow")
	h.run("__complete", "schedules", "create", "x", "@daily", "--catch-up", "").expect(t, 0, "once", "none")
	h.run("__complete", "schedules", "create", "x", "@daily", "--provider", "").expect(t, 0, "lab\tvsphere")
	h.run("__complete", "schedules", "next", "x", "--timezone", "").expect(t, 0, "Europe/Berlin", "America/New_York")
}
