package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

type env struct {
	t    *testing.T
	db   *store.DB
	fake *providertest.Fake
	set  *providers.Set
	dir  string
	opts jobs.Options
}

func newEnv(t *testing.T, db *store.DB, limit int) *env {
	t.Helper()
	fake := providertest.NewFake("fake", providertest.DefaultFakeVMs(8)...)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	set, err := providers.NewSet(quiet, &providers.Instance{Provider: fake, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.ConnectAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Jobs.RetryBackoff = 50 * time.Millisecond
	cfg.Jobs.RetryBackoffMax = 200 * time.Millisecond
	cfg.Jobs.HeartbeatStale = 5 * time.Second
	return &env{t: t, db: db, fake: fake, set: set, dir: dir, opts: jobs.Options{
		NodeID: "node-a", Jobs: cfg.Jobs, Export: cfg.Export, ExportDir: dir,
		HeartbeatInterval: 100 * time.Millisecond, PollInterval: 50 * time.Millisecond, Logger: quiet,
	}}
}

func (e *env) manager(mod ...func(*jobs.Options)) *jobs.Manager {
	e.t.Helper()
	o := e.opts
	for _, f := range mod {
		f(&o)
	}
	m, err := jobs.New(e.db, e.set, o)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) start(mod ...func(*jobs.Options)) *jobs.Manager {
	e.t.Helper()
	m := e.manager(mod...)
	if err := m.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
	return m
}

func submit(t *testing.T, m *jobs.Manager, vm string) *apitypes.Job {
	t.Helper()
	j, created, err := m.Submit(context.Background(), apitypes.JobRequest{Provider: "fake", VM: vm}, "tester", "")
	if err != nil || !created {
		t.Fatalf("submit %s: %v (created=%v)", vm, err, created)
	}
	return j
}

// waitState polls until the job reaches want; the generous bound only
// keeps a broken engine from hanging the suite.
func waitState(t *testing.T, m *jobs.Manager, id string, want apitypes.JobState) *apitypes.Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := m.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == want {
			return j
		}
		if j.State.Terminal() || time.Now().After(deadline) {
			t.Fatalf("job %s is %s (error %q), want %s", id, j.State, j.Error, want)
		}
		m.Wait(context.Background(), id, 200*time.Millisecond)
	}
}

func logMessages(t *testing.T, m *jobs.Manager, id string) string {
	t.Helper()
	lines, err := m.Logs(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString(l.Level + " " + l.Message + "\n")
	}
	return sb.String()
}

func TestExportSucceeds(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		m := e.start()
		j := submit(t, m, "vm-001")
		if j.State.Terminal() || j.Spec.Options.OutputDir != filepath.Join(e.dir, j.ID) {
			t.Fatalf("submitted job: %+v", j)
		}
		j = waitState(t, m, j.ID, apitypes.JobSucceeded)
		if j.Result == nil || len(j.Result.Files) != 4 || j.Attempt != 1 || j.Progress.Percent != 100 || j.FinishedAt == nil {
			t.Fatalf("finished job: %+v", j)
		}
		for _, f := range j.Result.Files {
			if _, err := os.Stat(filepath.Join(j.Result.OutputDir, f.Path)); err != nil {
				t.Error(err)
			}
		}
		logs := logMessages(t, m, j.ID)
		for _, want := range []string{"info job accepted", "info attempt started", "info export succeeded"} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %q:\n%s", want, logs)
			}
		}
	})
}

func TestTransientFailuresRetryThenSucceed(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		e.fake.FailNext("vm-002", errors.New("connection reset"), errors.New("503 from host"))
		m := e.start()
		j := waitState(t, m, submit(t, m, "vm-002").ID, apitypes.JobSucceeded)
		if j.Attempt != 3 || e.fake.Exports("vm-002") != 1 {
			t.Fatalf("attempt %d, exports %d", j.Attempt, e.fake.Exports("vm-002"))
		}
		if logs := logMessages(t, m, j.ID); strings.Count(logs, "will retry") != 2 {
			t.Errorf("want two retry lines:\n%s", logs)
		}
	})
}

func TestPermanentFailureIsNotRetried(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		m := e.start()
		j, _, err := m.Submit(context.Background(), apitypes.JobRequest{Provider: "fake", VM: "no-such-vm"}, "tester", "")
		if err != nil {
			t.Fatal(err)
		}
		j = waitState(t, m, j.ID, apitypes.JobFailed)
		if j.Attempt != 1 || j.ErrorKind != apitypes.ErrorKindPermanent || !strings.Contains(j.Error, "not found") {
			t.Fatalf("failed job: attempt %d kind %q error %q", j.Attempt, j.ErrorKind, j.Error)
		}
	})
}

func TestTransientFailuresExhaustAttempts(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		e.fake.FailNext("vm-003", errors.New("flaky 1"), errors.New("flaky 2"), errors.New("flaky 3"))
		m := e.start()
		j, _, err := m.Submit(context.Background(), apitypes.JobRequest{Provider: "fake", VM: "vm-003", MaxAttempts: 2}, "tester", "")
		if err != nil {
			t.Fatal(err)
		}
		j = waitState(t, m, j.ID, apitypes.JobFailed)
		if j.Attempt != 2 || j.ErrorKind != apitypes.ErrorKindTransient || j.Error != "flaky 2" {
			t.Fatalf("attempt %d kind %q error %q", j.Attempt, j.ErrorKind, j.Error)
		}
		// Only the last attempt is told that none follows (its failure
		// then removes the export's resume state).
		if got := e.fake.FinalAttempts("vm-003"); !slices.Equal(got, []bool{false, true}) {
			t.Errorf("FinalAttempt per attempt %v, want [false true]", got)
		}
	})
}

func TestCancelQueuedJobNeverRuns(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		m := e.manager() // not started: the job stays queued
		j := submit(t, m, "vm-001")
		c, err := m.Cancel(context.Background(), j.ID, "tester")
		if err != nil || c.State != apitypes.JobCancelled {
			t.Fatalf("cancel: %v %+v", err, c)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer m.Stop(context.Background())
		// A second job proves the engine runs; the cancelled one must not.
		waitState(t, m, submit(t, m, "vm-002").ID, apitypes.JobSucceeded)
		if n := e.fake.Exports("vm-001"); n != 0 {
			t.Fatalf("cancelled job ran %d times", n)
		}
		if _, err := m.Cancel(context.Background(), j.ID, "tester"); err != nil {
			t.Errorf("cancelling a cancelled job again: %v", err)
		}
	})
}

func TestCancelRunningJobStopsExport(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		started := make(chan struct{})
		stopped := make(chan error, 1)
		e.fake.BeforeExport = func(ctx context.Context, vm string) error {
			close(started)
			<-ctx.Done()
			stopped <- errors.Join(ctx.Err(), context.Cause(ctx))
			return ctx.Err()
		}
		m := e.start()
		j := submit(t, m, "vm-004")
		<-started
		waitState(t, m, j.ID, apitypes.JobRunning)
		if _, err := m.Cancel(context.Background(), j.ID, "tester"); err != nil {
			t.Fatal(err)
		}
		if err := <-stopped; !errors.Is(err, context.Canceled) || !errors.Is(err, providers.ErrAbandoned) {
			t.Fatalf("provider saw %v, want a cancellation whose cause is providers.ErrAbandoned (no attempt follows)", err)
		}
		j = waitState(t, m, j.ID, apitypes.JobCancelled)
		if j.ErrorKind != apitypes.ErrorKindCancelled {
			t.Errorf("error kind %q", j.ErrorKind)
		}
		if _, err := m.Cancel(context.Background(), j.ID, "tester"); err != nil {
			t.Errorf("second cancel: %v", err)
		}
	})
}

// A cancel request that reaches another daemon's database row (not this
// process's map) is noticed by the heartbeat.
func TestCancelSeenThroughHeartbeat(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newEnv(t, db, 0)
	started := make(chan struct{})
	e.fake.BeforeExport = func(ctx context.Context, vm string) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}
	worker := e.start()
	other := e.manager(func(o *jobs.Options) { o.NodeID = "node-b" }) // API-only daemon
	j := submit(t, other, "vm-005")
	<-started
	waitState(t, other, j.ID, apitypes.JobRunning)
	if _, err := other.Cancel(context.Background(), j.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	waitState(t, worker, j.ID, apitypes.JobCancelled)
}

func TestConcurrencyLimits(t *testing.T) {
	for _, tc := range []struct {
		name                                 string
		maxConcurrent, perInst, clusterLimit int
		want                                 int
	}{
		{"max_concurrent", 2, 0, 0, 2},
		{"per_provider", 4, 1, 0, 1},
		{"cluster", 4, 0, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.ForEach(t, func(t *testing.T, db *store.DB) {
				e := newEnv(t, db, tc.perInst)
				e.fake.ChunkDelay = 5 * time.Millisecond
				m := e.start(func(o *jobs.Options) { o.Jobs.MaxConcurrent, o.ClusterLimit = tc.maxConcurrent, tc.clusterLimit })
				var ids []string
				for i := range 6 {
					ids = append(ids, submit(t, m, fmt.Sprintf("vm-%03d", i)).ID)
				}
				for _, id := range ids {
					waitState(t, m, id, apitypes.JobSucceeded)
				}
				if got := e.fake.MaxConcurrent(); got > tc.want || got < 1 {
					t.Fatalf("saw %d concurrent exports, limit %d", got, tc.want)
				}
			})
		})
	}
}

// Two jobs for one VM never export it at once (the platform would refuse
// the second, TaskInProgress, and burn its attempts): the second waits,
// without using an attempt, until the first ends, whichever of two daemons
// sharing the database claims it. A waiting job can be cancelled, and jobs
// for other VMs run meanwhile.
func TestOneExportPerVMAtATime(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		e.fake.CallLog = filepath.Join(t.TempDir(), "calls")
		release := make(chan struct{})
		started := make(chan struct{}, 8)
		e.fake.BeforeExport = func(ctx context.Context, vm string) error {
			if vm != "vm-001" {
				return nil
			}
			started <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		m1 := e.start()
		m2 := e.start(func(o *jobs.Options) { o.NodeID = "node-b" })
		first := submit(t, m1, "vm-001")
		<-started
		waitState(t, m1, first.ID, apitypes.JobRunning)
		second := submit(t, m2, "vm-001")
		doomed := submit(t, m1, "vm-001")
		for _, id := range []string{second.ID, doomed.ID} {
			waitLog(t, m1, id, "waiting: another job is exporting this VM")
		}
		// Another VM is not held up.
		waitState(t, m2, submit(t, m2, "vm-002").ID, apitypes.JobSucceeded)
		if c, err := m2.Cancel(context.Background(), doomed.ID, "tester"); err != nil || c.State != apitypes.JobCancelled {
			t.Fatalf("cancel a waiting job: %v %+v", err, c)
		}
		close(release)
		for _, id := range []string{first.ID, second.ID} {
			if j := waitState(t, m1, id, apitypes.JobSucceeded); j.Attempt != 1 {
				t.Errorf("job %s: attempt %d, want 1", id, j.Attempt)
			}
		}
		if j, _ := m1.Get(context.Background(), doomed.ID); j.State != apitypes.JobCancelled || j.Attempt != 0 {
			t.Errorf("cancelled waiting job: state %s attempt %d", j.State, j.Attempt)
		}
		if n := e.fake.Overlaps(); n != 0 {
			t.Errorf("the platform refused %d overlapping exports", n)
		}
		// The call log shows the two exports of vm-001 one after the other.
		b, err := os.ReadFile(e.fake.CallLog)
		if err != nil {
			t.Fatal(err)
		}
		var seq []string
		for _, l := range lines(string(b), " vm-001 ") {
			seq = append(seq, strings.Fields(l)[0])
		}
		if got := strings.Join(seq, " "); got != "start done start done" {
			t.Errorf("exports of vm-001: %s\n%s", got, b)
		}
	})
}

// waitLog polls until the job's log has a line containing want.
func waitLog(t *testing.T, m *jobs.Manager, id, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := logMessages(t, m, id)
		if strings.Contains(logs, want) {
			return
		}
		j, err := m.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Attempt > 0 || time.Now().After(deadline) {
			t.Fatalf("job %s: %s, attempt %d (error %q), log lacks %q:\n%s", id, j.State, j.Attempt, j.Error, want, logs)
		}
		m.Wait(context.Background(), id, 200*time.Millisecond)
	}
}

func lines(s, want string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, want) {
			out = append(out, l)
		}
	}
	return out
}

func TestIdempotencyKey(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		m := e.manager()
		ctx := context.Background()
		req := apitypes.JobRequest{Provider: "fake", VM: "vm-001"}
		a, created, err := m.Submit(ctx, req, "alice", "key-1")
		if err != nil || !created {
			t.Fatal(err, created)
		}
		b, created, err := m.Submit(ctx, req, "alice", "key-1")
		if err != nil || created || b.ID != a.ID {
			t.Fatalf("retry returned %v created=%v err=%v", b, created, err)
		}
		// Another principal's key space is separate.
		c, created, err := m.Submit(ctx, req, "bob", "key-1")
		if err != nil || !created || c.ID == a.ID {
			t.Fatalf("bob: %v %v", created, err)
		}
		_, _, err = m.Submit(ctx, apitypes.JobRequest{Provider: "fake", VM: "vm-002"}, "alice", "key-1")
		if !errors.Is(err, jobs.ErrConflict) {
			t.Fatalf("reused key with another request: %v", err)
		}
		list, _, _ := m.List(ctx, apitypes.JobFilter{})
		if len(list) != 2 {
			t.Fatalf("%d jobs stored, want 2", len(list))
		}
	})
}

func TestConcurrentIdempotentSubmitsMakeOneJob(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		m := newEnv(t, db, 0).manager()
		var wg sync.WaitGroup
		ids := make([]string, 8)
		for i := range ids {
			wg.Go(func() {
				j, _, err := m.Submit(context.Background(), apitypes.JobRequest{Provider: "fake", VM: "vm-001"}, "alice", "same")
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = j.ID
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("got different jobs: %v", ids)
			}
		}
	})
}

func TestInvalidRequestsNameTheField(t *testing.T) {
	e := newEnv(t, storetest.Open(t, store.SQLite), 0)
	m := e.manager()
	lvl := 12
	for _, tc := range []struct {
		req  apitypes.JobRequest
		want string
	}{
		{apitypes.JobRequest{VM: "x"}, "provider: required"},
		{apitypes.JobRequest{Provider: "nope", VM: "x"}, `no provider named "nope"`},
		{apitypes.JobRequest{Provider: "fake"}, "vm: required"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", Format: "zip"}, "format: must be ovf, ova or disks"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", DiskFormat: "qcow9"}, "disk_format: must be one of vmdk, raw, qcow2, vhd, vhdx"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", DiskFormat: "raw"}, "disk_format: raw disks are exported only as plain disks"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", Format: "disks", DiskFormat: "vhd", VHDType: "sparse"}, "vhd_type: must be dynamic or fixed"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", Format: "disks", DiskFormat: "qcow2", VHDType: "fixed"}, "vhd_type: is for vhd disks"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", CompressionLevel: &lvl}, "compression_level: must be between 0 and 9"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", Output: "/etc"}, "outside the allowed export roots"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", Output: "../escape"}, "outside the allowed export roots"},
		{apitypes.JobRequest{Provider: "fake", VM: "x", Snapshot: true, PowerOff: true}, "choose one"},
	} {
		_, _, err := m.Submit(context.Background(), tc.req, "t", "")
		if !errors.Is(err, jobs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.req, err, tc.want)
		}
	}
	list, _, _ := m.List(context.Background(), apitypes.JobFilter{})
	if len(list) != 0 {
		t.Errorf("invalid requests stored %d jobs", len(list))
	}
}

func TestStopHandsRunningJobsBack(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		started := make(chan struct{}, 1)
		block := true
		var mu sync.Mutex
		e.fake.BeforeExport = func(ctx context.Context, vm string) error {
			mu.Lock()
			b := block
			mu.Unlock()
			if !b {
				return nil
			}
			started <- struct{}{}
			<-ctx.Done()
			if errors.Is(context.Cause(ctx), providers.ErrAbandoned) {
				t.Errorf("a daemon stopping abandoned its export (%v): the job is handed back and resumes", context.Cause(ctx))
			}
			return ctx.Err()
		}
		m1 := e.manager()
		if err := m1.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		j := submit(t, m1, "vm-006")
		<-started
		waitState(t, m1, j.ID, apitypes.JobRunning)
		if err := m1.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, _ := m1.Get(context.Background(), j.ID)
		if got.State != apitypes.JobQueued || got.Attempt != 0 {
			t.Fatalf("after stop: state %s attempt %d, want queued with the attempt given back", got.State, got.Attempt)
		}
		mu.Lock()
		block = false
		mu.Unlock()
		m2 := e.start()
		got = waitState(t, m2, j.ID, apitypes.JobSucceeded)
		if got.Attempt != 1 {
			t.Errorf("attempt %d after hand-back, want 1", got.Attempt)
		}
	})
}

// A job left running by a daemon that died is taken over: at once by the
// same node on restart, after the heartbeat goes stale by another node.
func TestLostJobsAreRecovered(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		ctx := context.Background()
		m := e.manager()
		own := submit(t, m, "vm-001")
		foreign := submit(t, m, "vm-002")
		// Simulate a crash mid-export: rows left running, River jobs
		// left running with no worker.
		past := store.Micros(time.Now().Add(-time.Hour))
		for id, node := range map[string]string{own.ID: "node-a", foreign.ID: "node-dead"} {
			if _, err := db.SQL.ExecContext(ctx, "UPDATE jobs SET state='running', attempt=1, node_id=$1, heartbeat_at=$2 WHERE id=$3", node, past, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.SQL.ExecContext(ctx, "UPDATE river_job SET state='running', attempt=1, attempted_at=CURRENT_TIMESTAMP"); err != nil {
			t.Fatal(err)
		}
		m2 := e.start(func(o *jobs.Options) { o.Jobs.HeartbeatStale = 5 * time.Second })
		for _, id := range []string{own.ID, foreign.ID} {
			j := waitState(t, m2, id, apitypes.JobSucceeded)
			if j.Attempt != 2 {
				t.Errorf("job %s: attempt %d, want 2 (one lost, one succeeded)", id, j.Attempt)
			}
			if logs := logMessages(t, m2, id); !strings.Contains(logs, "stopped during attempt 1") {
				t.Errorf("no recovery line in logs:\n%s", logs)
			}
		}
	})
}

func TestListFiltersAndPagination(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, 0)
		m := e.manager()
		ctx := context.Background()
		var ids []string
		for i := range 7 {
			ids = append(ids, submit(t, m, fmt.Sprintf("vm-%03d", i%3)).ID)
		}
		if _, err := m.Cancel(ctx, ids[0], "t"); err != nil {
			t.Fatal(err)
		}
		var seen []string
		cursor := ""
		for {
			page, next, err := m.List(ctx, apitypes.JobFilter{Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range page {
				seen = append(seen, j.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 7 || seen[0] != ids[6] || seen[6] != ids[0] {
			t.Fatalf("paged listing %v, want newest first of %v", seen, ids)
		}
		q, _, _ := m.List(ctx, apitypes.JobFilter{States: []apitypes.JobState{apitypes.JobQueued}})
		c, _, _ := m.List(ctx, apitypes.JobFilter{States: []apitypes.JobState{apitypes.JobCancelled}})
		v, _, _ := m.List(ctx, apitypes.JobFilter{VM: "vm-001"})
		if len(q) != 6 || len(c) != 1 || len(v) != 2 {
			t.Fatalf("queued %d cancelled %d vm-001 %d", len(q), len(c), len(v))
		}
		none, _, _ := m.List(ctx, apitypes.JobFilter{CreatedAfter: time.Now().Add(time.Hour)})
		if len(none) != 0 {
			t.Fatal("time filter")
		}
		if _, _, err := m.List(ctx, apitypes.JobFilter{States: []apitypes.JobState{"bogus"}}); !errors.Is(err, jobs.ErrInvalid) {
			t.Fatal(err)
		}
		counts, _ := m.Counts(ctx)
		if counts[apitypes.JobQueued] != 6 || counts[apitypes.JobCancelled] != 1 {
			t.Fatalf("counts %v", counts)
		}
	})
}

func TestDeleteOnlyFinishedJobs(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		m := newEnv(t, db, 0).manager()
		ctx := context.Background()
		j := submit(t, m, "vm-001")
		if err := m.Delete(ctx, j.ID); !errors.Is(err, jobs.ErrConflict) {
			t.Fatalf("deleting a queued job: %v", err)
		}
		if _, err := m.Cancel(ctx, j.ID, "t"); err != nil {
			t.Fatal(err)
		}
		if err := m.Delete(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Get(ctx, j.ID); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		if err := m.Delete(ctx, j.ID); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("deleting twice: %v", err)
		}
	})
}

// export.vhd_type is a default for VHD disks only: it neither applies to
// nor refuses jobs with another disk format.
func TestResolveOptionsVHDTypeDefault(t *testing.T) {
	d := config.Default().Export
	d.Format, d.VHDType = "disks", "fixed"
	o, problems := jobs.ResolveOptions(apitypes.JobRequest{Provider: "p", VM: "v", DiskFormat: "vhd"}, d)
	if len(problems) != 0 || o.VHDType != "fixed" {
		t.Fatalf("vhd job: type %q, problems %v", o.VHDType, problems)
	}
	o, problems = jobs.ResolveOptions(apitypes.JobRequest{Provider: "p", VM: "v", DiskFormat: "qcow2"}, d)
	if len(problems) != 0 || o.VHDType != "" {
		t.Fatalf("qcow2 job: type %q, problems %v", o.VHDType, problems)
	}
	o, problems = jobs.ResolveOptions(apitypes.JobRequest{Provider: "p", VM: "v", DiskFormat: "vhd", VHDType: "dynamic"}, d)
	if len(problems) != 0 || o.VHDType != "dynamic" {
		t.Fatalf("vhd job asking for dynamic: type %q, problems %v", o.VHDType, problems)
	}
}
