package main

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbserver/lbserver/cluster"
	"github.com/lbserver/lbserver/internal/server"
)

// masterMetricsServer is the --master-metrics HTTP server: the workers'
// timeouts (slow or idle clients are cut off), and a write timeout that
// fits a scrape (gathering the workers takes 2 s at most).
func masterMetricsServer(h http.Handler, log *slog.Logger) *http.Server {
	srv := httpServer(h, log)
	srv.WriteTimeout = 30 * time.Second
	return srv
}

// masterMetricsHandler serves the master's own counters (--master-metrics)
// and every worker's lbserver_* series, gathered over their private sockets.
func masterMetricsHandler(m *cluster.Master) http.Handler {
	reg := prometheus.NewRegistry()
	counter := func(name, help string, get func(cluster.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(m.Stats())) })
	}
	reg.MustRegister(
		counter("lbserver_master_worker_starts_total", "Workers started, for any reason.", func(s cluster.Stats) int64 { return s.Starts }),
		counter("lbserver_master_worker_exits_total", "Workers exited, for any reason.", func(s cluster.Stats) int64 { return s.Exits }),
		counter("lbserver_master_worker_restarts_total", "Workers started to replace one that died.", func(s cluster.Stats) int64 { return s.Restarts }),
		counter("lbserver_master_reloads_total", "Rolling reloads completed.", func(s cluster.Stats) int64 { return s.Reloads }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lbserver_master_workers_live", Help: "Worker processes running now."},
			func() float64 { return float64(m.Stats().Live) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lbserver_master_workers", Help: "Worker slots now (--workers, then lbserver scale, SIGTTIN, SIGTTOU)."},
			func() float64 { return float64(m.Stats().Workers) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lbserver_master_slots_adopted", Help: "Slots whose worker is down, accepted for by another worker now."},
			func() float64 { return float64(m.Stats().Adopted) }),
		connsCollector{m: m},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every live worker's lbserver_* series too, labelled worker="<slot>";
	// a worker that does not answer is left out.
	workers := server.WorkerGatherer{List: func() []server.MetricsSource {
		var out []server.MetricsSource
		seen := map[int]bool{}
		for _, w := range m.Workers() {
			// One worker per slot: the current one (a replaced worker is draining).
			if w.PrivateAddr == "" || !w.Ready || !w.Current || seen[w.Slot] {
				continue
			}
			seen[w.Slot] = true
			out = append(out, server.MetricsSource{Slot: w.Slot, Pid: w.Pid, Transport: cluster.PrivateTransport(w.PrivateAddr)})
		}
		return out
	}}
	return promhttp.HandlerFor(prometheus.Gatherers{reg, workers}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// connsCollector reports each live worker's open connections, as counted in
// the connection table the workers balance their keep-alive connections by.
type connsCollector struct{ m *cluster.Master }

var connsDesc = prometheus.NewDesc("lbserver_master_worker_connections",
	"Open client connections of each worker process, from the shared connection table.", []string{"worker", "pid"}, nil)

func (c connsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- connsDesc }

func (c connsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.m.Workers() {
		if w.Conns >= 0 {
			ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(w.Conns), strconv.Itoa(w.Slot), strconv.Itoa(w.Pid))
		}
	}
}
