package api_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

// History holds the jobs that finished (by state, with their durations by
// provider), the bytes the sampler saw moved and the queue it saw; a
// chart bucket's jobs are listed with finished_after/finished_before.
func TestStatsHistoryOverHTTP(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ts := newTestServer(t, db)
		ctx := context.Background()
		start := time.Now().UTC()
		if err := ts.sampler.Sample(ctx); err != nil { // zero bytes so far
			t.Fatal(err)
		}
		var ok, bad apitypes.Job
		ts.fake.FailNext("vm-003", errFake("disk on fire"))
		ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-001"}).json(t, &ok)
		ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-003", "max_attempts": 1}).json(t, &bad)
		okJob := waitJob(t, ts, ok.ID, apitypes.JobSucceeded)
		waitJob(t, ts, bad.ID, apitypes.JobFailed)
		if err := ts.sampler.Sample(ctx); err != nil {
			t.Fatal(err)
		}

		q := url.Values{"since": {start.Add(-time.Hour).Format(time.RFC3339)}, "until": {time.Now().Add(time.Minute).Format(time.RFC3339)}, "step": {"1m"}}
		r := ts.do(t, "GET", "/api/v1/stats/history?"+q.Encode(), viewerToken, nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var h apitypes.StatsHistory
		r.json(t, &h)
		if h.StepSeconds != 60 || len(h.Buckets) < 61 || len(h.Buckets) > 63 {
			t.Fatalf("step %d, %d buckets", h.StepSeconds, len(h.Buckets))
		}
		var bytes int64
		finished := map[apitypes.JobState]int{}
		durations := 0
		sampled := 0
		var okBucket apitypes.StatsBucket
		for _, b := range h.Buckets {
			bytes += b.BytesMoved
			for s, n := range b.Finished {
				finished[s] += n
			}
			for _, d := range b.Durations {
				if d.Provider != "lab" || len(d.Counts) != len(h.DurationBounds)+1 {
					t.Fatalf("durations %+v", d)
				}
				for _, n := range d.Counts {
					durations += n
				}
			}
			if b.Queued != nil {
				sampled++
			}
			if !okJob.FinishedAt.Before(b.Start) && okJob.FinishedAt.Before(b.Start.Add(time.Minute)) {
				okBucket = b
			}
		}
		if moved := ts.engine.BytesMoved(); bytes != moved || bytes < okJob.Result.Bytes {
			t.Errorf("history holds %d bytes moved; the engine counted %d, the job wrote %d", bytes, moved, okJob.Result.Bytes)
		}
		if finished[apitypes.JobSucceeded] != 1 || finished[apitypes.JobFailed] != 1 || finished[apitypes.JobCancelled] != 0 {
			t.Errorf("finished %v", finished)
		}
		if durations != 1 || sampled == 0 {
			t.Errorf("%d durations, %d sampled buckets", durations, sampled)
		}

		// Drill-down: the jobs behind the succeeded point of okBucket.
		q = url.Values{"state": {"succeeded"}, "provider": {"lab"},
			"finished_after": {okBucket.Start.Format(time.RFC3339)}, "finished_before": {okBucket.Start.Add(time.Minute).Format(time.RFC3339)}}
		var list apitypes.JobList
		ts.do(t, "GET", "/api/v1/jobs?"+q.Encode(), viewerToken, nil).json(t, &list)
		if len(list.Items) != 1 || list.Items[0].ID != ok.ID {
			t.Fatalf("drill-down listed %d jobs", len(list.Items))
		}
		q.Set("finished_before", okBucket.Start.Format(time.RFC3339))
		ts.do(t, "GET", "/api/v1/jobs?"+q.Encode(), viewerToken, nil).json(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("empty window listed %d jobs", len(list.Items))
		}

		// Bounded: too many buckets is refused, naming step.
		q = url.Values{"since": {start.Add(-7 * 24 * time.Hour).Format(time.RFC3339)}, "step": {"1s"}}
		p := expectProblem(t, ts.do(t, "GET", "/api/v1/stats/history?"+q.Encode(), viewerToken, nil), 422, apitypes.ProblemValidationFailed)
		if len(p.Errors) != 1 || p.Errors[0].Location != "query.step" {
			t.Fatalf("problem %+v", p)
		}
		p = expectProblem(t, ts.do(t, "GET", "/api/v1/stats/history?step=soon", viewerToken, nil), 422, apitypes.ProblemValidationFailed)
		if len(p.Errors) != 1 || p.Errors[0].Location != "query.step" {
			t.Fatalf("problem %+v", p)
		}
		// Defaults: the last day in at most 1000 buckets.
		ts.do(t, "GET", "/api/v1/stats/history", viewerToken, nil).json(t, &h)
		if len(h.Buckets) == 0 || len(h.Buckets) > 1000 || h.Until.Sub(h.Since) < 24*time.Hour {
			t.Fatalf("default window %s..%s in %d buckets", h.Since, h.Until, len(h.Buckets))
		}
		// Pruning keeps what is within the retention.
		if n, err := ts.sampler.Prune(ctx); err != nil || n != 0 {
			t.Fatalf("pruned %d fresh samples: %v", n, err)
		}
	})
}

type errFake string

func (e errFake) Error() string { return string(e) }
