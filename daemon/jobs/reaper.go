package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store"
)

// maintain runs the periodic upkeep until ctx ends: taking over jobs whose
// daemon stopped heartbeating, re-queueing queued jobs whose queue entry
// was lost, and deleting finished jobs past their retention.
func (m *Manager) maintain(ctx context.Context) {
	reap := time.NewTicker(max(time.Second, m.opts.Jobs.HeartbeatStale/3))
	defer reap.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-reap.C:
			if n, err := m.reapStale(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("reaping stale jobs failed", "err", err)
			} else if n > 0 {
				m.log.Info("took over jobs whose daemon stopped heartbeating", "count", n)
			}
		case <-sweep.C:
			if n, err := m.sweepQueued(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("queue consistency sweep failed", "err", err)
			} else if n > 0 {
				m.log.Warn("re-queued jobs whose queue entry was lost", "count", n)
			}
			if n, err := m.deleteExpired(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("deleting expired jobs failed", "err", err)
			} else if n > 0 {
				m.log.Info("deleted finished jobs past retention", "count", n)
			}
		}
	}
}

// recoverOwn re-queues the jobs this node was running when it stopped:
// after a crash their leases are certainly dead, no need to wait.
func (m *Manager) recoverOwn(ctx context.Context) (int, error) {
	return m.takeOver(ctx, "SELECT id FROM jobs WHERE state = 'running' AND node_id = $1", m.opts.NodeID)
}

// reapStale takes over running jobs of any node whose lease went stale.
func (m *Manager) reapStale(ctx context.Context) (int, error) {
	stale := store.Micros(m.opts.Now().Add(-m.opts.Jobs.HeartbeatStale))
	return m.takeOver(ctx, "SELECT id FROM jobs WHERE state = 'running' AND heartbeat_at < $1", stale)
}

func (m *Manager) takeOver(ctx context.Context, query string, arg any) (int, error) {
	ids, err := m.db.Strings(ctx, query, arg)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		ok, err := m.requeueLost(ctx, id)
		if err != nil {
			return n, fmt.Errorf("job %s: %w", id, err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// requeueLost moves a running job whose worker is gone back to the queue
// under a fresh River job (or to its final state when it was being
// cancelled or has no attempts left). The old River job, if it ever runs
// again, finds itself superseded and does nothing.
func (m *Manager) requeueLost(ctx context.Context, id string) (bool, error) {
	now := m.opts.Now()
	nowUS := store.Micros(now)
	var (
		outcome apitypes.JobState
		msg     string
		prov    string
	)
	err := m.db.Tx(ctx, func(tx *sql.Tx) error {
		var (
			node                 sql.NullString
			heartbeat, cancelAt  sql.NullInt64
			attempt, maxAttempts int
			state                apitypes.JobState
		)
		err := tx.QueryRowContext(ctx, "SELECT state, node_id, heartbeat_at, cancel_requested_at, attempt, max_attempts, provider FROM jobs WHERE id = $1", id).
			Scan(&state, &node, &heartbeat, &cancelAt, &attempt, &maxAttempts, &prov)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		ownCrash := node.String == m.opts.NodeID && !m.isRunningHere(id)
		if state != apitypes.JobRunning || (!ownCrash && heartbeat.Int64 >= store.Micros(now.Add(-m.opts.Jobs.HeartbeatStale))) {
			return nil // it moved on meanwhile
		}
		lost := fmt.Sprintf("daemon %s stopped during attempt %d", node.String, attempt)
		cond := " WHERE id = $1 AND state = 'running' AND attempt = $2 AND node_id = $3"
		var res sql.Result
		switch {
		case cancelAt.Valid:
			outcome, msg = apitypes.JobCancelled, "cancelled on request ("+lost+")"
			res, err = tx.ExecContext(ctx, "UPDATE jobs SET state = 'cancelled', error = $4, error_kind = 'cancelled', finished_at = $5, updated_at = $5"+cond,
				id, attempt, node.String, msg, nowUS)
		case attempt >= maxAttempts:
			outcome, msg = apitypes.JobFailed, lost+"; no attempts left"
			res, err = tx.ExecContext(ctx, "UPDATE jobs SET state = 'failed', error = $4, error_kind = 'lost', finished_at = $5, updated_at = $5"+cond,
				id, attempt, node.String, msg, nowUS)
		default:
			outcome, msg = apitypes.JobQueued, lost+"; job re-queued"
			res, err = tx.ExecContext(ctx, `UPDATE jobs SET state = 'queued', node_id = NULL, error = $4, error_kind = 'lost',
				phase = '', rate_bps = 0, eta_seconds = NULL, updated_at = $5`+cond, id, attempt, node.String, msg, nowUS)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			outcome = ""
			return nil
		}
		if outcome == apitypes.JobQueued {
			return m.enqueueTx(ctx, tx, id)
		}
		return m.emit(ctx, tx, finalEvent(outcome), id)
	})
	if err != nil || outcome == "" {
		return false, err
	}
	level := slog.LevelWarn
	if outcome == apitypes.JobFailed {
		level = slog.LevelError
	}
	m.appendLog(ctx, id, level, msg, nil)
	if outcome.Terminal() {
		m.metrics.JobFinished(prov, outcome, 0)
	}
	return true, nil
}

func (m *Manager) isRunningHere(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.running[id]
	return ok
}

// sweepQueued gives a fresh River job to queued jobs whose River job is
// gone, finalized, or stuck running without a worker. This cannot happen in
// normal operation; it repairs the window between the engine recording an
// outcome and River recording the matching snooze, should the daemon die
// in it, and any manual tampering with River's tables.
func (m *Manager) sweepQueued(ctx context.Context) (int, error) {
	stale := store.Micros(m.opts.Now().Add(-m.opts.Jobs.HeartbeatStale))
	ids, err := m.db.Strings(ctx, `SELECT j.id FROM jobs j LEFT JOIN river_job r ON r.id = j.river_job_id
		WHERE j.state = 'queued' AND j.updated_at < $1
		AND (r.id IS NULL OR r.state IN ('completed', 'cancelled', 'discarded') OR (r.state = 'running' AND r.attempted_at IS NOT NULL))`, stale)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		err := m.db.Tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, "UPDATE jobs SET updated_at = $2 WHERE id = $1 AND state = 'queued' AND updated_at < $3",
				id, store.Micros(m.opts.Now()), stale)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k != 1 {
				return nil
			}
			n++
			return m.enqueueTx(ctx, tx, id)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// deleteExpired removes finished jobs older than jobs.retention; in a
// cluster, only the leader does.
func (m *Manager) deleteExpired(ctx context.Context) (int64, error) {
	if m.opts.Jobs.Retention <= 0 || (m.opts.IsLeader != nil && !m.opts.IsLeader()) {
		return 0, nil
	}
	cutoff := store.Micros(m.opts.Now().Add(-m.opts.Jobs.Retention))
	res, err := m.db.SQL.ExecContext(ctx, "DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1", cutoff)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
