//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A peer is a server answering examples/hello's bytes ("hello from worker
// ID, pid PID\n"), measured side by side with hello under the same load:
// what a user of cluster would pick instead. The Go peers are built from
// bench/peers/* (modules of their own, pinned by their go.sum, so lbserver's
// module does not depend on them); Node's cluster runs with no npm package.
type peer struct {
	Key, Name string
	exe       string
	args      []string
	env       []string // added to lbbench's environment
}

// peersResult is every round of every peer; medians are taken per peer.
type peersResult struct {
	Rounds   int
	Conns    int
	Measure  time.Duration
	Peers    []peer
	Runs     map[string][]loadResult // by peer key, one per round
	Failures map[string]string       // by peer key: why it was not measured
}

// peerList is the peers found in dir (make bench builds them into
// bin/peers) and repo (Node's server.js).
func peerList(dir, repo string) ([]peer, []string) {
	n := runtime.NumCPU()
	cpus := strconv.Itoa(n)
	var ps []peer
	var missing []string
	have := func(p string) bool { _, err := os.Stat(p); return err == nil }
	hello := filepath.Join(dir, "hello")
	if have(hello) {
		ps = append(ps,
			peer{Key: "hello", Name: fmt.Sprintf("examples/hello, %d workers (default: GOMAXPROCS %d each, connection table)", n, 1), exe: hello, args: []string{"--workers", cpus}},
			peer{Key: "hello-recycle", Name: fmt.Sprintf("examples/hello, %d workers, --no-spread (keep-alive connections recycled every 100 requests)", n), exe: hello, args: []string{"--workers", cpus, "--no-spread"}},
			peer{Key: "hello-all", Name: fmt.Sprintf("examples/hello, %d workers, GOMAXPROCS=%d each", n, n), exe: hello, args: []string{"--workers", cpus}, env: []string{"GOMAXPROCS=" + cpus}},
			peer{Key: "hello-1", Name: "examples/hello, 1 worker", exe: hello, args: []string{"--workers", "1"}},
		)
	} else {
		missing = append(missing, hello)
	}
	if node, err := exec.LookPath("node"); err == nil {
		ps = append(ps, peer{Key: "node", Name: fmt.Sprintf("Node %s cluster, %d workers", toolVersion("node", "--version"), n), exe: node,
			args: []string{filepath.Join(repo, "bench/peers/node-cluster/server.js"), "--workers", cpus}})
	} else {
		missing = append(missing, "node")
	}
	if p := filepath.Join(dir, "fasthttp"); have(p) {
		ps = append(ps, peer{Key: "fasthttp", Name: fmt.Sprintf("fasthttp %s prefork, %d children (GOMAXPROCS 1 each)", modVersion(repo, "fasthttp", "github.com/valyala/fasthttp"), n), exe: p})
	} else {
		missing = append(missing, p)
	}
	if p := filepath.Join(dir, "nethttp"); have(p) {
		ps = append(ps, peer{Key: "nethttp", Name: "net/http, one process (GOMAXPROCS " + cpus + ")", exe: p})
	} else {
		missing = append(missing, p)
	}
	return ps, missing
}

// modVersion is the version of module mod that bench/peers/name pins.
func modVersion(repo, name, mod string) string {
	b, err := os.ReadFile(filepath.Join(repo, "bench/peers", name, "go.mod"))
	if err != nil {
		return "?"
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if i := slices.Index(f, mod); i >= 0 && i+1 < len(f) {
			return f[i+1]
		}
	}
	return "?"
}

// measurePeers loads every peer in turn, rounds times (the peers
// interleaved, so that other work on the machine falls on all of them).
func measurePeers(ctx context.Context, o options, p plan, load loader, log io.Writer) *peersResult {
	rounds := 5
	if o.quick {
		rounds = 2
	}
	ps, missing := peerList(o.peers, o.repo)
	res := &peersResult{Rounds: rounds, Conns: p.lightConns, Measure: p.measure, Peers: ps,
		Runs: map[string][]loadResult{}, Failures: map[string]string{}}
	for _, m := range missing {
		res.Failures[m] = "not built (make bench builds bin/peers) or not installed"
	}
	for r := range rounds {
		for _, pe := range ps {
			if ctx.Err() != nil {
				return res
			}
			if _, failed := res.Failures[pe.Key]; failed {
				continue
			}
			fmt.Fprintf(log, "lbbench: peers round %d/%d: %s\n", r+1, rounds, pe.Name)
			lr, err := measurePeer(ctx, pe, p, load)
			if err != nil {
				res.Failures[pe.Key] = firstLine(err.Error())
				continue
			}
			res.Runs[pe.Key] = append(res.Runs[pe.Key], lr)
		}
	}
	return res
}

// measurePeer starts pe on a free port, waits until it answers, warms it
// up, loads it once and stops it.
func measurePeer(ctx context.Context, pe peer, p plan, load loader) (loadResult, error) {
	port, err := freePort()
	if err != nil {
		return loadResult{}, err
	}
	args := append(slices.Clone(pe.args), "--port", strconv.Itoa(port))
	pr, err := startProcEnv(pe.env, pe.exe, args...)
	if err != nil {
		return loadResult{}, err
	}
	defer pr.stop(5 * time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if _, err := waitOK(ctx, url, time.Now(), 20*time.Second, []*proc{pr}); err != nil {
		return loadResult{}, err
	}
	if _, err := load(ctx, url, p.lightConns, p.warm); err != nil {
		return loadResult{}, err
	}
	lr, err := load(ctx, url, p.lightConns, p.measure)
	if err == nil && lr.Errors > 0 {
		err = fmt.Errorf("%s: %d errors", pe.Name, lr.Errors)
	}
	return lr, err
}

// median is the median of the runs' req/s, p50 and p99, each on its own.
func median(runs []loadResult) loadResult {
	if len(runs) == 0 {
		return loadResult{}
	}
	mid := func(vs []float64) float64 {
		slices.Sort(vs)
		if n := len(vs); n%2 == 0 {
			return (vs[n/2-1] + vs[n/2]) / 2
		}
		return vs[len(vs)/2]
	}
	var r, p50, p99 []float64
	for _, x := range runs {
		r = append(r, x.RPS)
		p50 = append(p50, float64(x.P50))
		p99 = append(p99, float64(x.P99))
	}
	return loadResult{RPS: mid(r), P50: time.Duration(mid(p50)), P99: time.Duration(mid(p99))}
}

// section writes the side-by-side table and the target's verdict.
func (pr *peersResult) section(b *strings.Builder, cmd string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Threads per worker: examples/hello against Node's cluster, fasthttp's prefork and net/http\n\n")
	p("The same body (`hello from worker ID, pid PID\\n`) from each server, GET / with %d connections for %v after a warm-up, ", pr.Conns, pr.Measure)
	p("%d rounds with the servers interleaved in each round (so that other work on the machine falls on all of them); medians of the rounds, ", pr.Rounds)
	p("each column on its own. Ratios are against Node's cluster (req/s) and net/http in one process (p99). Command: `%s`.\n\n", cmd)
	node, nethttp := median(pr.Runs["node"]), median(pr.Runs["nethttp"])
	p("| Server | req/s (median) | vs Node | p50 | p99 (median) | vs net/http p99 | req/s of each round |\n|---|---|---|---|---|---|---|\n")
	for _, pe := range pr.Peers {
		runs := pr.Runs[pe.Key]
		if len(runs) == 0 {
			continue
		}
		m := median(runs)
		vsNode, vsNet := "-", "-"
		if node.RPS > 0 {
			vsNode = fmt.Sprintf("%.2fx", m.RPS/node.RPS)
		}
		if nethttp.P99 > 0 {
			vsNet = fmt.Sprintf("%.2fx", float64(m.P99)/float64(nethttp.P99))
		}
		var each []string
		for _, r := range runs {
			each = append(each, rps(r.RPS))
		}
		p("| %s | %s | %s | %s | %s | %s | %s |\n", pe.Name, rps(m.RPS), vsNode, ms(m.P50), ms(m.P99), vsNet, strings.Join(each, ", "))
	}
	hello := median(pr.Runs["hello"])
	if hello.RPS > 0 && node.RPS > 0 && nethttp.P99 > 0 {
		p("\nTarget: examples/hello with one worker per CPU at least Node cluster's req/s (%s vs %s: %s) and at most net/http's p99 in one process (%s vs %s: %s).\n",
			rps(hello.RPS), rps(node.RPS), check(hello.RPS >= node.RPS), ms(hello.P99), ms(nethttp.P99), check(hello.P99 <= nethttp.P99))
	}
	keys := make([]string, 0, len(pr.Failures))
	for k := range pr.Failures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p("\n- %s not measured: %s\n", k, strings.ReplaceAll(pr.Failures[k], "|", "/"))
	}
	p("\n")
}
