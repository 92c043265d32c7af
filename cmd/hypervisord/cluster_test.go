package main

import (
	"encoding/base64"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

// clusterJobs is how many demo exports the cluster tests share out.
const clusterJobs = 60

// clusterCapped is how many exports run capped at clusterCapRate, one
// per small VM the cluster config adds (bench-001…): the first ones
// submitted, so that every node starts with capped exports that run for
// seconds whatever the machine (on a quiet one the demo's disks would
// otherwise finish between two progress records, leaving nothing to
// kill). The others run at full speed, keeping the test short.
const (
	clusterCapped  = 12
	clusterCapRate = 256 << 10
)

// clusterVMs are the VMs the cluster tests export, round-robin: the small
// VMs first, then the demo vCenter's five, each with the request options
// it needs (web-01 runs and legacy-centos-01 is suspended: snapshot
// exports). More VMs let more exports run at once (one export of a VM
// runs at a time).
var clusterVMs = func() []map[string]any {
	var vms []map[string]any
	for i := 1; i <= clusterCapped; i++ {
		vms = append(vms, map[string]any{"vm": fmt.Sprintf("bench-%03d", i)})
	}
	return append(vms,
		map[string]any{"vm": "dev-ubuntu-01"},
		map[string]any{"vm": "legacy-centos-01", "snapshot": true},
		map[string]any{"vm": "app-win-01"},
		map[string]any{"vm": "db-01"},
		map[string]any{"vm": "web-01", "snapshot": true},
	)
}()

// clusterConfig is the configuration every member shares: one PostgreSQL
// database, one export directory (so a job's output directory, and what
// an interrupted attempt left there, is reachable by whichever node
// rescues it), short leases so rescue and hand-over fit a test, a
// webhook to the receiver, and a demo inventory with clusterCapped more
// VMs and no cluster-wide cap on its exports (each node's max_concurrent
// is the limit), so that up to twelve exports run at once.
func clusterConfig(pgURL, exportDir, hookURL, secret string) string {
	return fmt.Sprintf(`
database:
  url: %q
export:
  output_dir: %s
  format: disks
  disk_format: qcow2
jobs:
  max_concurrent: 4
  heartbeat_stale: 5s
  retry_backoff: 1s
cluster:
  heartbeat_interval: 500ms
  dead_after: 5s
demo:
  extra_vms: %d
  max_concurrent: 0
webhooks:
  - url: %s/hooks
    events: ["job.completed", "job.failed", "schedule.triggered"]
    secret: %s
webhook_delivery:
  allow_private_targets: true
`, pgURL, exportDir, clusterCapped, hookURL, secret)
}

// startCluster starts n `hypervisord --demo` processes on one fresh
// PostgreSQL schema; each simulates the same demo inventory.
func startCluster(t testing.TB, n int, cfg string) []*daemon {
	t.Helper()
	nodes := make([]*daemon, n)
	for i := range nodes {
		nodes[i] = newDaemon(t, cfg, "HYPERVISORD_TEST_REAL_PROVIDERS=1")
		nodes[i].start("--demo", "--log-level", "warn")
	}
	return nodes
}

func (d *daemon) cluster() apitypes.Cluster {
	d.t.Helper()
	var c apitypes.Cluster
	if code := d.call("GET", "/api/v1/cluster", nil, &c); code != 200 {
		d.t.Fatalf("GET /api/v1/cluster: HTTP %d", code)
	}
	return c
}

// nodeID is the id the daemon registered under.
func (d *daemon) nodeID() string {
	d.t.Helper()
	return d.cluster().Self
}

// TestClusterRescuesAKilledMember: three daemons share 60 demo exports
// submitted round-robin; one is SIGKILLed while it runs exports (a
// follower, then, in a second run, the leader). Every job ends succeeded
// once, through any surviving node; every output verifies against its
// manifest; the killed node is shown dead and the two others live with
// exactly one leader; a schedule keeps firing once per due time across
// the change of leader; each webhook event arrives once.
func TestClusterRescuesAKilledMember(t *testing.T) {
	for _, victim := range []string{"follower", "leader"} {
		t.Run(victim, func(t *testing.T) { testClusterKill(t, victim == "leader") })
	}
}

func testClusterKill(t *testing.T, killLeader bool) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("cluster-test-secret-0123456789ab"))
	rcv := newHookReceiver(t, secret, 0)
	exportDir := filepath.Join(t.TempDir(), "exports")
	nodes := startCluster(t, 3, clusterConfig(storetest.PostgresURL(t), exportDir, rcv.URL, secret))

	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.nodeID()
	}
	var c apitypes.Cluster
	waitUntil(t, "three live members and a leader", time.Minute, func() bool {
		c = nodes[0].cluster()
		return c.Leader != "" && liveCount(c) == 3
	})

	// A schedule that fires every 2s; its jobs fail at once (no such VM),
	// so they add no load: what is checked is the firing.
	if code := nodes[1].call("POST", "/api/v1/schedules", map[string]any{"name": "tick", "schedule": "@every 2s",
		"job": map[string]any{"provider": "demo", "vm": "no-such-vm", "max_attempts": 1}}, nil); code != 201 {
		t.Fatalf("create schedule: HTTP %d", code)
	}

	submitted := map[string]bool{}
	for i := range clusterJobs {
		req := map[string]any{"provider": "demo", "max_attempts": 5}
		if i < clusterCapped {
			req["bandwidth_limit"] = clusterCapRate
		}
		for k, v := range clusterVMs[i%len(clusterVMs)] {
			req[k] = v
		}
		var j apitypes.Job
		if code := nodes[i%len(nodes)].call("POST", "/api/v1/jobs", req, &j); code != 201 {
			t.Fatalf("submit %d: HTTP %d", i, code)
		}
		submitted[j.ID] = true
	}

	// The victim: the leader, or a follower; killed once it runs exports
	// that have moved bytes.
	vi := -1
	for i, id := range ids {
		if (id == c.Leader) == killLeader {
			vi = i
			break
		}
	}
	victim, victimID := nodes[vi], ids[vi]
	survivor := nodes[(vi+1)%len(nodes)]
	var interrupted []string
	waitUntil(t, "the victim running exports", 2*time.Minute, func() bool {
		interrupted = interrupted[:0]
		for _, j := range survivor.allJobs() {
			if j.State == apitypes.JobRunning && j.Node == victimID && j.Progress.BytesDone > 0 && submitted[j.ID] {
				interrupted = append(interrupted, j.ID)
			}
		}
		return len(interrupted) > 0
	})
	victim.kill()
	killedAt := time.Now()
	t.Logf("killed %s (%d exports running on it)", victimID, len(interrupted))

	// Shown dead within a minute; the other two live, one of them leading.
	waitUntil(t, "the killed member shown dead and a live leader", time.Minute, func() bool {
		c = survivor.cluster()
		return c.Leader != "" && c.Leader != victimID && liveCount(c) == 2 && !memberLive(c, victimID)
	})
	leaders := 0
	for _, m := range c.Nodes {
		if m.Leader {
			leaders++
		}
	}
	if leaders != 1 || len(c.Nodes) != 3 {
		t.Fatalf("cluster after the kill: %+v", c)
	}

	// Every job succeeds, the interrupted ones on another node.
	jobsByID := map[string]*apitypes.Job{}
	waitUntil(t, "every export succeeded", 5*time.Minute, func() bool {
		done := 0
		for _, j := range survivor.allJobs() {
			if !submitted[j.ID] {
				continue
			}
			jobsByID[j.ID] = j
			if j.State == apitypes.JobFailed || j.State == apitypes.JobCancelled {
				t.Fatalf("job %s %s: %s", j.ID, j.State, j.Error)
			}
			if j.State == apitypes.JobSucceeded {
				done++
			}
		}
		return done == clusterJobs
	})
	for _, id := range interrupted {
		if j := jobsByID[id]; j.Node == victimID || j.Attempt < 2 {
			t.Errorf("interrupted job %s: node %s, attempt %d; want another node's later attempt", id, j.Node, j.Attempt)
		}
	}

	// Every output verifies against its manifest, with the real tool.
	for _, j := range jobsByID {
		cmd := exec.Command("sha256sum", "--strict", "-c", j.Result.Manifest)
		cmd.Dir = j.Result.OutputDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("job %s: sha256sum -c: %v\n%s", j.ID, err, out)
		}
	}

	// The schedule keeps firing after the kill; each due time once.
	type execution struct {
		Kind       string     `json:"kind"`
		ExecutedAt time.Time  `json:"executed_at"`
		DueAt      *time.Time `json:"due_at"`
	}
	var history []execution
	waitUntil(t, "three scheduled runs after the kill", time.Minute, func() bool {
		var h struct{ Items []execution }
		survivor.call("GET", "/api/v1/schedules/tick/history?limit=1000", nil, &h)
		history = h.Items
		after := 0
		for _, x := range history {
			if x.Kind == "scheduled" && x.ExecutedAt.After(killedAt) {
				after++
			}
		}
		return after >= 3
	})
	dues := map[time.Time]int{}
	for _, x := range history {
		if x.DueAt != nil {
			dues[*x.DueAt]++
		}
	}

	// Webhooks: one job.completed per job, one schedule.triggered per due
	// time, and no event twice. Deliveries of events already in the
	// history may still be on their way.
	waitUntil(t, "the webhook events of every job and run", 2*time.Minute, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		completed, triggered := 0, 0
		for _, e := range rcv.events {
			switch e["type"] {
			case apitypes.EventJobCompleted:
				completed++
			case apitypes.EventScheduleTriggered:
				triggered++
			}
		}
		return completed >= clusterJobs && triggered >= len(dues)
	})
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Fatalf("deliveries failed verification: %v", rcv.bad)
	}
	for id, n := range rcv.ids {
		if n != 1 {
			t.Errorf("webhook event %s delivered %d times", id, n)
		}
	}
	completedPerJob := map[string]int{}
	triggeredPerDue := map[string]int{}
	for _, e := range rcv.events {
		data, _ := e["data"].(map[string]any)
		switch e["type"] {
		case apitypes.EventJobCompleted:
			if id, _ := data["job_id"].(string); submitted[id] {
				completedPerJob[id]++
			}
		case apitypes.EventScheduleTriggered:
			due, _ := data["due_at"].(string)
			triggeredPerDue[due]++
		}
	}
	if len(completedPerJob) != clusterJobs {
		t.Errorf("job.completed for %d jobs, want %d", len(completedPerJob), clusterJobs)
	}
	for id, n := range completedPerJob {
		if n != 1 {
			t.Errorf("job %s completed %d times", id, n)
		}
	}
	for due, n := range triggeredPerDue {
		if n != 1 {
			t.Errorf("schedule due at %s triggered %d times", due, n)
		}
	}
	for due, n := range dues {
		if n != 1 {
			t.Errorf("schedule due at %s ran %d times", due, n)
		}
	}
}

func liveCount(c apitypes.Cluster) int {
	n := 0
	for _, m := range c.Nodes {
		if m.Live {
			n++
		}
	}
	return n
}

func memberLive(c apitypes.Cluster, id string) bool {
	for _, m := range c.Nodes {
		if m.ID == id {
			return m.Live
		}
	}
	return false
}
