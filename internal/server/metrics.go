package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/store"
)

// metrics are the server's Prometheus metrics, on a registry of their own
// (no global state).
type metrics struct {
	reg        *prometheus.Registry
	scans      *prometheus.CounterVec
	scanTime   prometheus.Histogram
	deliveries *prometheus.CounterVec
}

func newMetrics(st *store.Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scangate_scans_total", Help: "Image scans finished, by scan status.",
		}, []string{"status"}),
		scanTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "scangate_scan_duration_seconds", Help: "How long an image scan took (catalog and match).",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300},
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scangate_event_deliveries_total", Help: "Event deliveries to rule targets, by result (delivered, failed attempt, or dropped: the rule was deleted or changed).",
		}, []string{"result"}),
	}
	queue := prometheus.NewDesc("scangate_jobs_pending", "Jobs waiting, scheduled, retrying or running, by kind.", []string{"kind"}, nil)
	m.reg.MustRegister(m.scans, m.scanTime, m.deliveries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectorFunc{desc: queue, collect: func(ch chan<- prometheus.Metric) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			pending, err := jobs.Pending(ctx, st)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(queue, err)
				return
			}
			for _, kind := range []string{"scan_image", "route_event", "deliver_event", "reevaluate_images"} {
				ch <- prometheus.MustNewConstMetric(queue, prometheus.GaugeValue, float64(pending[kind]), kind)
			}
		}})
	return m
}

func (m *metrics) scanned(status string, d time.Duration) {
	m.scans.WithLabelValues(status).Inc()
	m.scanTime.Observe(d.Seconds())
}

func (m *metrics) delivered(_, _ string, err error) {
	if errors.Is(err, events.ErrDropped) {
		m.deliveries.WithLabelValues("dropped").Inc()
		return
	}
	if err != nil {
		m.deliveries.WithLabelValues("failed").Inc()
		return
	}
	m.deliveries.WithLabelValues("delivered").Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// collectorFunc is a collector read at scrape time.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
