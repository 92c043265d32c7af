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
// The demo vCenter has five VMs and a VM is exported by one job at a time,
// so at most five exports run at once whatever the node count; on a small
// machine the nodes share its cores, so the ratio measures the cluster's
// overhead as much as its gain. Run it on a quiet machine (make bench).
func BenchmarkClusterScaling(b *testing.B) {
	const jobsPerRun = 30
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
  max_concurrent: 4
`, storetest.PostgresURL(b), filepath.Join(b.TempDir(), "exports"))
				nodes := startCluster(b, n, cfg)
				start := time.Now()
				submitted := map[string]bool{}
				for i := range jobsPerRun {
					req := map[string]any{"provider": "demo"}
					for k, v := range clusterVMs[i%len(clusterVMs)] {
						req[k] = v
					}
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
