package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
)

// The master's --master-metrics server bounds every phase of a connection
// as the workers' server does: a client that connects and stays idle, or
// reads or writes slowly, is cut off.
func TestMasterMetricsServerHasTimeouts(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	got := masterMetricsServer(http.NotFoundHandler(), log)
	workers := httpServer(http.NotFoundHandler(), log)
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"ReadHeaderTimeout", int64(got.ReadHeaderTimeout), int64(workers.ReadHeaderTimeout)},
		{"ReadTimeout", int64(got.ReadTimeout), int64(workers.ReadTimeout)},
		{"IdleTimeout", int64(got.IdleTimeout), int64(workers.IdleTimeout)},
	} {
		if c.got <= 0 || c.got > c.want {
			t.Errorf("master metrics %s = %v, want > 0 and at most the workers' %v", c.name, c.got, c.want)
		}
	}
	if got.WriteTimeout <= 0 {
		t.Errorf("master metrics WriteTimeout = %v, want > 0", got.WriteTimeout)
	}
}
