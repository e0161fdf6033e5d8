package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbserver/lbserver/internal/admission"
)

// metrics are this process's Prometheus series, in a registry of its own
// (no global default registry).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	drawn    prometheus.Counter
	// ok holds, per route pattern, the series of a 200 answer, resolved
	// once: the hot path then skips hashing label values under a lock.
	// Filled by prepare before serving, read-only afterwards.
	ok map[string]routeSeries
}

// routeSeries are the series one route's 200 answers update.
type routeSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func newMetrics(l *admission.Limiter) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbserver_http_requests_total", Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lbserver_http_request_duration_seconds", Help: "Time to answer, by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		drawn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lbserver_randoms_numbers_drawn_total", Help: "Random numbers drawn by /api/randoms.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.drawn,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lbserver_compute_slots_busy", Help: "Heavy requests computing now.",
		}, func() float64 { return float64(l.Busy()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lbserver_compute_slots", Help: "Compute slots of this process.",
		}, func() float64 { return float64(l.Slots()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lbserver_compute_queue_waiting", Help: "Heavy requests waiting for a compute slot.",
		}, func() float64 { return float64(l.Waiting()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// prepare resolves the 200 series of route (call it before serving).
func (m *metrics) prepare(route string) {
	if m.ok == nil {
		m.ok = make(map[string]routeSeries)
	}
	m.ok[route] = routeSeries{m.requests.WithLabelValues(route, "200"), m.latency.WithLabelValues(route)}
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	if rs, ok := m.ok[route]; ok && code == 200 {
		rs.requests.Inc()
		rs.latency.Observe(d.Seconds())
		return
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
