package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/lb"
	"github.com/scangate/scangate/internal/store"
)

// metrics are the server's Prometheus metrics, on a registry of their own
// (no global state).
type metrics struct {
	reg        *prometheus.Registry
	scans      *prometheus.CounterVec
	scanTime   prometheus.Histogram
	deliveries *prometheus.CounterVec
	refusals   prometheus.Counter
	rollouts   *prometheus.CounterVec
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
	m.refusals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "scangate_admission_refusals_total", Help: "Task starts and service changes refused because an image was not approved.",
	})
	m.rollouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scangate_deployments_total", Help: "Service deployments finished, by outcome (COMPLETED or FAILED).",
	}, []string{"outcome"})
	m.reg.MustRegister(m.refusals, m.rollouts)
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
			for _, kind := range []string{"scan_image", events.KindRoute, events.KindDeliver, "reevaluate_images"} {
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

func (m *metrics) refused()                { m.refusals.Inc() }
func (m *metrics) deployed(outcome string) { m.rollouts.WithLabelValues(outcome).Inc() }

// watchServices reports each service's desired and running task counts,
// and the counters of its load balancer.
func (m *metrics) watchServices(c *deploy.Controller, b *lb.Balancer) {
	labels := []string{"cluster", "service"}
	desired := prometheus.NewDesc("scangate_service_desired_tasks", "Tasks a service should run.", labels, nil)
	running := prometheus.NewDesc("scangate_service_running_tasks", "Tasks of a service RUNNING now.", labels, nil)
	lbRequests := prometheus.NewDesc("scangate_lb_requests_total", "Requests a service's load balancer received since it started listening.", labels, nil)
	lbFailures := prometheus.NewDesc("scangate_lb_failures_total",
		"Requests a service's load balancer answered with an error of its own (no task, or none reachable).", labels, nil)
	lbRetries := prometheus.NewDesc("scangate_lb_retries_total",
		"Requests a service's load balancer sent on to another task because connecting to one failed.", labels, nil)
	m.reg.MustRegister(collectorFunc{desc: desired, collect: func(ch chan<- prometheus.Metric) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		list, err := c.Services(ctx, "")
		if err != nil {
			ch <- prometheus.NewInvalidMetric(desired, err)
			return
		}
		for _, s := range list {
			ch <- prometheus.MustNewConstMetric(desired, prometheus.GaugeValue, float64(s.DesiredCount), s.Cluster, s.Name)
			ch <- prometheus.MustNewConstMetric(running, prometheus.GaugeValue, float64(s.RunningCount), s.Cluster, s.Name)
			if s.Config.LoadBalancer != nil {
				st := b.Stats(s.Cluster + "/" + s.Name)
				ch <- prometheus.MustNewConstMetric(lbRequests, prometheus.CounterValue, float64(st.Requests), s.Cluster, s.Name)
				ch <- prometheus.MustNewConstMetric(lbFailures, prometheus.CounterValue, float64(st.Failures), s.Cluster, s.Name)
				ch <- prometheus.MustNewConstMetric(lbRetries, prometheus.CounterValue, float64(st.Retries), s.Cluster, s.Name)
			}
		}
	}, also: []*prometheus.Desc{running, lbRequests, lbFailures, lbRetries}})
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// collectorFunc is a collector read at scrape time.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
	also    []*prometheus.Desc // more metrics the same collect reports
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	for _, d := range c.also {
		ch <- d
	}
}
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
