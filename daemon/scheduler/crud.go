package scheduler

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/internal/errclass"
	"github.com/hypersdk/hypersdk/internal/fielderr"
)

// Errors the API maps to problems.
var (
	ErrNotFound = errclass.New(errclass.NotFound, apitypes.ProblemScheduleNotFound, "schedule not found")
	ErrInvalid  = errclass.New(errclass.Invalid, apitypes.ProblemInvalidSchedule, "invalid schedule")
	ErrConflict = errclass.New(errclass.Conflict, apitypes.ProblemScheduleConflict, "conflict")
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

func (s *Scheduler) check(expr, zone, overlap, catchUp string, job apitypes.JobRequest) (*Expr, error) {
	var problems fielderr.List
	e, err := Parse(expr, zone)
	if err != nil {
		// Report a bad expression and a bad zone together.
		if _, exprErr := Parse(expr, "UTC"); exprErr != nil {
			problems.Addf("schedule", "%v", exprErr)
		}
		if _, zoneErr := Parse("@daily", zone); zoneErr != nil {
			problems.Addf("timezone", "%v", zoneErr)
		}
	}
	switch overlap {
	case apitypes.OverlapSkip, apitypes.OverlapQueue, apitypes.OverlapAllow:
	default:
		problems.Addf("overlap", "must be skip, queue or allow, got %q", overlap)
	}
	switch catchUp {
	case apitypes.CatchUpNone, apitypes.CatchUpOnce:
	default:
		problems.Addf("catch_up", "must be none or once, got %q", catchUp)
	}
	if err := s.jobs.Validate(job); err != nil {
		if inner, ok := fielderr.Of(err); ok {
			problems.Nest("job", inner)
		} else {
			problems.Addf("job", "%s", strings.TrimPrefix(err.Error(), jobs.ErrInvalid.Error()+": "))
		}
	}
	if err := problems.Err(ErrInvalid); err != nil {
		return nil, err
	}
	return e, nil
}

// Create stores a schedule; its first run is the first due time after now.
func (s *Scheduler) Create(ctx context.Context, spec apitypes.ScheduleSpec, by string) (*apitypes.Schedule, error) {
	if strings.HasPrefix(spec.Name, "sch_") {
		return nil, fielderr.List{{Field: "name", Message: "names starting with sch_ are reserved for schedule IDs"}}.Err(ErrInvalid)
	}
	if !namePattern.MatchString(spec.Name) {
		return nil, fielderr.List{{Field: "name", Message: fmt.Sprintf("letters, digits, '.', '_' and '-', starting with a letter or digit, got %q", spec.Name)}}.Err(ErrInvalid)
	}
	if spec.Timezone == "" {
		spec.Timezone = "UTC"
	}
	if spec.Overlap == "" {
		spec.Overlap = apitypes.OverlapSkip
	}
	if spec.CatchUp == "" {
		spec.CatchUp = apitypes.CatchUpOnce
	}
	e, err := s.check(spec.Schedule, spec.Timezone, spec.Overlap, spec.CatchUp, spec.Job)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	enabled := spec.Enabled == nil || *spec.Enabled
	tmpl, _ := json.Marshal(spec.Job)
	id := newID()
	var endAt, maxRuns any
	if spec.EndAt != nil {
		endAt = store.Micros(*spec.EndAt)
	}
	if spec.MaxRuns != nil {
		maxRuns = *spec.MaxRuns
	}
	_, err = s.db.SQL.ExecContext(ctx, `INSERT INTO scheduled_jobs (id, name, schedule, timezone, job_template_json, enabled, overlap,
			catch_up, end_at, max_runs, created_at, updated_at, next_run, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13)`,
		id, spec.Name, spec.Schedule, spec.Timezone, string(tmpl), boolInt(enabled), spec.Overlap, spec.CatchUp, endAt, maxRuns,
		store.Micros(now), nullTime(e.Next(now)), by)
	if store.IsUniqueViolation(err) {
		return nil, fmt.Errorf("%w: a schedule named %q exists", ErrConflict, spec.Name)
	}
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return store.Micros(t)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const scheduleColumns = `id, name, schedule, timezone, job_template_json, enabled, overlap, catch_up, end_at, max_runs,
	run_count, last_run, next_run, created_by, created_at, updated_at`

func (s *Scheduler) scan(r interface{ Scan(...any) error }) (*apitypes.Schedule, error) {
	var (
		sc                        apitypes.Schedule
		tmpl                      string
		enabled                   int
		endAt, maxRuns, last, nxt sql.NullInt64
		created, updated          int64
	)
	if err := r.Scan(&sc.ID, &sc.Name, &sc.Schedule, &sc.Timezone, &tmpl, &enabled, &sc.Overlap, &sc.CatchUp, &endAt, &maxRuns,
		&sc.RunCount, &last, &nxt, &sc.CreatedBy, &created, &updated); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(tmpl), &sc.Job)
	sc.Enabled = enabled == 1
	sc.EndAt, sc.LastRun = store.NullTime(endAt), store.NullTime(last)
	if maxRuns.Valid {
		n := int(maxRuns.Int64)
		sc.MaxRuns = &n
	}
	sc.CreatedAt, sc.UpdatedAt = store.Time(created), store.Time(updated)
	sc.NextRuns = []time.Time{}
	if sc.Enabled {
		sc.NextRun = store.NullTime(nxt)
		if e, err := Parse(sc.Schedule, sc.Timezone); err == nil && sc.NextRun != nil {
			sc.NextRuns = append(sc.NextRuns, *sc.NextRun)
			sc.NextRuns = append(sc.NextRuns, e.NextN(*sc.NextRun, 4)...)
			for i, t := range sc.NextRuns {
				if sc.EndAt != nil && t.After(*sc.EndAt) {
					sc.NextRuns = sc.NextRuns[:i]
					break
				}
			}
			if sc.MaxRuns != nil {
				left := max(0, *sc.MaxRuns-sc.RunCount)
				sc.NextRuns = sc.NextRuns[:min(left, len(sc.NextRuns))]
			}
		}
	}
	return &sc, nil
}

// Get returns a schedule by ID or name.
func (s *Scheduler) Get(ctx context.Context, idOrName string) (*apitypes.Schedule, error) {
	sc, err := s.scan(s.db.SQL.QueryRowContext(ctx, "SELECT "+scheduleColumns+" FROM scheduled_jobs WHERE id = $1 OR name = $1", idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, idOrName)
	}
	return sc, err
}

// List returns every schedule by name.
func (s *Scheduler) List(ctx context.Context) ([]*apitypes.Schedule, error) {
	rows, err := s.db.SQL.QueryContext(ctx, "SELECT "+scheduleColumns+" FROM scheduled_jobs ORDER BY name")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*apitypes.Schedule{}
	for rows.Next() {
		sc, err := s.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// Update changes a schedule. Changing its timing, or enabling it, sets the
// next run to the first due time after now (a paused schedule does not
// catch up on the time it was paused).
func (s *Scheduler) Update(ctx context.Context, idOrName string, p apitypes.SchedulePatch) (*apitypes.Schedule, error) {
	cur, err := s.Get(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	expr, zone, overlap, catchUp, job := cur.Schedule, cur.Timezone, cur.Overlap, cur.CatchUp, cur.Job
	if p.Schedule != nil {
		expr = *p.Schedule
	}
	if p.Timezone != nil {
		zone = *p.Timezone
		if zone == "" {
			zone = "UTC"
		}
	}
	if p.Overlap != nil {
		overlap = *p.Overlap
	}
	if p.CatchUp != nil {
		catchUp = *p.CatchUp
	}
	if p.Job != nil {
		job = *p.Job
	}
	e, err := s.check(expr, zone, overlap, catchUp, job)
	if err != nil {
		return nil, err
	}
	enabled := cur.Enabled
	if p.Enabled != nil {
		enabled = *p.Enabled
	}
	limit := cur.MaxRuns
	if p.MaxRuns != nil {
		limit = p.MaxRuns
	}
	if enabled && limit != nil && cur.RunCount >= *limit {
		return nil, fmt.Errorf("%w: schedule %s has run %d of %d times; raise max_runs to enable it", ErrConflict, cur.Name, cur.RunCount, *limit)
	}
	now := s.opts.Now()
	retime := p.Schedule != nil || p.Timezone != nil || (enabled && !cur.Enabled)
	endAt, maxRuns := any(nil), any(nil)
	if cur.EndAt != nil {
		endAt = store.Micros(*cur.EndAt)
	}
	if p.EndAt != nil {
		endAt = store.Micros(*p.EndAt)
	}
	if cur.MaxRuns != nil {
		maxRuns = *cur.MaxRuns
	}
	if p.MaxRuns != nil {
		maxRuns = *p.MaxRuns
	}
	tmpl, _ := json.Marshal(job)
	q := `UPDATE scheduled_jobs SET schedule = $2, timezone = $3, overlap = $4, catch_up = $5, job_template_json = $6,
		enabled = $7, end_at = $8, max_runs = $9, updated_at = $10`
	args := []any{cur.ID, expr, zone, overlap, catchUp, string(tmpl), boolInt(enabled), endAt, maxRuns, store.Micros(now)}
	if retime {
		q += ", next_run = $11"
		args = append(args, nullTime(e.Next(now)))
	}
	if _, err := s.db.SQL.ExecContext(ctx, q+" WHERE id = $1", args...); err != nil {
		return nil, err
	}
	return s.Get(ctx, cur.ID)
}

// Delete removes a schedule and its history (not its jobs).
func (s *Scheduler) Delete(ctx context.Context, idOrName string) error {
	cur, err := s.Get(ctx, idOrName)
	if err != nil {
		return err
	}
	_, err = s.db.SQL.ExecContext(ctx, "DELETE FROM scheduled_jobs WHERE id = $1", cur.ID)
	return err
}

// RunNow submits the schedule's job at once (whatever its overlap policy:
// an operator asked) and records it as a manual run.
func (s *Scheduler) RunNow(ctx context.Context, idOrName string) (*apitypes.Execution, error) {
	cur, err := s.Get(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	var f fired
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		f = fired{}
		var r row
		var tmpl string
		if err := tx.QueryRowContext(ctx, "SELECT id, name, schedule, timezone, job_template_json FROM scheduled_jobs WHERE id = $1", cur.ID).
			Scan(&r.id, &r.name, &r.expr, &r.zone, &tmpl); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(tmpl), &r.template); err != nil {
			return err
		}
		return s.submit(ctx, tx, &r, now, now, apitypes.ExecutionManual, &f)
	})
	if err != nil {
		return nil, err
	}
	if f.committed != nil {
		f.committed()
	}
	outcome := "manual"
	if f.outcome == apitypes.ExecutionNotSubmitted {
		outcome = apitypes.ExecutionNotSubmitted
	}
	if s.opts.Metrics != nil {
		s.opts.Metrics.ScheduleRun(cur.Name, outcome, 0)
	}
	x, err := s.execution(ctx, f.execution)
	if err != nil {
		return nil, err
	}
	if f.outcome == apitypes.ExecutionNotSubmitted {
		return x, fmt.Errorf("%w: %s", ErrInvalid, x.Detail)
	}
	return x, nil
}

const executionColumns = "id, schedule_id, job_id, executed_at, due_at, kind, status, detail, duration_seconds, lag_seconds"

func scanExecution(r interface{ Scan(...any) error }) (*apitypes.Execution, error) {
	var e apitypes.Execution
	var job sql.NullString
	var at int64
	var due sql.NullInt64
	var dur, lag sql.NullFloat64
	if err := r.Scan(&e.ID, &e.ScheduleID, &job, &at, &due, &e.Kind, &e.Status, &e.Detail, &dur, &lag); err != nil {
		return nil, err
	}
	e.JobID, e.ExecutedAt, e.DueAt, e.LagSeconds = job.String, store.Time(at), store.NullTime(due), lag.Float64
	if dur.Valid {
		e.DurationSeconds = &dur.Float64
	}
	return &e, nil
}

func (s *Scheduler) execution(ctx context.Context, id int64) (*apitypes.Execution, error) {
	return scanExecution(s.db.SQL.QueryRowContext(ctx, "SELECT "+executionColumns+" FROM schedule_executions WHERE id = $1", id))
}

// History lists a schedule's executions newest first; cursor is the last
// ID of the previous page.
func (s *Scheduler) History(ctx context.Context, idOrName, cursor string, limit int) ([]*apitypes.Execution, string, error) {
	cur, err := s.Get(ctx, idOrName)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := "SELECT " + executionColumns + " FROM schedule_executions WHERE schedule_id = $1"
	args := []any{cur.ID}
	if cursor != "" {
		var c int64
		if _, err := fmt.Sscan(cursor, &c); err != nil {
			return nil, "", fmt.Errorf("%w: bad cursor", ErrInvalid)
		}
		q += " AND id < $2"
		args = append(args, c)
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit+1)
	rows, err := s.db.SQL.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out := []*apitypes.Execution{}
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = fmt.Sprint(out[limit-1].ID)
	}
	return out, next, rows.Err()
}

// Preview returns the next n due times of an expression from the
// scheduler's now, without saving anything.
func (s *Scheduler) Preview(expr, zone string, n int) ([]time.Time, error) {
	return Preview(expr, zone, s.opts.Now(), n)
}

// Preview returns the next n due times of an expression after from.
func Preview(expr, zone string, from time.Time, n int) ([]time.Time, error) {
	e, err := Parse(expr, zone)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return e.NextN(from, n), nil
}

// Counts returns how many schedules are enabled and paused.
func (s *Scheduler) Counts(ctx context.Context) (enabled, paused int, err error) {
	err = s.db.SQL.QueryRowContext(ctx, "SELECT COALESCE(SUM(enabled), 0), COUNT(*) - COALESCE(SUM(enabled), 0) FROM scheduled_jobs").Scan(&enabled, &paused)
	return enabled, paused, err
}

// NextRuns returns the next due time of every enabled schedule that has
// one, by schedule name (all daemons).
func (s *Scheduler) NextRuns(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.db.SQL.QueryContext(ctx, "SELECT name, next_run FROM scheduled_jobs WHERE enabled = 1 AND next_run IS NOT NULL")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var (
			name string
			next int64
		)
		if err := rows.Scan(&name, &next); err != nil {
			return nil, err
		}
		out[name] = store.Time(next)
	}
	return out, rows.Err()
}
