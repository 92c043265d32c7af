package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

const jobColumns = `id, provider, vm, spec, state, submitted_by, attempt, max_attempts, node_id,
	cancel_requested_at, phase, bytes_done, bytes_total, rate_bps, eta_seconds, error, error_kind,
	result, created_at, updated_at, started_at, finished_at, next_attempt_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanJob(r rowScanner) (*apitypes.Job, error) {
	var (
		j                                       apitypes.Job
		spec                                    string
		node, result                            sql.NullString
		cancelAt, startedAt, finishedAt, nextAt sql.NullInt64
		createdAt, updatedAt                    int64
		eta                                     sql.NullFloat64
		prog                                    progress.Report
		rate                                    float64
	)
	err := r.Scan(&j.ID, &j.Provider, &j.VM, &spec, &j.State, &j.SubmittedBy, &j.Attempt, &j.MaxAttempts, &node,
		&cancelAt, &prog.Phase, &prog.BytesDone, &prog.BytesTotal, &rate, &eta,
		&j.Error, &j.ErrorKind, &result, &createdAt, &updatedAt, &startedAt, &finishedAt, &nextAt)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return nil, fmt.Errorf("job %s: corrupt spec: %w", j.ID, err)
	}
	if result.Valid && result.String != "" {
		j.Result = new(providers.ExportResult)
		if err := json.Unmarshal([]byte(result.String), j.Result); err != nil {
			return nil, fmt.Errorf("job %s: corrupt result: %w", j.ID, err)
		}
	}
	j.Node = node.String
	j.CancelRequested = cancelAt.Valid && !j.State.Terminal()
	var etaSeconds *float64
	if eta.Valid {
		etaSeconds = &eta.Float64
	}
	j.Progress = apitypes.NewJobProgress(j.State, prog, rate, etaSeconds)
	j.CreatedAt, j.UpdatedAt = store.Time(createdAt), store.Time(updatedAt)
	j.StartedAt, j.FinishedAt, j.NextAttemptAt = store.NullTime(startedAt), store.NullTime(finishedAt), store.NullTime(nextAt)
	return &j, nil
}

// Get returns one job.
func (m *Manager) Get(ctx context.Context, id string) (*apitypes.Job, error) {
	j, err := scanJob(m.db.SQL.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return j, err
}

// List returns jobs newest first, and the cursor of the next page ("" at
// the end).
func (m *Manager) List(ctx context.Context, f apitypes.JobFilter) ([]*apitypes.Job, string, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, s := range f.States {
			if !s.Valid() {
				return nil, "", fmt.Errorf("%w: unknown state %q", ErrInvalid, s)
			}
			ph[i] = arg(string(s))
		}
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Provider != "" {
		where = append(where, "provider = "+arg(f.Provider))
	}
	if f.VM != "" {
		where = append(where, "vm = "+arg(f.VM))
	}
	if !f.CreatedAfter.IsZero() {
		where = append(where, "created_at >= "+arg(store.Micros(f.CreatedAfter)))
	}
	if !f.CreatedBefore.IsZero() {
		where = append(where, "created_at < "+arg(store.Micros(f.CreatedBefore)))
	}
	if !f.FinishedAfter.IsZero() {
		where = append(where, "finished_at >= "+arg(store.Micros(f.FinishedAfter)))
	}
	if !f.FinishedBefore.IsZero() {
		where = append(where, "finished_at < "+arg(store.Micros(f.FinishedBefore)))
	}
	if f.Cursor != "" {
		where = append(where, "id < "+arg(f.Cursor))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	q := "SELECT " + jobColumns + " FROM jobs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + arg(limit+1)
	rows, err := m.db.SQL.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out := make([]*apitypes.Job, 0, limit)
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// Retry submits a new job with the spec of a failed or cancelled job (the
// options in force when that job was accepted). A job whose output
// directory was the default one gets its own default; an explicit output
// directory is reused. Other states are ErrConflict.
func (m *Manager) Retry(ctx context.Context, id, by string) (*apitypes.Job, error) {
	if m.isStopping() {
		return nil, ErrStopping
	}
	old, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if old.State != apitypes.JobFailed && old.State != apitypes.JobCancelled {
		return nil, fmt.Errorf("%w: job %s is %s; only failed or cancelled jobs can be retried", ErrConflict, id, old.State)
	}
	spec := old.Spec
	if spec.Options.OutputDir == filepath.Join(m.opts.ExportDir, id) {
		spec.Options.OutputDir = ""
	}
	u, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	newID := u.String()
	err = m.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := m.insertTx(ctx, tx, newID, spec, by, nil, nil); err != nil {
			return err
		}
		return insertLogs(ctx, tx, []logRecord{{jobID: newID, at: m.opts.Now(), level: slog.LevelInfo, msg: "retry of job " + id}})
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: retry: %w", err)
	}
	m.accepted(newID, spec.Provider)
	return m.Get(ctx, newID)
}

// Cancel cancels a job: a queued job is cancelled at once; a running job's
// export is told to stop (its daemon notices within a heartbeat) and the
// job becomes cancelled when the export has returned and cleaned up.
func (m *Manager) Cancel(ctx context.Context, id, by string) (*apitypes.Job, error) {
	now := store.Micros(m.opts.Now())
	var state apitypes.JobState
	err := m.db.Tx(ctx, func(tx *sql.Tx) error {
		var riverID sql.NullInt64
		err := tx.QueryRowContext(ctx, `UPDATE jobs SET state = 'cancelled', finished_at = $2, updated_at = $2,
			error = $3, error_kind = 'cancelled', next_attempt_at = NULL
			WHERE id = $1 AND state = 'queued' RETURNING river_job_id`, id, now, "cancelled by "+principal(by)).Scan(&riverID)
		if err == nil {
			state = apitypes.JobCancelled
			if riverID.Valid {
				if _, err := m.river.JobCancelTx(ctx, tx, riverID.Int64); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
					return err
				}
			}
			return m.emit(ctx, tx, apitypes.EventJobCancelled, id)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, $2), updated_at = $2
			WHERE id = $1 AND state = 'running'`, id, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			state = apitypes.JobRunning
			return nil
		}
		return tx.QueryRowContext(ctx, "SELECT state FROM jobs WHERE id = $1", id).Scan(&state)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	switch state {
	case apitypes.JobCancelled:
		// Either this call cancelled a queued job or it was already done;
		// either way it waits for nothing any more.
		m.mu.Lock()
		delete(m.waiting, id)
		m.mu.Unlock()
	case apitypes.JobRunning:
		m.appendLog(ctx, id, slog.LevelInfo, "cancel requested", map[string]any{"by": principal(by)})
		m.mu.Lock()
		if cancel, ok := m.running[id]; ok {
			cancel(errUserCancel)
		}
		m.mu.Unlock()
	default:
		if state.Terminal() {
			return nil, fmt.Errorf("%w: job %s already %s", ErrConflict, id, state)
		}
	}
	job, err := m.Get(ctx, id)
	if err == nil && job.State == apitypes.JobCancelled && state == apitypes.JobCancelled {
		m.appendLog(ctx, id, slog.LevelInfo, "job cancelled before it started", map[string]any{"by": principal(by)})
		m.metrics.JobFinished(job.Provider, apitypes.JobCancelled, 0)
	}
	m.hub.publish(id)
	return job, err
}

func principal(by string) string {
	if by == "" {
		return "(unknown)"
	}
	return by
}

// Delete removes a finished job and its logs (not its exported files).
func (m *Manager) Delete(ctx context.Context, id string) error {
	res, err := m.db.SQL.ExecContext(ctx, "DELETE FROM jobs WHERE id = $1 AND state IN ('succeeded', 'failed', 'cancelled')", id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	j, err := m.Get(ctx, id)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: job %s is %s; cancel it first, only finished jobs can be deleted", ErrConflict, id, j.State)
}

// Counts returns how many jobs are in each state (all daemons).
func (m *Manager) Counts(ctx context.Context) (map[apitypes.JobState]int, error) {
	rows, err := m.db.SQL.QueryContext(ctx, "SELECT state, COUNT(*) FROM jobs GROUP BY state")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[apitypes.JobState]int{}
	for _, s := range apitypes.JobStates() {
		out[s] = 0
	}
	for rows.Next() {
		var s apitypes.JobState
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// Logs returns up to limit log lines of a job with IDs greater than after.
func (m *Manager) Logs(ctx context.Context, id string, after int64, limit int) ([]apitypes.LogLine, error) {
	if limit <= 0 || limit > 5000 {
		limit = 5000
	}
	rows, err := m.db.SQL.QueryContext(ctx, "SELECT id, at, level, message, attrs FROM job_logs WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3", id, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []apitypes.LogLine
	for rows.Next() {
		var l apitypes.LogLine
		var at int64
		var attrs sql.NullString
		if err := rows.Scan(&l.ID, &at, &l.Level, &l.Message, &attrs); err != nil {
			return nil, err
		}
		l.At = store.Time(at)
		if attrs.Valid && attrs.String != "" {
			_ = json.Unmarshal([]byte(attrs.String), &l.Attrs)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		// Distinguish "no new lines" from "no such job".
		if _, err := m.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Wait blocks until job id changes (in this daemon) or d passes or ctx
// ends; followers poll the store after it returns, which also covers jobs
// running on other daemons.
func (m *Manager) Wait(ctx context.Context, id string, d time.Duration) {
	ch, done := m.hub.subscribe(id)
	defer done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-ch:
	}
}

// BytesMoved is the running total of bytes this daemon has exported since
// it started (the export-bytes metric, all providers).
func (m *Manager) BytesMoved() int64 { return m.moved.Load() }

// Changes returns a channel that receives a value after any job changes in
// this daemon (after the change committed), and a function to stop. Like
// Wait it carries no data: watchers re-read the store.
func (m *Manager) Changes() (<-chan struct{}, func()) {
	return m.hub.subscribe(anyJob)
}

// appendLog writes one log line for a job outside a running attempt
// (submission, cancellation, recovery). Failures are logged, not returned:
// a log line is never worth failing the operation it describes.
func (m *Manager) appendLog(ctx context.Context, jobID string, level slog.Level, msg string, attrs map[string]any) {
	if err := insertLogs(ctx, m.db.SQL, []logRecord{{jobID: jobID, at: m.opts.Now(), level: level, msg: msg, attrs: attrs}}); err != nil {
		m.log.Warn("could not persist job log line", "job_id", jobID, "err", err)
	}
	m.hub.publish(jobID)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type logRecord struct {
	jobID string
	at    time.Time
	level slog.Level
	msg   string
	attrs map[string]any
}

func insertLogs(ctx context.Context, db execer, recs []logRecord) error {
	for len(recs) > 0 {
		batch := recs[:min(len(recs), 100)]
		recs = recs[len(batch):]
		var sb strings.Builder
		sb.WriteString("INSERT INTO job_logs (job_id, at, level, message, attrs) VALUES ")
		args := make([]any, 0, len(batch)*5)
		for i, r := range batch {
			if i > 0 {
				sb.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5)
			var attrs any
			if len(r.attrs) > 0 {
				b, err := json.Marshal(r.attrs)
				if err != nil {
					b, _ = json.Marshal(map[string]string{"attrs_error": err.Error()})
				}
				attrs = string(b)
			}
			args = append(args, r.jobID, store.Micros(r.at), strings.ToLower(r.level.String()), r.msg, attrs)
		}
		if _, err := db.ExecContext(ctx, sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}
