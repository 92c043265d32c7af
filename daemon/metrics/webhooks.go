package metrics

import (
	"context"
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
	m.Registry.MustRegister(m.webhooks.deliveries, m.webhooks.duration, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hypersdk_webhook_pending", Help: "Webhook deliveries waiting to be sent, including retries waiting for their backoff (all daemons).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := pending(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}

// WebhookDelivery implements webhooks.Metrics.
func (m *Metrics) WebhookDelivery(endpoint, outcome string, d time.Duration) {
	if m.webhooks == nil {
		return
	}
	m.webhooks.deliveries.WithLabelValues(endpoint, outcome).Inc()
	m.webhooks.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}
