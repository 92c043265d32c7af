package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

// BenchmarkClusterScaling runs the same demo exports on one, two and
// three `hypervisord --demo` processes sharing one PostgreSQL database and
// prints jobs/s and bytes/s for each, and their ratios to one node.
//
// What limits throughput is made each node's own, as in a real cluster:
// every node runs at most benchPerNode exports (jobs.max_concurrent) and
// every export is capped at benchJobRate bytes a second (long enough that
// a job's fixed costs, claim to result, do not dominate), standing for the
// bandwidth one export gets from its platform and the node's share of the
// network. Nothing shared limits it instead: the demo inventory has a VM
// per job (demo.extra_vms; one export of a VM runs at a time), and the
// demo provider has no cluster-wide cap (demo.max_concurrent: 0). Ideal
// scaling is then n× one node; what falls short is the cluster's overhead
// (claims, leases, heartbeats on one database) and, on one host, the
// nodes sharing its cores: report the load (uptime) with the numbers.
func BenchmarkClusterScaling(b *testing.B) {
	const (
		jobsPerRun   = 24
		benchPerNode = 4
		benchJobRate = 512 << 10
	)
	type result struct {
		nodes         int
		jobsPS, bytes float64
	}
	var results []result
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				cfg := fmt.Sprintf(`
database:
  url: %q
export:
  output_dir: %s
  format: disks
  disk_format: qcow2
jobs:
  max_concurrent: %d
demo:
  extra_vms: %d
  max_concurrent: 0
`, storetest.PostgresURL(b), filepath.Join(b.TempDir(), "exports"), benchPerNode, jobsPerRun)
				nodes := startCluster(b, n, cfg)
				start := time.Now()
				submitted := map[string]bool{}
				for i := range jobsPerRun {
					req := map[string]any{"provider": "demo", "vm": fmt.Sprintf("bench-%03d", i+1), "bandwidth_limit": benchJobRate}
					var j apitypes.Job
					if code := nodes[i%n].call("POST", "/api/v1/jobs", req, &j); code != 201 {
						b.Fatalf("submit: HTTP %d", code)
					}
					submitted[j.ID] = true
				}
				var bytes int64
				waitUntil(b, "every export done", 30*time.Minute, func() bool {
					done, total := 0, int64(0)
					for _, j := range nodes[0].allJobs() {
						if !submitted[j.ID] || !j.State.Terminal() {
							continue
						}
						if j.State != apitypes.JobSucceeded {
							b.Fatalf("job %s %s: %s", j.ID, j.State, j.Error)
						}
						done++
						for _, f := range j.Result.Files {
							total += f.Size
						}
					}
					bytes = total
					return done == jobsPerRun
				})
				elapsed := time.Since(start).Seconds()
				r := result{nodes: n, jobsPS: jobsPerRun / elapsed, bytes: float64(bytes) / elapsed}
				b.ReportMetric(r.jobsPS, "jobs/s")
				b.ReportMetric(r.bytes/(1<<20), "MiB/s")
				results = append(results, r)
				for _, d := range nodes {
					d.kill()
				}
			}
		})
	}
	if len(results) == 0 {
		return
	}
	base := results[0]
	for _, r := range results {
		fmt.Printf("cluster scaling: %d node(s): %.2f jobs/s, %.1f MiB/s written; %.2f× the jobs/s and %.2f× the bytes/s of one node\n",
			r.nodes, r.jobsPS, r.bytes/(1<<20), r.jobsPS/base.jobsPS, r.bytes/base.bytes)
	}
}
