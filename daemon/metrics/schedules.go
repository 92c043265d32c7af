package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type scheduleMetrics struct {
	runs *prometheus.CounterVec
	lag  prometheus.Histogram
}

// ScheduleCounter reports how many schedules are enabled and paused.
type ScheduleCounter func(ctx context.Context) (enabled, paused int, err error)

var schedulesDesc = prometheus.NewDesc("hypersdk_schedules", "Schedules by state (all daemons).", []string{"state"}, nil)

// RegisterSchedules adds hypersdk_schedule_runs_total{schedule,outcome}
// (submitted, catch_up, manual, skipped, missed, not_submitted, queued,
// finished), hypersdk_schedule_lag_seconds (how late runs started) and
// hypersdk_schedules{state}, read from the store at scrape time.
func (m *Metrics) RegisterSchedules(counts ScheduleCounter) {
	m.schedules = &scheduleMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_schedule_runs_total", Help: "Schedule firings by schedule and outcome.",
		}, []string{"schedule", "outcome"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hypersdk_schedule_lag_seconds", Help: "How late scheduled runs started after their due time.",
			Buckets: []float64{.1, .5, 1, 2, 5, 10, 30, 60, 300, 3600},
		}),
	}
	m.Registry.MustRegister(m.schedules.runs, m.schedules.lag, &scheduleCollector{counts: counts})
}

// ScheduleRun implements scheduler.Metrics.
func (m *Metrics) ScheduleRun(schedule, outcome string, lag time.Duration) {
	if m.schedules == nil {
		return
	}
	m.schedules.runs.WithLabelValues(schedule, outcome).Inc()
	if outcome == "submitted" || outcome == "catch_up" {
		m.schedules.lag.Observe(lag.Seconds())
	}
}

type scheduleCollector struct{ counts ScheduleCounter }

func (c *scheduleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- schedulesDesc }

func (c *scheduleCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	enabled, paused, err := c.counts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(schedulesDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(schedulesDesc, prometheus.GaugeValue, float64(enabled), "enabled")
	ch <- prometheus.MustNewConstMetric(schedulesDesc, prometheus.GaugeValue, float64(paused), "paused")
}
