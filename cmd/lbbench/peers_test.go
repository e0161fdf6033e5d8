//go:build linux

package main

import (
	"strings"
	"testing"
	"time"
)

// The peers' table shows each server's median req/s and p99 over the
// rounds, ratios against Node (req/s) and net/http (p99), and says whether
// hello met the target, and which peer was not measured and why.
func TestPeersSection(t *testing.T) {
	run := func(rps float64, p99ms int) loadResult {
		return loadResult{RPS: rps, P50: time.Millisecond, P99: time.Duration(p99ms) * time.Millisecond}
	}
	pr := &peersResult{Rounds: 3, Conns: 50, Measure: 5 * time.Second,
		Peers: []peer{{Key: "hello", Name: "hello"}, {Key: "node", Name: "node"}, {Key: "nethttp", Name: "nethttp"}, {Key: "fasthttp", Name: "fasthttp"}},
		Runs: map[string][]loadResult{
			"hello":   {run(50000, 5), run(10, 90), run(48000, 6)}, // one disturbed round: the median ignores it
			"node":    {run(40000, 12), run(41000, 13), run(39000, 14)},
			"nethttp": {run(45000, 7), run(44000, 8), run(46000, 6)},
		},
		Failures: map[string]string{"fasthttp": "exited while starting"},
	}
	var b strings.Builder
	pr.section(&b, "make bench")
	got := b.String()
	for _, want := range []string{
		"| hello | 48000 | 1.20x | 1.0 ms | 6.0 ms | 0.86x | 50000, 10.0, 48000 |",
		"| node | 40000 | 1.00x |",
		"at least Node cluster's req/s (48000 vs 40000: yes) and at most net/http's p99 in one process (6.0 ms vs 7.0 ms: yes)",
		"fasthttp not measured: exited while starting",
		"Command: `make bench`",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("section lacks %q:\n%s", want, got)
		}
	}
	pr.Runs["hello"] = []loadResult{run(30000, 9)}
	b.Reset()
	pr.section(&b, "make bench")
	if want := "(30000 vs 40000: **no**) and at most net/http's p99 in one process (9.0 ms vs 7.0 ms: **no**)"; !strings.Contains(b.String(), want) {
		t.Errorf("a missed target reads otherwise; want %q in:\n%s", want, b.String())
	}
}
