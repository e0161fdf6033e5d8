package e2e

// Behaviour at the limits, end to end against the binary: a full admission
// queue, a client leaving while queued, the master's connection table after
// a kill and a reload, a drain that runs out of time, a worker that ignores
// the master's stop, and FORK --reuseport recycling keep-alive connections.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// limMetric scrapes url and returns the series line's value (-1 if absent).
func limMetric(tb testing.TB, url, series string) float64 {
	tb.Helper()
	body, _ := relScrape(tb, url)
	return relSeries(body, series)
}

// TestBusyIs503WithRetryAfterAnd499WhenClientLeaves: with one compute slot
// and a queue of one, a third heavy request is refused at once with 503, a
// Retry-After header and a JSON error; a client that leaves while queued is
// counted as 499 and leaves the queue; the server then serves again.
func TestBusyIs503WithRetryAfterAnd499WhenClientLeaves(t *testing.T) {
	port := FreePort(t)
	p := StartLB(t, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--compute-slots", "1", "--queue", "1", "--max-cant", relMaxCant)
	base := relBase(port)
	WaitHTTP(t, p, base+"/healthz", 10*time.Second)
	metrics := base + "/metrics"
	heavy := relHeavyURL(t, base, 30*time.Second) // cancelled long before it ends

	start := func() (context.CancelFunc, <-chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", heavy, nil)
			r, err := client.Do(req)
			if err == nil {
				r.Body.Close()
				err = fmt.Errorf("answered %d", r.StatusCode)
			}
			done <- err
		}()
		return cancel, done
	}
	cancelA, doneA := start()
	defer cancelA()
	Eventually(t, 10*time.Second, "request A computing", func() bool { return limMetric(t, metrics, "lbserver_compute_slots_busy") == 1 })
	cancelB, doneB := start()
	defer cancelB()
	Eventually(t, 10*time.Second, "request B queued", func() bool { return limMetric(t, metrics, "lbserver_compute_queue_waiting") == 1 })

	// The slot and the queue are full: refused at once.
	began := time.Now()
	r := MustGet(t, heavy)
	took := time.Since(began)
	var body struct {
		Error string `json:"error"`
	}
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" {
		t.Errorf("third heavy request: status %d, Retry-After %q; want 503 and 1", r.Status, r.Header.Get("Retry-After"))
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || !strings.Contains(body.Error, "busy") {
		t.Errorf("503 body %q: want a JSON error saying busy", r.Body)
	}
	if took > 5*time.Second {
		t.Errorf("the 503 took %s: it must not wait for a slot", took)
	}
	if got := limMetric(t, metrics, `lbserver_http_requests_total{code="503",route="GET /api/randoms"}`); got != 1 {
		t.Errorf("503s counted = %v, want 1", got)
	}

	// B leaves while queued: 499, and the queue empties; A still computes.
	cancelB()
	if err := <-doneB; err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("request B: %v, want the client's own cancellation", err)
	}
	Eventually(t, 10*time.Second, "the 499 of the queued request counted", func() bool {
		return limMetric(t, metrics, `lbserver_http_requests_total{code="499",route="GET /api/randoms"}`) == 1
	})
	if got := limMetric(t, metrics, "lbserver_compute_queue_waiting"); got != 0 {
		t.Errorf("queue after the client left = %v, want 0", got)
	}
	if got := limMetric(t, metrics, "lbserver_compute_slots_busy"); got != 1 {
		t.Errorf("compute slots busy after B left = %v, want 1 (A still runs)", got)
	}
	// A leaves while computing: its computation stops, also a 499.
	cancelA()
	<-doneA
	Eventually(t, 10*time.Second, "the computing request's 499 counted and the slot free", func() bool {
		return limMetric(t, metrics, `lbserver_http_requests_total{code="499",route="GET /api/randoms"}`) == 2 &&
			limMetric(t, metrics, "lbserver_compute_slots_busy") == 0
	})
	if r := MustGet(t, base+"/api/randoms?cant=1000"); r.Status != http.StatusOK {
		t.Errorf("after the 503 and the 499s: status %d, want 200", r.Status)
	}
}

var limConnsRE = regexp.MustCompile(`(?m)^lbserver_master_worker_connections\{pid="(\d+)",worker="(\d+)"\} (\d+)$`)

// limConns reads the master's per-worker connection gauge: pid -> count.
func limConns(tb testing.TB, maddr string) map[int]int {
	tb.Helper()
	body, _ := relScrape(tb, maddr)
	out := map[int]int{}
	for _, m := range limConnsRE.FindAllStringSubmatch(body, -1) {
		pid, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[3])
		out[pid] = n
	}
	return out
}

// TestMasterConnectionTableForgetsDeadWorkers: the master's connection table
// (lbserver_master_worker_connections) counts each live worker's open
// connections. A SIGKILLed worker's entry is zeroed, so its replacement
// starts at 0 rather than inheriting the dead worker's count; after a
// rolling reload only the new workers are listed; and at every step the
// gauge adds up to the connections the clients really hold.
func TestMasterConnectionTableForgetsDeadWorkers(t *testing.T) {
	mport := FreePort(t)
	maddr := "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
	p, base := startCluster(t, 2, "--master-metrics", "127.0.0.1:"+strconv.Itoa(mport))
	const clients = 20
	var cs []*http.Client
	for range clients {
		tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		cs = append(cs, &http.Client{Transport: tr, Timeout: 10 * time.Second})
	}
	// round sends one request per client and returns how many connections
	// the clients keep open afterwards (answers without Connection: close).
	round := func(what string) int {
		t.Helper()
		kept := 0
		for i, c := range cs {
			r, err := c.Get(base + "/api/info")
			if err != nil {
				t.Fatalf("%s, client %d: %v", what, i, err)
			}
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode != http.StatusOK {
				t.Fatalf("%s, client %d: status %d", what, i, r.StatusCode)
			}
			if !r.Close {
				kept++
			}
		}
		return kept
	}
	sum := func(m map[int]int) int {
		n := 0
		for _, v := range m {
			n += v
		}
		return n
	}
	var conns map[int]int
	for i := range 5 {
		kept := round(fmt.Sprintf("round %d", i))
		conns = limConns(t, maddr)
		if sum(conns) != kept {
			t.Fatalf("round %d: the master counts %v = %d connections, the clients hold %d", i, conns, sum(conns), kept)
		}
	}
	// The victim is the worker with the most connections (the table keeps
	// them even: about 10 each).
	victim, most := 0, -1
	for pid, n := range conns {
		if n > most {
			victim, most = pid, n
		}
	}
	if most < 1 {
		t.Fatalf("no worker holds a connection: %v", conns)
	}
	before := conns
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	relWaitLog(t, p, "worker ready", 3, 10*time.Second)
	workers := relWaitWorkers(t, p, 2)
	// No client has sent anything since: the replacement holds nothing.
	Eventually(t, 5*time.Second, "the replacement listed in the connection gauge", func() bool {
		conns = limConns(t, maddr)
		return len(conns) == 2
	})
	if _, ok := conns[victim]; ok {
		t.Errorf("the killed worker %d is still in the connection gauge: %v", victim, conns)
	}
	for _, pid := range workers {
		n, ok := conns[pid]
		switch prev, old := before[pid]; {
		case !ok:
			t.Errorf("live worker %d missing from the connection gauge %v", pid, conns)
		case old && n != prev:
			t.Errorf("the surviving worker %d: %d connections, want %d as before the kill (no client moved)", pid, n, prev)
		case !old && n != 0:
			t.Errorf("the replacement worker %d: %d connections, want 0 (the killed worker's %d must not carry over)", pid, n, most)
		}
	}
	t.Logf("after killing worker %d (%d connections): gauge %v", victim, most, conns)
	kept := round("after the kill")
	conns = limConns(t, maddr)
	if sum(conns) != kept {
		t.Errorf("after the kill: the master counts %v = %d connections, the clients hold %d", conns, sum(conns), kept)
	}

	// A rolling reload replaces both workers; their connections close as
	// they drain, and only the new workers are counted.
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	relWaitLog(t, p, "rolling reload finished", 1, 30*time.Second)
	newWorkers := relWaitWorkers(t, p, 2)
	conns = limConns(t, maddr)
	for pid, n := range conns {
		if !slices.Contains(newWorkers, pid) {
			t.Errorf("after the reload the gauge lists pid %d (%d connections), not one of the new workers %v", pid, n, newWorkers)
		}
	}
	if sum(conns) != 0 {
		t.Errorf("after the reload, before any new request: the master counts %v, want 0 (the old connections closed with their workers)", conns)
	}
	kept = round("after the reload")
	conns = limConns(t, maddr)
	if sum(conns) != kept || len(conns) != 2 {
		t.Errorf("after the reload: the master counts %v = %d connections on %d workers, the clients hold %d on 2", conns, sum(conns), len(conns), kept)
	}
}

// TestDrainTimeoutExpires: a request that outlasts --drain-timeout does not
// hold the stop up: after SIGTERM the process waits the drain timeout (not
// less: the request had its time), then closes the connection and exits,
// logging "drain: context deadline exceeded", in FORK and CLUSTER mode.
func TestDrainTimeoutExpires(t *testing.T) {
	const drain = time.Second
	for _, mode := range []string{"FORK", "CLUSTER"} {
		t.Run(mode, func(t *testing.T) {
			p, base, pids := relStartMode(t, mode, "--drain-timeout", drain.String(), "--max-cant", relMaxCant)
			heavy := relAsyncGet(relHeavyURL(t, base, 20*time.Second))
			relWaitBusy(t, base, 1)
			signalled := time.Now()
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if !p.Wait(drain + 10*time.Second) {
				t.Fatalf("still running %s after SIGTERM with --drain-timeout %s", drain+10*time.Second, drain)
			}
			took := time.Since(signalled)
			r := <-heavy
			t.Logf("%s: exited %s after SIGTERM; the heavy request got err=%v status=%d", mode, took.Round(time.Millisecond), r.err, r.Status)
			if took < drain {
				t.Errorf("exited %s after SIGTERM, before the %s drain timeout: the request in flight was not given its time", took.Round(time.Millisecond), drain)
			}
			if took > drain+5*time.Second {
				t.Errorf("exited %s after SIGTERM, want within 5s after the %s drain timeout", took.Round(time.Millisecond), drain)
			}
			if r.err == nil {
				t.Errorf("the request outlasting the drain was answered %d, want its connection closed", r.Status)
			}
			// FORK exits 1; a CLUSTER master exits 0 even though its worker
			// exited 1 (logged as the worker's status), so only FORK's code
			// is asserted.
			if code := relExitCode(p); mode == "FORK" && code != 1 {
				t.Errorf("exit code after an expired drain = %d, want 1", code)
			}
			if out := p.Output.String(); !strings.Contains(out, "drain: context deadline exceeded") {
				t.Errorf("output does not name the expired drain:\n%s", out)
			}
			relAssertGone(t, base, pids)
		})
	}
}

// TestMasterKillsWorkerThatIgnoresStop: a worker that does not exit after
// the master's SIGTERM (here: SIGSTOPped, so it cannot act on it) is
// SIGKILLed when the stop timeout (--drain-timeout + 5s) runs out; the
// master then exits 1 saying so, and nothing is left.
func TestMasterKillsWorkerThatIgnoresStop(t *testing.T) {
	const drain = time.Second
	const stopTimeout = drain + 5*time.Second
	p, base, pids := relStartMode(t, "CLUSTER", "--drain-timeout", drain.String())
	stuck := pids[0]
	if err := syscall.Kill(stuck, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	relWaitState(t, stuck, 'T')
	signalled := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.Wait(stopTimeout + 10*time.Second) {
		t.Fatalf("the master still runs %s after SIGTERM", stopTimeout+10*time.Second)
	}
	took := time.Since(signalled)
	t.Logf("master exited %s after SIGTERM with worker %d stopped", took.Round(time.Millisecond), stuck)
	if took < stopTimeout {
		t.Errorf("the master exited %s after SIGTERM, before its %s stop timeout", took.Round(time.Millisecond), stopTimeout)
	}
	if took > stopTimeout+5*time.Second {
		t.Errorf("the master exited %s after SIGTERM, want within 5s after its %s stop timeout", took.Round(time.Millisecond), stopTimeout)
	}
	if code := relExitCode(p); code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	if out := p.Output.String(); !strings.Contains(out, "did not stop within the stop timeout") {
		t.Errorf("output does not say the workers were killed after the stop timeout:\n%s", out)
	}
	relAssertGone(t, base, pids)
}

// TestForkReusePortRecyclesConnections: FORK with --reuseport (PM2 -i N:
// no master, no shared connection table) closes a keep-alive connection
// after every 100 requests, so that clients are hashed again over the
// instances; without --reuseport a connection carries 1000 (nginx's
// keepalive_requests default).
func TestForkReusePortRecyclesConnections(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra []string
		want  []int // 1-based requests answered with Connection: close
	}{
		{"reuseport", []string{"--reuseport"}, []int{100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}},
		{"plain", nil, []int{1000}},
	} {
		t.Run(c.name, func(t *testing.T) {
			port := FreePort(t)
			p := StartLB(t, append([]string{"--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "FORK"}, c.extra...)...)
			base := relBase(port)
			WaitHTTP(t, p, base+"/healthz", 10*time.Second)
			tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			kc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			var closed []int
			const n = 1001
			for i := 1; i <= n; i++ {
				r, err := kc.Get(base + "/api/info")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
				if r.StatusCode != http.StatusOK {
					t.Fatalf("request %d: status %d", i, r.StatusCode)
				}
				if r.Close {
					closed = append(closed, i)
				}
			}
			if !slices.Equal(closed, c.want) {
				t.Errorf("answers with Connection: close at requests %v of %d on one keep-alive client, want %v", closed, n, c.want)
			}
		})
	}
}
