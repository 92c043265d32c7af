package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store"
)

// Options configure a Node.
type Options struct {
	// NodeID is this daemon's id (jobs.LoadNodeID).
	NodeID string
	// Advertise is the API base URL the node publishes.
	Advertise string
	Version   string
	// Capacity is how many exports the node runs at once.
	Capacity int
	// Running reports how many exports the node runs now.
	Running func() int
	// HeartbeatInterval is how often the registration and, when leading,
	// the lease are renewed (default 2s).
	HeartbeatInterval time.Duration
	// DeadAfter is when a silent member counts as dead, and the leader
	// lease's length (default 15s; at least three heartbeats).
	DeadAfter time.Duration
	// Lead runs the leader's duties while this node leads; its context is
	// cancelled when leadership ends, and it must return then.
	Lead   func(ctx context.Context)
	Logger *slog.Logger
	// Now replaces the clock in tests.
	Now func() time.Time
}

// forgetAfter is how long a dead or stopped member stays listed.
const forgetAfter = 24 * time.Hour

// Node is this daemon's membership: registration, heartbeat, leadership.
type Node struct {
	db   *store.DB
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	lastBeat  time.Time // last successful registration renewal
	beatErr   error
	term      int64     // lease term held; 0 when not leading
	renewedAt time.Time // when the held lease was last renewed

	cancelLead context.CancelFunc
	leadDone   chan struct{}

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New creates the membership of one daemon; Start registers it.
func New(db *store.DB, opts Options) (*Node, error) {
	if opts.NodeID == "" {
		return nil, errors.New("cluster: NodeID is required")
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 2 * time.Second
	}
	if opts.DeadAfter <= 0 {
		opts.DeadAfter = 15 * time.Second
	}
	if opts.DeadAfter < 3*opts.HeartbeatInterval {
		return nil, fmt.Errorf("cluster: dead_after (%s) must be at least three heartbeat intervals (%s)", opts.DeadAfter, 3*opts.HeartbeatInterval)
	}
	if opts.Running == nil {
		opts.Running = func() int { return 0 }
	}
	if opts.Lead == nil {
		opts.Lead = func(ctx context.Context) { <-ctx.Done() }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Node{db: db, opts: opts, log: opts.Logger}, nil
}

// Start registers the node (a restarted node keeps its row) and begins
// heartbeating and contending for leadership until Stop.
func (n *Node) Start(ctx context.Context) error {
	now := n.opts.Now()
	if _, err := n.db.SQL.ExecContext(ctx, `INSERT INTO cluster_nodes (id, advertise, version, started_at, last_seen, stopped_at, running, capacity)
		VALUES ($1, $2, $3, $4, $4, NULL, $5, $6)
		ON CONFLICT (id) DO UPDATE SET advertise = excluded.advertise, version = excluded.version, started_at = excluded.started_at,
			last_seen = excluded.last_seen, stopped_at = NULL, running = excluded.running, capacity = excluded.capacity`,
		n.opts.NodeID, n.opts.Advertise, n.opts.Version, store.Micros(now), n.opts.Running(), n.opts.Capacity); err != nil {
		return fmt.Errorf("cluster: register: %w", err)
	}
	n.mu.Lock()
	n.lastBeat = now
	n.mu.Unlock()
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stop = cancel
	n.contend(bg)
	n.wg.Go(func() { n.loop(bg) })
	return nil
}

// Stop ends the leader's duties (waiting for them), gives the lease up so
// another node takes over within a heartbeat, and marks the node stopped.
func (n *Node) Stop(ctx context.Context) error {
	if n.stop == nil {
		return nil
	}
	n.stop()
	n.wg.Wait()
	term := n.demote()
	var errs []error
	if term != 0 {
		if _, err := n.db.SQL.ExecContext(ctx, "UPDATE cluster_leader SET node_id = NULL, expires_at = 0 WHERE id = 1 AND node_id = $1 AND term = $2",
			n.opts.NodeID, term); err != nil {
			errs = append(errs, fmt.Errorf("cluster: resign leadership: %w", err))
		} else {
			n.log.Info("resigned leadership", "term", term)
		}
	}
	now := store.Micros(n.opts.Now())
	if _, err := n.db.SQL.ExecContext(ctx, "UPDATE cluster_nodes SET stopped_at = $1, last_seen = $1, running = 0 WHERE id = $2", now, n.opts.NodeID); err != nil {
		errs = append(errs, fmt.Errorf("cluster: deregister: %w", err))
	}
	return errors.Join(errs...)
}

func (n *Node) loop(ctx context.Context) {
	t := time.NewTicker(n.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.beat(ctx)
			n.contend(ctx)
		}
	}
}

// beat renews the registration (re-creating it if it was forgotten).
func (n *Node) beat(ctx context.Context) {
	now := n.opts.Now()
	res, err := n.db.SQL.ExecContext(ctx, "UPDATE cluster_nodes SET last_seen = $1, stopped_at = NULL, running = $2 WHERE id = $3",
		store.Micros(now), n.opts.Running(), n.opts.NodeID)
	if err == nil {
		if k, _ := res.RowsAffected(); k == 0 {
			_, err = n.db.SQL.ExecContext(ctx, `INSERT INTO cluster_nodes (id, advertise, version, started_at, last_seen, running, capacity)
				VALUES ($1, $2, $3, $4, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
				n.opts.NodeID, n.opts.Advertise, n.opts.Version, store.Micros(now), n.opts.Running(), n.opts.Capacity)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil && n.beatErr == nil {
			n.log.Warn("cluster heartbeat failed", "err", err)
		}
		n.beatErr = err
		return
	}
	if n.beatErr != nil {
		n.log.Info("cluster heartbeat recovered")
	}
	n.beatErr = nil
	n.lastBeat = now
}

// contend renews the lease this node holds, or tries to take a vacant or
// expired one.
func (n *Node) contend(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	now := n.opts.Now()
	expires := store.Micros(now.Add(n.opts.DeadAfter))
	n.mu.Lock()
	term, renewedAt := n.term, n.renewedAt
	n.mu.Unlock()

	if term != 0 {
		res, err := n.db.SQL.ExecContext(ctx, "UPDATE cluster_leader SET expires_at = $1 WHERE id = 1 AND node_id = $2 AND term = $3",
			expires, n.opts.NodeID, term)
		if err == nil {
			if k, _ := res.RowsAffected(); k == 1 {
				n.mu.Lock()
				n.renewedAt = now
				n.mu.Unlock()
				return
			}
			n.log.Warn("lost leadership: another node holds the lease", "term", term)
			n.demote()
			return
		}
		// Keep leading while the lease certainly still holds; give the
		// duties up a heartbeat before it could lapse, so that no other
		// node can lead while these still run.
		if now.After(renewedAt.Add(n.opts.DeadAfter - n.opts.HeartbeatInterval)) {
			n.log.Warn("stepping down: the leader lease could not be renewed", "term", term, "err", err)
			n.demote()
		} else if ctx.Err() == nil {
			n.log.Warn("renewing the leader lease failed; retrying", "term", term, "err", err)
		}
		return
	}

	// A lease this node held before a crash is its own to take back at once.
	var newTerm int64
	err := n.db.SQL.QueryRowContext(ctx, `UPDATE cluster_leader SET node_id = $1, term = term + 1, acquired_at = $2, expires_at = $3
		WHERE id = 1 AND (node_id IS NULL OR node_id = $1 OR expires_at < $2) RETURNING term`,
		n.opts.NodeID, store.Micros(now), expires).Scan(&newTerm)
	if errors.Is(err, sql.ErrNoRows) {
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			n.log.Debug("contending for leadership failed", "err", err)
		}
		return
	}
	n.log.Info("elected leader", "term", newTerm)
	n.promote(ctx, newTerm, now)
}

func (n *Node) promote(ctx context.Context, term int64, now time.Time) {
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	n.mu.Lock()
	n.term, n.renewedAt, n.cancelLead, n.leadDone = term, now, cancel, done
	n.mu.Unlock()
	go func() {
		defer close(done)
		n.prune(lctx)
		n.opts.Lead(lctx)
	}()
}

// demote ends the leader's duties and waits for them; it returns the term
// that was held (0: none).
func (n *Node) demote() int64 {
	n.mu.Lock()
	term, cancel, done := n.term, n.cancelLead, n.leadDone
	n.term, n.cancelLead, n.leadDone = 0, nil, nil
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return term
}

// prune forgets members dead or stopped for a day.
func (n *Node) prune(ctx context.Context) {
	cutoff := store.Micros(n.opts.Now().Add(-forgetAfter))
	if _, err := n.db.SQL.ExecContext(ctx, "DELETE FROM cluster_nodes WHERE last_seen < $1 AND id <> $2", cutoff, n.opts.NodeID); err != nil && ctx.Err() == nil {
		n.log.Warn("forgetting long-dead cluster members failed", "err", err)
	}
}

// IsLeader reports whether this node leads now.
func (n *Node) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.term != 0
}

// Ready reports whether the node's registration is current: a node whose
// heartbeats do not reach the database is shown dead by the others, so it
// should not take traffic either.
func (n *Node) Ready() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if age := n.opts.Now().Sub(n.lastBeat); age > n.opts.DeadAfter {
		if n.beatErr != nil {
			return fmt.Errorf("cluster heartbeat failing for %s: %v", age.Round(time.Second), n.beatErr)
		}
		return fmt.Errorf("no cluster heartbeat for %s", age.Round(time.Second))
	}
	return nil
}

// Members lists the registered nodes with their liveness and the leader.
func (n *Node) Members(ctx context.Context) (*apitypes.Cluster, error) {
	now := n.opts.Now()
	out := &apitypes.Cluster{Self: n.opts.NodeID, DeadAfter: n.opts.DeadAfter.Seconds(), Nodes: []apitypes.ClusterNode{}}
	var (
		leader  sql.NullString
		expires int64
	)
	if err := n.db.SQL.QueryRowContext(ctx, "SELECT node_id, term, expires_at FROM cluster_leader WHERE id = 1").Scan(&leader, &out.LeaderTerm, &expires); err != nil {
		return nil, fmt.Errorf("cluster: leader: %w", err)
	}
	rows, err := n.db.SQL.QueryContext(ctx, "SELECT id, advertise, version, started_at, last_seen, stopped_at, running, capacity FROM cluster_nodes")
	if err != nil {
		return nil, fmt.Errorf("cluster: members: %w", err)
	}
	defer rows.Close()
	liveSince := store.Micros(now.Add(-n.opts.DeadAfter))
	for rows.Next() {
		var (
			m                 apitypes.ClusterNode
			started, seen     int64
			stopped           sql.NullInt64
			running, capacity int64
		)
		if err := rows.Scan(&m.ID, &m.Advertise, &m.Version, &started, &seen, &stopped, &running, &capacity); err != nil {
			return nil, fmt.Errorf("cluster: members: %w", err)
		}
		m.StartedAt, m.LastSeen, m.StoppedAt = store.Time(started), store.Time(seen), store.NullTime(stopped)
		m.Running, m.Capacity = int(running), int(capacity)
		m.Live = !stopped.Valid && seen >= liveSince
		// A lease outlives its holder by up to dead_after: a dead node is
		// never shown leading.
		m.Leader = m.Live && leader.Valid && leader.String == m.ID && expires >= store.Micros(now)
		if m.Leader {
			out.Leader = m.ID
		}
		out.Nodes = append(out.Nodes, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cluster: members: %w", err)
	}
	sort.Slice(out.Nodes, func(i, j int) bool {
		a, b := out.Nodes[i], out.Nodes[j]
		if a.Live != b.Live {
			return a.Live
		}
		return a.ID < b.ID
	})
	return out, nil
}
