package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// exportWorker is the River worker; all logic lives on Manager.
type exportWorker struct {
	river.WorkerDefaults[exportArgs]
	m *Manager
}

func (w *exportWorker) Work(ctx context.Context, rj *river.Job[exportArgs]) error {
	return w.m.work(ctx, rj.ID, rj.Args.JobID)
}

var errAttemptTimeout = errors.New("attempt timed out")

// attempt is one claimed run of a job.
type attempt struct {
	jobID    string
	riverID  int64
	number   int
	max      int
	spec     apitypes.JobSpec
	started  time.Time
	progress *progressState
	logs     *logSink
	log      *slog.Logger

	countMu sync.Mutex
	counted int64 // bytes already added to the export-bytes metric
}

func (m *Manager) work(ctx context.Context, riverID int64, jobID string) error {
	a, snooze, err := m.claim(ctx, riverID, jobID)
	if err != nil {
		// The store is unreachable: let River try again shortly.
		m.log.Warn("claiming job failed", "job_id", jobID, "err", err)
		return river.JobSnooze(time.Second + rand.N(time.Second))
	}
	if snooze > 0 {
		return river.JobSnooze(snooze)
	}
	if a == nil {
		return nil // nothing to do: finished, deleted or superseded
	}

	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if t := m.opts.Jobs.Timeout; t > 0 {
		var cancelT context.CancelFunc
		var cause error = fmt.Errorf("%w after %s", errAttemptTimeout, t)
		if a.number >= a.max {
			cause = abandoned{cause}
		}
		jctx, cancelT = context.WithTimeoutCause(jctx, t, cause)
		defer cancelT()
	}
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		cancel(errShutdown)
	} else {
		m.running[jobID] = cancel
		m.mu.Unlock()
	}
	defer func() {
		m.mu.Lock()
		delete(m.running, jobID)
		m.mu.Unlock()
	}()

	a.log.Info("attempt started", "attempt", a.number, "max_attempts", a.max, "node", m.opts.NodeID)
	m.hub.publish(jobID)

	hbDone := make(chan struct{})
	var hbWG sync.WaitGroup
	hbWG.Go(func() { m.heartbeat(jctx, a, cancel, hbDone) })

	res, exportErr := m.export(jctx, a)

	close(hbDone)
	hbWG.Wait()
	return m.finish(context.WithoutCancel(ctx), a, res, exportErr, context.Cause(jctx))
}

// claim takes the job's lease if it is this River job's to run. It returns
// a nil attempt when there is nothing to do and a positive snooze when the
// job must wait (provider at its limit, or a live lease held elsewhere).
func (m *Manager) claim(ctx context.Context, riverID int64, jobID string) (*attempt, time.Duration, error) {
	now := m.opts.Now()
	stale := store.Micros(now.Add(-m.opts.Jobs.HeartbeatStale))
	var (
		a       *attempt
		snooze  time.Duration
		reason  string
		blocker string // the running job exporting the same VM
	)
	err := m.db.Tx(ctx, func(tx *sql.Tx) error {
		var (
			provider, vm string
			state        apitypes.JobState
			curRiver     sql.NullInt64
			heartbeat    sql.NullInt64
		)
		blocker = ""
		err := tx.QueryRowContext(ctx, "SELECT provider, vm, state, river_job_id, heartbeat_at FROM jobs WHERE id = $1", jobID).
			Scan(&provider, &vm, &state, &curRiver, &heartbeat)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			reason = "job deleted"
			return nil
		case err != nil:
			return err
		case !curRiver.Valid || curRiver.Int64 != riverID:
			reason = "superseded by a newer queue entry"
			return nil
		case state.Terminal():
			reason = "already " + string(state)
			return nil
		case state == apitypes.JobRunning && heartbeat.Int64 >= stale:
			// Another live worker holds the lease (River redelivered).
			snooze = m.opts.Jobs.HeartbeatStale
			return nil
		}
		// One export of a VM at a time: the platform refuses a second one
		// while the first holds the VM (vSphere: TaskInProgress), which
		// would burn attempts. The job waits without using an attempt. The
		// lock is taken before the provider's, always in this order.
		if m.db.Dialect == store.Postgres {
			// Serialise claims per VM across daemons so two cannot both
			// see it free.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", vmLockKey(provider, vm)); err != nil {
				return err
			}
		}
		err = tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE provider = $1 AND vm = $2 AND state = 'running'
			AND heartbeat_at >= $3 AND id <> $4 LIMIT 1`, provider, vm, stale, jobID).Scan(&blocker)
		switch {
		case err == nil:
			snooze = 500*time.Millisecond + rand.N(time.Second)
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if limit := m.providerLimit(provider); limit > 0 {
			if m.db.Dialect == store.Postgres {
				// Serialise claims per provider across daemons so two
				// cannot both see one free slot.
				if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", providerLockKey(provider)); err != nil {
					return err
				}
			}
			var running int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM jobs WHERE provider = $1 AND state = 'running' AND heartbeat_at >= $2",
				provider, stale).Scan(&running); err != nil {
				return err
			}
			if running >= limit {
				snooze = 500*time.Millisecond + rand.N(time.Second)
				return nil
			}
		}
		if limit := m.opts.ClusterLimit; limit > 0 {
			if m.db.Dialect == store.Postgres {
				// Serialise claims across daemons so two cannot both see
				// the cluster's last free slot (taken after the VM and
				// provider locks, always in that order).
				if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", clusterLockKey); err != nil {
					return err
				}
			}
			var running int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND heartbeat_at >= $1", stale).Scan(&running); err != nil {
				return err
			}
			if running >= limit {
				snooze = 500*time.Millisecond + rand.N(time.Second)
				return nil
			}
		}
		var specJSON string
		var number, maxAttempts int
		err = tx.QueryRowContext(ctx, `UPDATE jobs SET state = 'running', attempt = attempt + 1, node_id = $3,
				heartbeat_at = $4, updated_at = $4, started_at = COALESCE(started_at, $4), phase = 'starting',
				rate_bps = 0, eta_seconds = NULL, next_attempt_at = NULL
			WHERE id = $1 AND river_job_id = $2 AND (state = 'queued' OR (state = 'running' AND heartbeat_at < $5))
			RETURNING attempt, max_attempts, spec`,
			jobID, riverID, m.opts.NodeID, store.Micros(now), stale).Scan(&number, &maxAttempts, &specJSON)
		if errors.Is(err, sql.ErrNoRows) {
			reason = "claimed concurrently"
			return nil
		}
		if err != nil {
			return err
		}
		var spec apitypes.JobSpec
		if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
			return fmt.Errorf("job %s: corrupt spec: %w", jobID, err)
		}
		if err := m.emit(ctx, tx, apitypes.EventJobStarted, jobID); err != nil {
			return err
		}
		a = &attempt{jobID: jobID, riverID: riverID, number: number, max: maxAttempts, spec: spec, started: now, progress: &progressState{}}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	m.noteWait(ctx, jobID, blocker)
	if a == nil {
		if reason != "" {
			m.log.Debug("river job has nothing to do", "job_id", jobID, "river_job_id", riverID, "reason", reason)
		}
		return nil, snooze, nil
	}
	a.logs = newLogSink(jobID)
	a.log = slog.New(&jobLogHandler{next: m.log.Handler(), sink: a.logs}).With("job_id", jobID)
	return a, 0, nil
}

// providerLimit is the tighter of the instance's max_concurrent and
// jobs.per_provider_limit (0: no limit beyond jobs.max_concurrent).
func (m *Manager) providerLimit(name string) int {
	limit := m.opts.Jobs.PerProviderLimit
	if in, ok := m.providers.Get(name); ok && in.Limit > 0 && (limit == 0 || in.Limit < limit) {
		limit = in.Limit
	}
	return limit
}

// clusterLockKey names the advisory lock that serialises claims against
// cluster.max_concurrent ("hsdkclus" in ASCII).
const clusterLockKey = 0x6873646b636c7573

func providerLockKey(provider string) int64 {
	h := fnv.New64a()
	h.Write([]byte("hypersdk-provider:" + provider))
	return int64(h.Sum64())
}

// vmLockKey names the advisory lock that serialises claims of one VM.
func vmLockKey(provider, vm string) int64 {
	h := fnv.New64a()
	h.Write([]byte("hypersdk-vm:" + provider + "\x00" + vm))
	return int64(h.Sum64())
}

// noteWait tells a job's log, once per blocking job, that the job waits
// for another export of the same VM; blocker "" means it no longer waits.
func (m *Manager) noteWait(ctx context.Context, jobID, blocker string) {
	m.mu.Lock()
	prev := m.waiting[jobID]
	if blocker == "" {
		delete(m.waiting, jobID)
	} else {
		m.waiting[jobID] = blocker
	}
	m.mu.Unlock()
	if blocker != "" && blocker != prev {
		m.appendLog(ctx, jobID, slog.LevelInfo, "waiting: another job is exporting this VM", map[string]any{"running_job_id": blocker})
	}
}

// export runs the provider, converting a panic into an error.
func (m *Manager) export(ctx context.Context, a *attempt) (res *providers.ExportResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("export panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("export panicked: %v", r)
		}
	}()
	inst, ok := m.providers.Get(a.spec.Provider)
	if !ok {
		return nil, providers.Permanent(fmt.Errorf("provider %q is no longer configured", a.spec.Provider))
	}
	if h := inst.Health(); !h.Healthy {
		return nil, fmt.Errorf("provider %s is not available: %s", a.spec.Provider, h.Error)
	}
	opts := a.spec.Options
	out, err := m.openOutput(opts.OutputDir)
	if err != nil {
		return nil, providers.Permanent(err)
	}
	defer out.Close()
	opts.OutputRoot = out
	if opts.OutputURL != "" {
		sink, err := m.opts.OutputTargets.Open(ctx, "output", opts.OutputURL, out, a.log)
		if err != nil {
			return nil, providers.Permanent(err)
		}
		opts.Output = sink
	}
	opts.JobID = a.jobID
	opts.FinalAttempt = a.number >= a.max
	opts.Logger = a.log
	opts.Progress = a.progress.update
	return pipeline.Export(ctx, inst, a.spec.VM, opts)
}

// heartbeat renews the lease and persists progress and logs about once a
// HeartbeatInterval; it cancels the attempt when a cancel was requested or
// the lease was lost.
func (m *Manager) heartbeat(ctx context.Context, a *attempt, cancel context.CancelCauseFunc, done <-chan struct{}) {
	t := time.NewTicker(m.opts.HeartbeatInterval)
	defer t.Stop()
	meter := transfer.NewMeter(10 * time.Second)
	lastOK := m.opts.Now()
	lastProgressEvent := lastOK
	hctx := context.WithoutCancel(ctx)
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := m.opts.Now()
		p := a.progress.get()
		items := a.progress.itemProgress(now)
		meter.Observe(now, p.BytesDone)
		rate := meter.Rate()
		var eta *float64
		if d, ok := meter.ETA(p.BytesTotal); ok && p.BytesTotal > 0 {
			s := d.Seconds()
			eta = &s
		}
		a.countBytes(m, p.BytesDone)
		var cancelAt sql.NullInt64
		found := true
		err := m.db.Tx(hctx, func(tx *sql.Tx) error {
			err := tx.QueryRowContext(hctx, `UPDATE jobs SET heartbeat_at = $1, updated_at = $1, phase = $2, bytes_done = $3,
					bytes_total = $4, rate_bps = $5, eta_seconds = $6
				WHERE id = $7 AND node_id = $8 AND attempt = $9 AND state = 'running' RETURNING cancel_requested_at`,
				store.Micros(now), p.Phase, p.BytesDone, p.BytesTotal, rate, eta, a.jobID, m.opts.NodeID, a.number).Scan(&cancelAt)
			if errors.Is(err, sql.ErrNoRows) {
				found = false
				return nil
			}
			if err != nil {
				return err
			}
			if now.Sub(lastProgressEvent) >= m.opts.ProgressEvents {
				if err := m.emitProgress(hctx, tx, a.jobID, items); err != nil {
					return err
				}
				lastProgressEvent = now
			}
			return a.logs.flush(hctx, tx)
		})
		switch {
		case err != nil:
			m.log.Warn("heartbeat failed", "job_id", a.jobID, "err", err)
			// Without heartbeats another daemon will take the job over
			// after HeartbeatStale; stop first so it never runs twice.
			if now.Sub(lastOK) > m.opts.Jobs.HeartbeatStale*2/3 {
				cancel(errLeaseLost)
			}
		case !found:
			cancel(errLeaseLost)
		case cancelAt.Valid:
			lastOK = now
			cancel(errUserCancel)
		default:
			lastOK = now
		}
		m.hub.publish(a.jobID)
	}
}

// finish records the attempt's outcome, conditional on still holding the
// lease, and tells River what to do with its job.
func (m *Manager) finish(ctx context.Context, a *attempt, res *providers.ExportResult, exportErr, cause error) error {
	now := m.opts.Now()
	elapsed := now.Sub(a.started)
	lease := func(q string) string {
		return q + " WHERE id = $1 AND node_id = $2 AND attempt = $3 AND state = 'running'"
	}
	var (
		query     string
		args      []any
		state     apitypes.JobState
		riverErr  error
		logMsg    string
		logLevel  = slog.LevelInfo
		logAttrs  []any
		finalized bool
		retried   bool // failed, another attempt follows
	)
	base := []any{a.jobID, m.opts.NodeID, a.number, store.Micros(now)}
	if exportErr == nil && res == nil {
		exportErr = errors.New("provider returned neither a result nor an error")
	}
	switch {
	case errors.Is(cause, errLeaseLost):
		a.log.Warn("attempt abandoned: lease lost", "attempt", a.number)
		_ = m.flushLogs(ctx, a)
		return nil
	case exportErr == nil && res != nil:
		state, finalized = apitypes.JobSucceeded, true
		resJSON, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		total := res.Bytes
		query = lease(`UPDATE jobs SET state = 'succeeded', result = $5, phase = 'done', bytes_done = $6, bytes_total = $6,
			rate_bps = $7, eta_seconds = 0, error = '', error_kind = '', finished_at = $4, updated_at = $4`)
		args = append(base, string(resJSON), total, res.Throughput)
		logMsg, logAttrs = "export succeeded", []any{"bytes", total, "duration", elapsed.Round(time.Millisecond).String(), "files", len(res.Files)}
	case errors.Is(cause, errUserCancel):
		state, finalized = apitypes.JobCancelled, true
		query = lease(`UPDATE jobs SET state = 'cancelled', error = 'cancelled on request', error_kind = 'cancelled',
			finished_at = $4, updated_at = $4`)
		args = base
		riverErr = river.JobCancel(errUserCancel)
		logMsg = "export cancelled"
		if exportErr != nil && !errors.Is(exportErr, context.Canceled) {
			logAttrs = []any{"err", exportErr.Error()}
		}
	case errors.Is(cause, errShutdown) || (cause != nil && !errors.Is(cause, errAttemptTimeout)):
		// Hand the job back without using up an attempt.
		state = apitypes.JobQueued
		query = lease(`UPDATE jobs SET state = 'queued', attempt = attempt - 1, node_id = NULL, phase = '',
			rate_bps = 0, eta_seconds = NULL, updated_at = $4`)
		args = base
		riverErr = river.JobSnooze(0)
		logMsg = "export interrupted by shutdown; job returned to the queue"
	default:
		if errors.Is(cause, errAttemptTimeout) {
			exportErr = fmt.Errorf("%w: %v", cause, exportErr)
		}
		permanent := providers.IsPermanent(exportErr)
		// Viewers read the stored error: no pre-signed or lease URLs in it.
		errText := transfer.RedactURLs(exportErr.Error())
		if permanent || a.number >= a.max {
			state, finalized = apitypes.JobFailed, true
			kind := apitypes.ErrorKindTransient
			if permanent {
				kind = apitypes.ErrorKindPermanent
			}
			query = lease(`UPDATE jobs SET state = 'failed', error = $5, error_kind = $6, finished_at = $4, updated_at = $4`)
			args = append(base, errText, kind)
			riverErr = river.JobCancel(exportErr)
			logMsg, logLevel = "export failed", slog.LevelError
			logAttrs = []any{"err", errText, "kind", kind, "attempt", a.number, "max_attempts", a.max}
		} else {
			state, retried = apitypes.JobQueued, true
			delay := m.retry.Delay(a.number)
			next := now.Add(delay)
			query = lease(`UPDATE jobs SET state = 'queued', node_id = NULL, error = $5, error_kind = 'transient',
				next_attempt_at = $6, rate_bps = 0, eta_seconds = NULL, updated_at = $4`)
			args = append(base, errText, store.Micros(next))
			riverErr = river.JobSnooze(delay)
			logMsg, logLevel = "export failed; will retry", slog.LevelWarn
			logAttrs = []any{"err", errText, "attempt", a.number, "max_attempts", a.max, "retry_in", delay.Round(time.Millisecond).String()}
		}
	}
	a.log.Log(ctx, logLevel, logMsg, logAttrs...)
	var applied bool
	err := m.db.Tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, _ := r.RowsAffected()
		applied = n == 1
		if applied && finalized {
			if err := m.emit(ctx, tx, finalEvent(state), a.jobID); err != nil {
				return err
			}
		}
		return a.logs.flush(ctx, tx)
	})
	if err != nil {
		// The outcome could not be recorded; the lease will go stale and
		// the reaper will queue the job again.
		m.log.Error("recording job outcome failed", "job_id", a.jobID, "state", state, "err", err)
		return river.JobSnooze(m.opts.Jobs.HeartbeatStale)
	}
	m.hub.publish(a.jobID)
	if !applied {
		m.log.Warn("job outcome not recorded: lease lost meanwhile", "job_id", a.jobID, "outcome", state)
		return nil
	}
	if retried {
		m.metrics.JobRetried(a.spec.Provider)
	}
	if finalized {
		m.metrics.JobFinished(a.spec.Provider, state, elapsed)
		if state == apitypes.JobSucceeded {
			a.countBytes(m, res.Bytes)
			if res.ResumedBytes > 0 {
				m.metrics.ResumedBytes(a.spec.Provider, res.ResumedBytes)
			}
		}
	}
	return riverErr
}

func (m *Manager) flushLogs(ctx context.Context, a *attempt) error {
	return m.db.Tx(ctx, func(tx *sql.Tx) error { return a.logs.flush(ctx, tx) })
}

// countBytes adds the bytes moved since the last call to the export-bytes
// metric and the daemon's total; done only grows the count (a restarted
// file does not subtract).
func (a *attempt) countBytes(m *Manager, done int64) {
	a.countMu.Lock()
	defer a.countMu.Unlock()
	if d := done - a.counted; d > 0 {
		m.metrics.ExportBytes(a.spec.Provider, d)
		m.moved.Add(d)
		a.counted = done
	}
}

// maxTrackedItems bounds the per-item progress kept for one attempt.
const maxTrackedItems = 256

// progressState is the latest progress an export reported, overall and
// per item (disk file).
type progressState struct {
	mu    sync.Mutex
	p     progress.Report
	items []*itemState // in order of first report
	byKey map[string]*itemState
}

type itemState struct {
	name       string
	phase      string
	done, size int64
	final      bool
	meter      *transfer.Meter
}

// update keeps the latest report. A total a provider cannot know yet is 0
// (unknown); one that the bytes done have already passed was a wrong
// estimate and becomes unknown too, so a job never shows more than 100%.
func (s *progressState) update(p progress.Report) {
	if p.BytesTotal < 0 || p.BytesDone > p.BytesTotal {
		p.BytesTotal = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p = p
	if p.Item == "" {
		return
	}
	// Items are per phase: a disk downloaded, then converted, is two.
	key := p.Phase + "\x00" + p.Item
	it := s.byKey[key]
	if it == nil {
		if len(s.items) >= maxTrackedItems {
			return
		}
		if s.byKey == nil {
			s.byKey = map[string]*itemState{}
		}
		it = &itemState{name: p.Item, phase: p.Phase, meter: transfer.NewMeter(10 * time.Second)}
		s.byKey[key] = it
		s.items = append(s.items, it)
	}
	it.done, it.size, it.final = p.ItemBytes, p.ItemSize, p.Final
	if it.size > 0 && it.done > it.size {
		it.size = 0
	}
}

// itemProgress measures every item's rate at now and returns their
// progress, oldest first.
func (s *progressState) itemProgress(now time.Time) []ItemProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ItemProgress, 0, len(s.items))
	for _, it := range s.items {
		it.meter.Observe(now, it.done)
		ip := ItemProgress{Name: it.name, Phase: it.phase, BytesDone: it.done, BytesTotal: it.size, Done: it.final}
		if !it.final {
			ip.RateBps = it.meter.Rate()
		}
		out = append(out, ip)
	}
	return out
}

func (s *progressState) get() progress.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}
