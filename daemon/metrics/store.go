package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// storeCollector is a collector whose metrics of one name are read from
// the store at scrape time by read; a failed read is counted in
// hypersdk_store_errors_total{query} and reported as an invalid metric.
type storeCollector struct {
	desc       *prometheus.Desc
	query      string
	read       func(ctx context.Context, ch chan<- prometheus.Metric) error
	storeError func(query string, err error)
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
	defer cancel()
	if err := c.read(ctx, ch); err != nil {
		c.storeError(c.query, err)
		ch <- prometheus.NewInvalidMetric(c.desc, err)
	}
}

func (m *Metrics) registerStoreCollector(c *storeCollector) {
	m.storeQuery(c.query)
	m.Registry.MustRegister(c)
}

var storeUpDesc = prometheus.NewDesc("hypersdk_store_up", "Whether the store answered a ping at scrape time (1) or not (0).", nil, nil)

// RegisterStore adds hypersdk_store_up, a ping of the store at scrape time.
func (m *Metrics) RegisterStore(ping func(ctx context.Context) error) {
	m.registerStoreCollector(&storeCollector{desc: storeUpDesc, query: "ping", storeError: m.storeError,
		read: func(ctx context.Context, ch chan<- prometheus.Metric) error {
			up := 1.0
			if err := ping(ctx); err != nil {
				m.storeError("ping", err)
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, up)
			return nil
		}})
}
