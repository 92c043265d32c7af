package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/providers"
)

var (
	providerUpDesc = prometheus.NewDesc("hypersdk_provider_up",
		"Whether the provider's last connection or health check succeeded (1) or not (0).", []string{"provider", "type"}, nil)
	providerCheckedDesc = prometheus.NewDesc("hypersdk_provider_last_check_timestamp_seconds",
		"When the provider's connection was last checked, as a Unix time (0 before the first check).", []string{"provider"}, nil)
)

// RegisterProviders adds hypersdk_provider_up{provider,type} and
// hypersdk_provider_last_check_timestamp_seconds{provider}, read from the
// instances' health at scrape time. The platform-call and sweep metrics
// are recorded through ProviderCall and OrphanSweep (providers.Observer).
//
// It also creates every provider's series of the job, byte, retry and
// sweep counters at 0: a counter that appears at 1 has no increase() in
// Prometheus, so the first failure would go unseen by rates and alerts.
func (m *Metrics) RegisterProviders(src PoolSource) {
	for _, in := range src() {
		p := in.Name()
		m.jobsSubmitted.WithLabelValues(p)
		m.exportBytes.WithLabelValues(p)
		m.jobRetries.WithLabelValues(p)
		m.resumedBytes.WithLabelValues(p)
		m.orphans.WithLabelValues(p)
		for _, st := range apitypes.JobStates() {
			if st.Terminal() {
				m.jobsTotal.WithLabelValues(p, string(st))
			}
		}
		for _, outcome := range []string{"ok", "error"} {
			m.sweeps.WithLabelValues(p, outcome)
		}
	}
	m.Registry.MustRegister(&providerCollector{src: src})
}

type providerCollector struct{ src PoolSource }

func (c *providerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- providerUpDesc
	ch <- providerCheckedDesc
}

func (c *providerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, in := range c.src() {
		h := in.Health()
		up, checked := 0.0, 0.0
		if h.Healthy {
			up = 1
		}
		if !h.CheckedAt.IsZero() {
			checked = float64(h.CheckedAt.UnixMilli()) / 1e3
		}
		ch <- prometheus.MustNewConstMetric(providerUpDesc, prometheus.GaugeValue, up, in.Name(), string(in.Type()))
		ch <- prometheus.MustNewConstMetric(providerCheckedDesc, prometheus.GaugeValue, checked, in.Name())
	}
}

// ProviderCall implements providers.Observer.
func (m *Metrics) ProviderCall(provider, op string, d time.Duration, err error) {
	m.providerCalls.WithLabelValues(provider, op).Observe(d.Seconds())
	if err != nil {
		m.providerErrs.WithLabelValues(provider, op).Inc()
	}
}

// OrphanSweep implements providers.Observer.
func (m *Metrics) OrphanSweep(provider string, deleted int, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.sweeps.WithLabelValues(provider, outcome).Inc()
	m.orphans.WithLabelValues(provider).Add(float64(deleted))
}

var _ providers.Observer = (*Metrics)(nil)
