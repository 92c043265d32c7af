package cluster_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/cluster"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

// duties records which nodes run the leader's duties, and fails the test
// if two ever run them at once.
type duties struct {
	t       *testing.T
	mu      sync.Mutex
	running map[string]bool
	runs    map[string]int
}

func (d *duties) lead(id string) func(ctx context.Context) {
	return func(ctx context.Context) {
		d.mu.Lock()
		for other, on := range d.running {
			if on {
				d.t.Errorf("%s leads while %s still runs the leader's duties", id, other)
			}
		}
		d.running[id] = true
		d.runs[id]++
		d.mu.Unlock()
		<-ctx.Done()
		d.mu.Lock()
		d.running[id] = false
		d.mu.Unlock()
	}
}

func (d *duties) count(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runs[id]
}

func newNode(t *testing.T, db *store.DB, id string, d *duties, deadAfter time.Duration) *cluster.Node {
	t.Helper()
	n, err := cluster.New(db, cluster.Options{
		NodeID: id, Advertise: "http://" + id + ":8080", Version: "test", Capacity: 4,
		Running:           func() int { return 2 },
		HeartbeatInterval: 100 * time.Millisecond, DeadAfter: deadAfter,
		Lead: d.lead(id), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func members(t *testing.T, n *cluster.Node) *apitypes.Cluster {
	t.Helper()
	c, err := n.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Two members: one leads; its clean stop hands leadership over at once
// (the lease is far from expiring) and shows it stopped; the other then
// leads alone. A restarted member rejoins as live.
func TestLeadershipMovesOnStop(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		d := &duties{t: t, running: map[string]bool{}, runs: map[string]int{}}
		a, b := newNode(t, db, "node-a", d, time.Hour), newNode(t, db, "node-b", d, time.Hour)
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if !a.IsLeader() || b.IsLeader() {
			t.Fatalf("first to start should lead: a %v, b %v", a.IsLeader(), b.IsLeader())
		}
		c := members(t, b)
		if c.Leader != "node-a" || len(c.Nodes) != 2 || !c.Nodes[0].Live || !c.Nodes[1].Live || c.Self != "node-b" {
			t.Fatalf("members: %+v", c)
		}
		if n := c.Nodes[0]; n.Advertise != "http://node-a:8080" || n.Running != 2 || n.Capacity != 4 || n.Version != "test" {
			t.Fatalf("member a: %+v", n)
		}
		term := c.LeaderTerm
		if err := a.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		// Within the hour-long lease: only the resignation explains it.
		waitFor(t, "b to lead", b.IsLeader)
		c = members(t, b)
		if c.Leader != "node-b" || c.LeaderTerm != term+1 {
			t.Fatalf("after a stopped: %+v", c)
		}
		for _, n := range c.Nodes {
			if n.ID == "node-a" && (n.Live || n.StoppedAt == nil || n.Leader) {
				t.Fatalf("stopped member: %+v", n)
			}
		}
		a = newNode(t, db, "node-a", d, time.Hour)
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if a.IsLeader() {
			t.Fatal("a restarted member took a lease another holds")
		}
		if c = members(t, a); liveOf(c) != 2 {
			t.Fatalf("after a restarted: %+v", c)
		}
		if err := b.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if d.count("node-a") != 1 || d.count("node-b") != 1 {
			t.Fatalf("duties ran %v", d.runs)
		}
	})
}

// A leader that died (its rows left as a killed process leaves them: the
// registration aging, the lease held until it expires) is shown dead at
// once, and another member takes the lease when it expires.
func TestDeadLeaderIsReplaced(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		d := &duties{t: t, running: map[string]bool{}, runs: map[string]int{}}
		a := newNode(t, db, "node-a", d, time.Second)
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// Stopped first so nothing renews the rows; then they are set as
		// a SIGKILL would have left them.
		if err := a.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		past := store.Micros(time.Now().Add(-time.Minute))
		if _, err := db.SQL.ExecContext(ctx, "UPDATE cluster_nodes SET stopped_at = NULL, last_seen = $1 WHERE id = 'node-a'", past); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL.ExecContext(ctx, "UPDATE cluster_leader SET node_id = 'node-a', expires_at = $1", store.Micros(time.Now().Add(500*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
		b := newNode(t, db, "node-b", d, time.Second)
		if err := b.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer b.Stop(ctx)
		c := members(t, b)
		for _, n := range c.Nodes {
			if n.ID == "node-a" && (n.Live || n.StoppedAt != nil) {
				t.Fatalf("crashed member: %+v", n)
			}
		}
		waitFor(t, "b to take the expired lease", b.IsLeader)
		if c = members(t, b); c.Leader != "node-b" || liveOf(c) != 1 {
			t.Fatalf("after the lease expired: %+v", c)
		}
		if err := b.Ready(); err != nil {
			t.Fatalf("ready: %v", err)
		}
	})
}

func liveOf(c *apitypes.Cluster) int {
	n := 0
	for _, m := range c.Nodes {
		if m.Live {
			n++
		}
	}
	return n
}
