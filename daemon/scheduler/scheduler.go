package scheduler

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/store"
)

// Jobs is what the scheduler needs from the job engine.
type Jobs interface {
	Validate(req apitypes.JobRequest) error
	SubmitTx(ctx context.Context, tx *sql.Tx, req apitypes.JobRequest, submittedBy string) (string, func(), error)
}

// Metrics receives what the scheduler does; daemon/metrics implements it.
type Metrics interface {
	ScheduleRun(schedule, outcome string, lag time.Duration)
}

// Options configure a Scheduler.
type Options struct {
	// Now is the clock (tests inject one); nil means time.Now.
	Now func() time.Time
	// Tick is how often due schedules are looked for (default 1s).
	Tick time.Duration
	// MisfireGrace is how late a run may start and still count as on time
	// rather than missed (default 1m).
	MisfireGrace time.Duration
	// Events receives schedule.triggered / schedule.failed in the firing
	// transaction.
	Events  jobs.Events
	Metrics Metrics
	Logger  *slog.Logger
}

// Scheduler fires persistent cron schedules through the job engine.
// Several daemons may run one against the same database: each due time is
// claimed with a compare-and-set on next_run, in the same transaction as
// the job it submits, so it runs exactly once.
type Scheduler struct {
	db   *store.DB
	jobs Jobs
	opts Options
	log  *slog.Logger

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New creates a scheduler; Start runs it.
func New(db *store.DB, j Jobs, opts Options) *Scheduler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.MisfireGrace <= 0 {
		opts.MisfireGrace = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Scheduler{db: db, jobs: j, opts: opts, log: opts.Logger}
}

// Start restores every enabled schedule from the store (applying catch-up
// to due times missed while no daemon ran) and then fires schedules as they
// come due, until Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	if err := s.RunDue(ctx); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	s.wg.Go(func() {
		t := time.NewTicker(s.opts.Tick)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
				if err := s.RunDue(bg); err != nil && bg.Err() == nil {
					s.log.Warn("firing schedules failed", "err", err)
				}
			}
		}
	})
	return nil
}

// Stop stops firing.
func (s *Scheduler) Stop() {
	if s.stop != nil {
		s.stop()
		s.wg.Wait()
	}
}

// RunDue fires every schedule due at the clock's now, and starts queued
// runs whose predecessor has ended.
func (s *Scheduler) RunDue(ctx context.Context) error {
	now := s.opts.Now()
	ids, err := s.db.Strings(ctx, `SELECT id FROM scheduled_jobs WHERE enabled = 1
		AND ((next_run IS NOT NULL AND next_run <= $1) OR queued_due IS NOT NULL) ORDER BY next_run`, store.Micros(now))
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := s.fire(ctx, id, now); err != nil {
			errs = append(errs, fmt.Errorf("schedule %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// row is a schedule as fire needs it.
type row struct {
	id, name, expr, zone, overlap, catchUp string
	template                               apitypes.JobRequest
	endAt, nextRun, queuedDue              sql.NullInt64
	maxRuns                                sql.NullInt64
	runCount                               int
}

func loadRow(ctx context.Context, tx *sql.Tx, id string) (*row, error) {
	var r row
	var tmpl string
	err := tx.QueryRowContext(ctx, `SELECT id, name, schedule, timezone, job_template_json, overlap, catch_up, end_at, max_runs,
		next_run, queued_due, run_count FROM scheduled_jobs WHERE id = $1 AND enabled = 1`, id).
		Scan(&r.id, &r.name, &r.expr, &r.zone, &tmpl, &r.overlap, &r.catchUp, &r.endAt, &r.maxRuns, &r.nextRun, &r.queuedDue, &r.runCount)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(tmpl), &r.template); err != nil {
		return nil, fmt.Errorf("corrupt job template: %w", err)
	}
	return &r, nil
}

// fired is what happened to one schedule in fire, reported after commit.
type fired struct {
	outcome   string // submitted, skipped, missed, not_submitted, queued, finished
	lag       time.Duration
	committed func()
	execution int64 // the execution recorded, if any
}

func (s *Scheduler) fire(ctx context.Context, id string, now time.Time) error {
	var f fired
	var name string
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		f = fired{}
		r, err := loadRow(ctx, tx, id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // disabled or deleted meanwhile
		}
		if err != nil {
			return err
		}
		name = r.name
		if r.queuedDue.Valid {
			if err := s.startQueued(ctx, tx, r, now, &f); err != nil {
				return err
			}
		}
		if !r.nextRun.Valid || store.Time(r.nextRun.Int64).After(now) {
			return nil
		}
		return s.fireDue(ctx, tx, r, now, &f)
	})
	if err != nil || f.outcome == "" {
		return err
	}
	if f.committed != nil {
		f.committed()
	}
	if s.opts.Metrics != nil {
		s.opts.Metrics.ScheduleRun(name, f.outcome, f.lag)
	}
	return nil
}

// fireDue handles the due time r.nextRun.
func (s *Scheduler) fireDue(ctx context.Context, tx *sql.Tx, r *row, now time.Time, f *fired) error {
	expr, err := Parse(r.expr, r.zone)
	if err != nil {
		return err
	}
	due := store.Time(r.nextRun.Int64)
	// The due time to record and the next one after now.
	last := due
	next := expr.Next(due)
	for !next.IsZero() && !next.After(now) {
		last, next = next, expr.Next(next)
	}
	missed := last != due || now.Sub(due) > s.opts.MisfireGrace
	var nextArg any
	if !next.IsZero() {
		nextArg = store.Micros(next)
	}
	// Claim this due time: exactly one daemon moves next_run on from it.
	res, err := tx.ExecContext(ctx, "UPDATE scheduled_jobs SET next_run = $2, updated_at = $3 WHERE id = $1 AND next_run = $4",
		r.id, nextArg, store.Micros(now), r.nextRun.Int64)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // another daemon fired it
	}
	if r.endAt.Valid && due.After(store.Time(r.endAt.Int64)) || r.maxRuns.Valid && int64(r.runCount) >= r.maxRuns.Int64 {
		f.outcome = "finished"
		_, err := tx.ExecContext(ctx, "UPDATE scheduled_jobs SET enabled = 0, next_run = NULL WHERE id = $1", r.id)
		s.log.Info("schedule finished: end date or run limit reached", "schedule", r.name)
		return err
	}
	kind := apitypes.ExecutionScheduled
	if missed {
		if r.catchUp == apitypes.CatchUpNone {
			f.outcome = "missed"
			s.log.Info("skipping runs missed while no daemon was running (catch_up: none)", "schedule", r.name, "missed_since", due)
			return nil
		}
		kind = apitypes.ExecutionCatchUp
	}
	active, err := activeJob(ctx, tx, r.id)
	if err != nil {
		return err
	}
	if active != "" {
		switch r.overlap {
		case apitypes.OverlapSkip:
			f.outcome = apitypes.ExecutionSkipped
			return s.record(ctx, tx, r.id, "", now, last, kind, apitypes.ExecutionSkipped, "previous run (job "+active+") is still queued or running", 0, f)
		case apitypes.OverlapQueue:
			f.outcome = "queued"
			_, err := tx.ExecContext(ctx, "UPDATE scheduled_jobs SET queued_due = COALESCE(queued_due, $2) WHERE id = $1", r.id, store.Micros(last))
			return err
		}
	}
	return s.submit(ctx, tx, r, now, last, kind, f)
}

// startQueued starts a run that waited for its predecessor (overlap: queue).
func (s *Scheduler) startQueued(ctx context.Context, tx *sql.Tx, r *row, now time.Time, f *fired) error {
	active, err := activeJob(ctx, tx, r.id)
	if err != nil || active != "" {
		return err
	}
	due := store.Time(r.queuedDue.Int64)
	res, err := tx.ExecContext(ctx, "UPDATE scheduled_jobs SET queued_due = NULL WHERE id = $1 AND queued_due = $2", r.id, r.queuedDue.Int64)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return s.submit(ctx, tx, r, now, due, apitypes.ExecutionQueued, f)
}

// submit queues the schedule's job and records the execution.
func (s *Scheduler) submit(ctx context.Context, tx *sql.Tx, r *row, now, due time.Time, kind string, f *fired) error {
	by := "schedule:" + r.name
	// A failing submission must not undo the claim of the due time: run
	// it in a savepoint-free way by validating first.
	if err := s.jobs.Validate(r.template); err != nil {
		f.outcome = apitypes.ExecutionNotSubmitted
		s.log.Warn("scheduled job not submitted", "schedule", r.name, "err", err)
		if err := s.record(ctx, tx, r.id, "", now, due, kind, apitypes.ExecutionNotSubmitted, err.Error(), 0, f); err != nil {
			return err
		}
		return s.emit(ctx, tx, apitypes.EventScheduleFailed, r, "", due, kind, err.Error())
	}
	jobID, committed, err := s.jobs.SubmitTx(ctx, tx, r.template, by)
	if err != nil {
		return err
	}
	lag := now.Sub(due)
	if kind == apitypes.ExecutionManual {
		lag = 0
	}
	if err := s.record(ctx, tx, r.id, jobID, now, due, kind, apitypes.ExecutionSubmitted, "", lag, f); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE scheduled_jobs SET last_run = $2, run_count = run_count + 1 WHERE id = $1", r.id, store.Micros(now)); err != nil {
		return err
	}
	if err := s.finishIfDone(ctx, tx, r.id); err != nil {
		return err
	}
	f.outcome, f.lag, f.committed = apitypes.ExecutionSubmitted, lag, committed
	if kind == apitypes.ExecutionCatchUp {
		f.outcome = "catch_up"
	}
	s.log.Info("schedule fired", "schedule", r.name, "job_id", jobID, "kind", kind, "due", due.UTC().Format(time.RFC3339), "lag", lag.Round(time.Millisecond).String())
	return s.emit(ctx, tx, apitypes.EventScheduleTriggered, r, jobID, due, kind, "")
}

func (s *Scheduler) record(ctx context.Context, tx *sql.Tx, scheduleID, jobID string, now, due time.Time, kind, status, detail string, lag time.Duration, f *fired) error {
	var job, dueArg any
	if jobID != "" {
		job = jobID
	}
	if kind != apitypes.ExecutionManual {
		dueArg = store.Micros(due)
	}
	return tx.QueryRowContext(ctx, `INSERT INTO schedule_executions (schedule_id, job_id, executed_at, due_at, kind, status, detail, lag_seconds)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, scheduleID, job, store.Micros(now), dueArg, kind, status, detail, lag.Seconds()).
		Scan(&f.execution)
}

// finishIfDone switches a schedule off once its run limit is reached or its
// next due time falls after its end date, so it never shows runs that will
// not happen.
func (s *Scheduler) finishIfDone(ctx context.Context, tx *sql.Tx, id string) error {
	_, err := tx.ExecContext(ctx, `UPDATE scheduled_jobs SET enabled = 0, next_run = NULL
		WHERE id = $1 AND ((max_runs IS NOT NULL AND run_count >= max_runs) OR (end_at IS NOT NULL AND next_run IS NOT NULL AND next_run > end_at))`, id)
	return err
}

// activeJob returns a queued or running job of the schedule, or "".
func activeJob(ctx context.Context, tx *sql.Tx, scheduleID string) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT j.id FROM schedule_executions e JOIN jobs j ON j.id = e.job_id
		WHERE e.schedule_id = $1 AND j.state IN ('queued', 'running') LIMIT 1`, scheduleID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// TriggerData is the "data" of schedule events.
type TriggerData struct {
	ScheduleID string    `json:"schedule_id"`
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`
	DueAt      time.Time `json:"due_at"`
	JobID      string    `json:"job_id,omitempty"`
	Provider   string    `json:"provider"`
	VM         string    `json:"vm"`
	Error      string    `json:"error,omitempty"`
}

func (s *Scheduler) emit(ctx context.Context, tx *sql.Tx, typ string, r *row, jobID string, due time.Time, kind, errText string) error {
	if s.opts.Events == nil {
		return nil
	}
	return s.opts.Events.Emit(ctx, tx, typ, TriggerData{ScheduleID: r.id, Name: r.name, Kind: kind, DueAt: due.UTC(), JobID: jobID,
		Provider: r.template.Provider, VM: r.template.VM, Error: errText})
}

// ExecutionRecorder is the scheduler's side of job events: when a scheduled
// job ends, its execution records the final status and duration, in the
// transaction of the change. It needs nothing but that transaction, so the
// job engine is built with it before the Scheduler that submits to the
// engine: the two depend on each other through interfaces (jobs.Events,
// Jobs), not through closures patched in after construction.
type ExecutionRecorder struct{}

// Emit implements jobs.Events.
func (ExecutionRecorder) Emit(ctx context.Context, tx *sql.Tx, eventType string, data any) error {
	if eventType != apitypes.EventJobCompleted && eventType != apitypes.EventJobFailed && eventType != apitypes.EventJobCancelled {
		return nil
	}
	d, ok := data.(jobs.EventData)
	if !ok || !strings.HasPrefix(d.SubmittedBy, "schedule:") {
		return nil
	}
	var dur any
	if d.FinishedAt != nil {
		start := d.CreatedAt
		if d.StartedAt != nil {
			start = *d.StartedAt
		}
		dur = d.FinishedAt.Sub(start).Seconds()
	}
	_, err := tx.ExecContext(ctx, "UPDATE schedule_executions SET status = $2, duration_seconds = $3 WHERE job_id = $1", d.JobID, string(d.State), dur)
	return err
}

func newID() string {
	u, _ := uuid.NewV7()
	return "sch_" + strings.ReplaceAll(u.String(), "-", "")[:20]
}
