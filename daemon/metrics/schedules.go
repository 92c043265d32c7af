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
	m.storeQuery("schedule_counts")
	m.Registry.MustRegister(m.schedules.runs, m.schedules.lag, &scheduleCollector{counts: counts, storeError: m.storeError})
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

// NextRuns reports the next due time of every enabled schedule by name.
type NextRuns func(ctx context.Context) (map[string]time.Time, error)

var nextRunDesc = prometheus.NewDesc("hypersdk_schedule_next_run_timestamp_seconds",
	"When each enabled schedule is next due, as a Unix time (all daemons).", []string{"schedule"}, nil)

// RegisterScheduleNextRuns adds hypersdk_schedule_next_run_timestamp_seconds,
// read from the store at scrape time: a due time that stays in the past
// means the schedule is not firing.
func (m *Metrics) RegisterScheduleNextRuns(next NextRuns) {
	m.registerStoreCollector(&storeCollector{desc: nextRunDesc, read: func(ctx context.Context, ch chan<- prometheus.Metric) error {
		runs, err := next(ctx)
		if err != nil {
			return err
		}
		for name, at := range runs {
			ch <- prometheus.MustNewConstMetric(nextRunDesc, prometheus.GaugeValue, float64(at.UnixMilli())/1e3, name)
		}
		return nil
	}, query: "schedule_next_runs", storeError: m.storeError})
}

type scheduleCollector struct {
	counts     ScheduleCounter
	storeError func(query string, err error)
}

func (c *scheduleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- schedulesDesc }

func (c *scheduleCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
	defer cancel()
	enabled, paused, err := c.counts(ctx)
	if err != nil {
		c.storeError("schedule_counts", err)
		ch <- prometheus.NewInvalidMetric(schedulesDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(schedulesDesc, prometheus.GaugeValue, float64(enabled), "enabled")
	ch <- prometheus.MustNewConstMetric(schedulesDesc, prometheus.GaugeValue, float64(paused), "paused")
}
