package metrics

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// webhookMetrics are registered by RegisterWebhooks.
type webhookMetrics struct {
	deliveries *prometheus.CounterVec
	duration   *prometheus.HistogramVec
}

// PendingCounter reports how many webhook deliveries wait to be sent.
type PendingCounter func(ctx context.Context) (int, error)

// RegisterWebhooks adds the webhook delivery metrics:
// hypersdk_webhook_deliveries_total{endpoint,outcome} (outcome: delivered,
// retry, failed, gone), hypersdk_webhook_delivery_duration_seconds{endpoint}
// and hypersdk_webhook_pending, read from the store at scrape time.
func (m *Metrics) RegisterWebhooks(pending PendingCounter) {
	m.webhooks = &webhookMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hypersdk_webhook_deliveries_total", Help: "Webhook delivery attempts by endpoint and outcome (delivered, retry, failed, gone).",
		}, []string{"endpoint", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hypersdk_webhook_delivery_duration_seconds", Help: "Time from sending a webhook to the receiver's answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
	}
	m.storeQuery("webhook_pending")
	m.Registry.MustRegister(m.webhooks.deliveries, m.webhooks.duration, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hypersdk_webhook_pending", Help: "Webhook deliveries waiting to be sent, including retries waiting for their backoff (all daemons).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
		defer cancel()
		n, err := pending(ctx)
		if err != nil {
			// A GaugeFunc cannot fail the metric; NaN is Prometheus' "no value".
			m.storeError("webhook_pending", err)
			return math.NaN()
		}
		return float64(n)
	}))
}

// OldestPending reports when the oldest webhook delivery still waiting
// was created; ok is false when none waits.
type OldestPending func(ctx context.Context) (at time.Time, ok bool, err error)

var oldestPendingDesc = prometheus.NewDesc("hypersdk_webhook_oldest_pending_age_seconds",
	"Age of the oldest webhook delivery waiting to be sent (0 when none waits; all daemons).", nil, nil)

// RegisterWebhookBacklog adds hypersdk_webhook_oldest_pending_age_seconds,
// read from the store at scrape time: a backlog that only grows older
// means an endpoint that keeps failing or delivery that is stuck.
func (m *Metrics) RegisterWebhookBacklog(oldest OldestPending, now func() time.Time) {
	m.registerStoreCollector(&storeCollector{desc: oldestPendingDesc, read: func(ctx context.Context, ch chan<- prometheus.Metric) error {
		at, ok, err := oldest(ctx)
		if err != nil {
			return err
		}
		age := 0.0
		if ok {
			age = max(now().Sub(at).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(oldestPendingDesc, prometheus.GaugeValue, age)
		return nil
	}, query: "webhook_oldest_pending", storeError: m.storeError})
}

// WebhookDelivery implements webhooks.Metrics.
func (m *Metrics) WebhookDelivery(endpoint, outcome string, d time.Duration) {
	if m.webhooks == nil {
		return
	}
	m.webhooks.deliveries.WithLabelValues(endpoint, outcome).Inc()
	m.webhooks.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}
