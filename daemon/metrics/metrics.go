// Package metrics defines the daemon's Prometheus metrics on a registry of
// its own (no global registry), records what the job engine and the HTTP
// server report, and serves /metrics. Every metric defined here is
// recorded by a caller in the running daemon; the gauges of queued and
// running jobs are read from the store at scrape time, so they are right
// across restarts and for every daemon sharing one database.
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
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hypersdk_build_info", Help: "Build information; the value is always 1.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(version, revision, runtime.Version()).Set(1)
	m.Registry.MustRegister(
		m.jobsTotal, m.jobsSubmitted, m.jobDuration, m.exportBytes, m.httpRequests, m.httpDuration, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// RegisterJobs adds hypersdk_jobs_running and hypersdk_jobs_queued, read
// through counts (the job engine's Counts) at scrape time.
func (m *Metrics) RegisterJobs(counts JobCounter) {
	m.Registry.MustRegister(&jobStateCollector{counts: counts, log: m.log})
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
	counts JobCounter
	log    *slog.Logger
}

func (c *jobStateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningDesc
	ch <- queuedDesc
}

func (c *jobStateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.counts(ctx)
	if err != nil {
		c.log.Warn("metrics: counting jobs failed", "err", err)
		ch <- prometheus.NewInvalidMetric(runningDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(counts[apitypes.JobRunning]))
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(counts[apitypes.JobQueued]))
}
