package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbserver/lbserver/internal/supervisor"
)

// masterMetricsHandler serves the master's own counters (--master-metrics).
// Each worker's figures stay on its own /metrics, behind the shared port.
func masterMetricsHandler(m *supervisor.Master) http.Handler {
	reg := prometheus.NewRegistry()
	counter := func(name, help string, get func(supervisor.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(m.Stats())) })
	}
	reg.MustRegister(
		counter("lbserver_master_worker_starts_total", "Workers started, for any reason.", func(s supervisor.Stats) int64 { return s.Starts }),
		counter("lbserver_master_worker_exits_total", "Workers exited, for any reason.", func(s supervisor.Stats) int64 { return s.Exits }),
		counter("lbserver_master_worker_restarts_total", "Workers started to replace one that died.", func(s supervisor.Stats) int64 { return s.Restarts }),
		counter("lbserver_master_reloads_total", "Rolling reloads completed.", func(s supervisor.Stats) int64 { return s.Reloads }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lbserver_master_workers_live", Help: "Worker processes running now."},
			func() float64 { return float64(m.Stats().Live) }),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
