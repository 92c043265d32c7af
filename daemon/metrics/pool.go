package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hypersdk/hypersdk/providers"
)

// PoolSource lists the provider instances whose session pools are exported.
type PoolSource func() []*providers.Instance

// RegisterPools exports the session-pool counters of every provider that
// pools (providers.Pooled) as hypersdk_<type>_pool_* metrics, read at
// scrape time.
func (m *Metrics) RegisterPools(src PoolSource) {
	m.Registry.MustRegister(&poolCollector{src: src})
}

type poolCollector struct{ src PoolSource }

type poolMetric struct {
	suffix, help string
	kind         prometheus.ValueType
	value        func(providers.PoolStats) int64
}

var poolMetrics = []poolMetric{
	{"sessions_created_total", "Sessions logged in.", prometheus.CounterValue, func(s providers.PoolStats) int64 { return s.Created }},
	{"sessions_reused_total", "Calls served by an already logged-in session.", prometheus.CounterValue, func(s providers.PoolStats) int64 { return s.Reused }},
	{"sessions_evicted_total", "Sessions dropped: idle too long or found dead by the health check.", prometheus.CounterValue, func(s providers.PoolStats) int64 { return s.Evicted }},
	{"waits_total", "Calls that waited because every session was busy.", prometheus.CounterValue, func(s providers.PoolStats) int64 { return s.Waits }},
	{"reconnects_total", "Expired sessions re-established transparently mid-call.", prometheus.CounterValue, func(s providers.PoolStats) int64 { return s.Reconnects }},
	{"sessions_in_use", "Sessions lent out now.", prometheus.GaugeValue, func(s providers.PoolStats) int64 { return s.InUse }},
	{"sessions_idle", "Logged-in sessions waiting in the pool.", prometheus.GaugeValue, func(s providers.PoolStats) int64 { return s.Idle }},
	{"sessions_max", "Configured maximum number of sessions.", prometheus.GaugeValue, func(s providers.PoolStats) int64 { return s.Max }},
}

func poolDesc(typ string, pm poolMetric) *prometheus.Desc {
	return prometheus.NewDesc("hypersdk_"+typ+"_pool_"+pm.suffix, pm.help, []string{"provider"}, nil)
}

// Describe sends nothing: the metric names depend on the provider types
// configured, so the collector is unchecked.
func (c *poolCollector) Describe(chan<- *prometheus.Desc) {}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, in := range c.src() {
		pooled, ok := in.Provider.(providers.Pooled)
		if !ok {
			continue
		}
		st := pooled.PoolStats()
		for _, pm := range poolMetrics {
			ch <- prometheus.MustNewConstMetric(poolDesc(string(in.Type()), pm), pm.kind, float64(pm.value(st)), in.Name())
		}
	}
}
