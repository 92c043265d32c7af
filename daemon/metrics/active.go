package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/providers"
)

// ActiveJob is a queued or running job: only what bounded labels and sums
// are made of (no job id, no VM name).
type ActiveJob struct {
	Provider, Format      string
	State                 apitypes.JobState
	BytesDone, BytesTotal int64
	CreatedAt             time.Time
}

// ActiveJobs lists the queued and running jobs of the store.
type ActiveJobs func(ctx context.Context) ([]ActiveJob, error)

var (
	activeDesc = prometheus.NewDesc("hypersdk_jobs_active",
		"Queued and running jobs by provider, format and state (all daemons).", []string{"provider", "format", "state"}, nil)
	progressDesc = prometheus.NewDesc("hypersdk_export_progress_bytes",
		"Bytes the running exports have written so far, by provider (all daemons).", []string{"provider"}, nil)
	sizeDesc = prometheus.NewDesc("hypersdk_export_size_bytes",
		"Bytes the running exports write in all, where known, by provider (all daemons).", []string{"provider"}, nil)
	oldestQueuedDesc = prometheus.NewDesc("hypersdk_jobs_oldest_queued_age_seconds",
		"Age of the oldest queued job, retries included (0 when none is queued; all daemons).", nil, nil)
)

// RegisterActiveJobs adds the gauges read from the queued and running
// jobs at scrape time: hypersdk_jobs_active{provider,format,state},
// hypersdk_export_progress_bytes{provider} and
// hypersdk_export_size_bytes{provider} (the progress of running exports,
// summed per provider so that no job becomes a label) and
// hypersdk_jobs_oldest_queued_age_seconds. Every provider instance of
// src has its series, 0 when idle, so that dashboards and alerts see an
// idle provider rather than none.
func (m *Metrics) RegisterActiveJobs(list ActiveJobs, src PoolSource, now func() time.Time) {
	m.storeQuery("active_jobs")
	m.Registry.MustRegister(&activeCollector{list: list, src: src, now: now, storeError: m.storeError})
}

type activeCollector struct {
	list       ActiveJobs
	src        PoolSource
	now        func() time.Time
	storeError func(query string, err error)
}

func (c *activeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeDesc
	ch <- progressDesc
	ch <- sizeDesc
	ch <- oldestQueuedDesc
}

func (c *activeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
	defer cancel()
	jobs, err := c.list(ctx)
	if err != nil {
		c.storeError("active_jobs", err)
		for _, d := range []*prometheus.Desc{activeDesc, progressDesc, sizeDesc, oldestQueuedDesc} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	type key struct{ provider, format, state string }
	counts := map[key]int{}
	done, size := map[string]int64{}, map[string]int64{}
	for _, in := range c.src() {
		done[in.Name()], size[in.Name()] = 0, 0
		for _, f := range providers.Formats() {
			for _, s := range []apitypes.JobState{apitypes.JobQueued, apitypes.JobRunning} {
				counts[key{in.Name(), string(f), string(s)}] = 0
			}
		}
	}
	var oldest time.Time
	for _, j := range jobs {
		counts[key{j.Provider, j.Format, string(j.State)}]++
		switch j.State {
		case apitypes.JobRunning:
			done[j.Provider] += j.BytesDone
			size[j.Provider] += j.BytesTotal
		case apitypes.JobQueued:
			if oldest.IsZero() || j.CreatedAt.Before(oldest) {
				oldest = j.CreatedAt
			}
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(n), k.provider, k.format, k.state)
	}
	for p, n := range done {
		ch <- prometheus.MustNewConstMetric(progressDesc, prometheus.GaugeValue, float64(n), p)
		ch <- prometheus.MustNewConstMetric(sizeDesc, prometheus.GaugeValue, float64(size[p]), p)
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(c.now().Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(oldestQueuedDesc, prometheus.GaugeValue, age)
}
