// Package metrics defines the daemon's Prometheus metrics on a registry of
// its own (no global registry), records what the job engine, the
// providers, the scheduler, webhook delivery and the HTTP server report,
// and serves /metrics. Every metric defined here is recorded by a caller
// in the running daemon. Counters are incremented where the event
// happens (so they count this daemon's work); gauges of state shared by
// every daemon of one database (queued and running jobs, export progress,
// webhook backlog, schedules) are read from the store at scrape time, so
// they are right across restarts and cluster-wide.
//
// Labels come from closed sets only: provider instance names and types
// from the configuration, job states, formats, operations, outcomes,
// route templates, schedule names and webhook endpoint ids. Never a job
// id or a VM name: cardinality stays bounded however many jobs run.
//
// monitoring/ holds the Grafana dashboards and Prometheus alerts built on
// these metrics; its tests prove every name they use is exported here.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hypersdk/hypersdk/apitypes"
)

// Metrics holds the daemon's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	jobsTotal     *prometheus.CounterVec
	jobsSubmitted *prometheus.CounterVec
	jobDuration   *prometheus.HistogramVec
	exportBytes   *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	jobRetries    *prometheus.CounterVec
	resumedBytes  *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	providerCalls *prometheus.HistogramVec
	providerErrs  *prometheus.CounterVec
	sweeps        *prometheus.CounterVec
	orphans       *prometheus.CounterVec
	webhooks      *webhookMetrics
	schedules     *scheduleMetrics
	log           *slog.Logger
}

// JobCounter reports how many jobs are in each state.
type JobCounter func(ctx context.Context) (map[apitypes.JobState]int, error)

// New creates the metrics and registers them, the Go and process
// collectors and build info. RegisterJobs adds the job-state gauges once
// the job engine (which records into these metrics) exists.
func New(version, revision string, log *slog.Logger) *Metrics {
	m := &Metrics{
		log:      log,
		Registry: prometheus.NewRegistry(),
		jobsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_jobs_total", Help: "Jobs that reached a final state, by provider and state.",
		}, []string{"provider", "state"}),
		jobsSubmitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_jobs_submitted_total", Help: "Jobs accepted, by provider.",
		}, []string{"provider"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hypersdk_job_duration_seconds", Help: "Duration of the final attempt of finished jobs.",
			// Exports take seconds (demo) to many hours (multi-TiB VMs).
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400},
		}, []string{"provider", "state"}),
		exportBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_export_bytes_total", Help: "Bytes exported (downloaded and written), by provider.",
		}, []string{"provider"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_http_requests_total", Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hypersdk_http_request_duration_seconds", Help: "HTTP request latency by route template and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		jobRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_job_retries_total", Help: "Failed export attempts after which the job was queued for another, by provider.",
		}, []string{"provider"}),
		resumedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_export_resumed_bytes_total", Help: "Source bytes successful exports did not fetch again because an earlier attempt had stored them, by provider.",
		}, []string{"provider"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_store_errors_total", Help: "Store reads made for a scrape that failed, by what they read.",
		}, []string{"query"}),
		providerCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hypersdk_provider_request_duration_seconds", Help: "Latency of calls to the platform's API, by provider and operation.",
			// Connects and exports' preparation (snapshots, grants) take seconds to minutes.
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 180, 600},
		}, []string{"provider", "operation"}),
		providerErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_provider_request_errors_total", Help: "Calls to the platform's API that failed, by provider and operation.",
		}, []string{"provider", "operation"}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_orphan_sweeps_total", Help: "Sweeps for platform objects (snapshots, grants, export tasks, staging objects) that ended jobs left, by provider (output_targets: uploads left in object storage) and outcome (ok, error).",
		}, []string{"provider", "outcome"}),
		orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_orphans_deleted_total", Help: "Platform objects that jobs left after they ended, found and deleted by the sweep, by provider (output_targets: objects and open uploads left in object storage).",
		}, []string{"provider"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hypersdk_build_info", Help: "Build information; the value is always 1.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(version, revision, runtime.Version()).Set(1)
	m.Registry.MustRegister(
		m.jobsTotal, m.jobsSubmitted, m.jobDuration, m.exportBytes, m.httpRequests, m.httpDuration, buildInfo,
		m.jobRetries, m.resumedBytes, m.storeErrors, m.providerCalls, m.providerErrs, m.sweeps, m.orphans,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// RegisterJobs adds hypersdk_jobs_running and hypersdk_jobs_queued, read
// through counts (the job engine's Counts) at scrape time.
func (m *Metrics) RegisterJobs(counts JobCounter) {
	m.storeQuery("job_counts")
	m.Registry.MustRegister(&jobStateCollector{counts: counts, storeError: m.storeError})
}

// JobSubmitted implements jobs.Metrics.
func (m *Metrics) JobSubmitted(provider string) { m.jobsSubmitted.WithLabelValues(provider).Inc() }

// JobFinished implements jobs.Metrics.
func (m *Metrics) JobFinished(provider string, state apitypes.JobState, d time.Duration) {
	m.jobsTotal.WithLabelValues(provider, string(state)).Inc()
	if d > 0 {
		m.jobDuration.WithLabelValues(provider, string(state)).Observe(d.Seconds())
	}
}

// JobRetried implements jobs.Metrics.
func (m *Metrics) JobRetried(provider string) { m.jobRetries.WithLabelValues(provider).Inc() }

// ResumedBytes implements jobs.Metrics.
func (m *Metrics) ResumedBytes(provider string, n int64) {
	m.resumedBytes.WithLabelValues(provider).Add(float64(n))
}

// ExportBytes implements jobs.Metrics.
func (m *Metrics) ExportBytes(provider string, n int64) {
	m.exportBytes.WithLabelValues(provider).Add(float64(n))
}

// ObserveHTTP records one request; route must be a template
// ("/api/v1/jobs/{id}"), never a raw path, to keep cardinality bounded.
func (m *Metrics) ObserveHTTP(route, method string, code int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// scrapeQueryTimeout bounds each store read made for a scrape.
const scrapeQueryTimeout = 5 * time.Second

// storeQuery creates the store-error series of a query at 0, so that its
// first failure is an increase Prometheus sees.
func (m *Metrics) storeQuery(query string) { m.storeErrors.WithLabelValues(query) }

// storeError counts and logs a store read for a scrape that failed; the
// scrape then reports the metric as invalid rather than a made-up value.
func (m *Metrics) storeError(query string, err error) {
	m.storeErrors.WithLabelValues(query).Inc()
	m.log.Warn("metrics: reading the store failed", "query", query, "err", err)
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

var (
	runningDesc = prometheus.NewDesc("hypersdk_jobs_running", "Jobs running now (all daemons sharing the database).", nil, nil)
	queuedDesc  = prometheus.NewDesc("hypersdk_jobs_queued", "Jobs waiting to run, including retries waiting for their backoff.", nil, nil)
)

// jobStateCollector reads the job-state gauges from the store at scrape time.
type jobStateCollector struct {
	counts     JobCounter
	storeError func(query string, err error)
}

func (c *jobStateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningDesc
	ch <- queuedDesc
}

func (c *jobStateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
	defer cancel()
	counts, err := c.counts(ctx)
	if err != nil {
		c.storeError("job_counts", err)
		ch <- prometheus.NewInvalidMetric(runningDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(counts[apitypes.JobRunning]))
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(counts[apitypes.JobQueued]))
}
