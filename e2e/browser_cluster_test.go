package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserStartCluster starts lbserver in CLUSTER mode with n workers on a
// free loopback port and waits until it answers; it returns the master and
// the base URL.
func browserStartCluster(t *testing.T, n int) (*Proc, string, int) {
	t.Helper()
	port := FreePort(t)
	args := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port)}
	if v := os.Getenv("LBSERVER_E2E_PORT"); v != "" {
		// make screenshots runs in a network namespace of its own (unshare -n),
		// where the usual port is free and loopback is the only interface.
		port, _ = strconv.Atoi(v)
		args = []string{"--port", v}
	}
	p := StartLB(t, append(args, "--mode", "CLUSTER", "--workers", strconv.Itoa(n))...)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	WaitHTTP(t, p, base+"/healthz", 20*time.Second)
	Eventually(t, 20*time.Second, fmt.Sprintf("%d workers", n), func() bool { return len(ChildPids(p.Pid())) == n })
	return p, base, port
}

// balanceMetric returns the value of the series name{labels...} in a
// Prometheus text exposition (0 when absent: a counter not yet touched).
func balanceMetric(t *testing.T, body []byte, name string, labels ...string) float64 {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return 0
}

// balanceWorkerServed asks every worker of the cluster how many
// /api/randoms requests it answered 200: it scrapes /metrics on new
// connections (the kernel spreads them over the workers' sockets) until each
// pid of pids has answered once, and reads that worker's own counter.
func balanceWorkerServed(t *testing.T, base string, pids []int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < 400 && len(got) < len(pids); i++ {
		r := MustGet(t, base+"/metrics")
		pid := r.Header.Get("X-Server-Pid")
		if _, seen := got[pid]; seen || r.Status != http.StatusOK {
			continue
		}
		got[pid] = int(balanceMetric(t, r.Body, "lbserver_http_requests_total", `route="GET /api/randoms"`, `code="200"`))
	}
	if len(got) < len(pids) {
		t.Fatalf("reached the /metrics of pids %v only, want all of %v", balanceKeys(got), pids)
	}
	return got
}

// (a) /info in a browser shows the machine's processor count, and the page is
// the one of the process that answered.
func TestBrowserInfoShowsProcessorCount(t *testing.T) {
	_, base, port := browserStartCluster(t, 2)
	ctx := browserNew(t, 1000, 800)
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(base+"/info"))
	if err != nil {
		t.Fatalf("open /info: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("cpus"))); err != nil {
		t.Fatalf("wait for #cpus: %v", err)
	}
	cpus := strings.TrimSpace(browserEval[string](t, ctx, `document.getElementById('cpus').innerText`))
	if want := strconv.Itoa(runtime.NumCPU()); cpus != want {
		t.Errorf("processor count shown: got %q, want %s (runtime.NumCPU)", cpus, want)
	}
	// The facts are the answering worker's: its pid (from the response header),
	// the port, the mode.
	if pid := strings.TrimSpace(browserEval[string](t, ctx, `document.getElementById('pid').innerText`)); fmt.Sprint(resp.Headers["X-Server-Pid"]) != pid {
		t.Errorf("pid shown: got %q, want X-Server-Pid %v", pid, resp.Headers["X-Server-Pid"])
	}
	if got := strings.TrimSpace(browserEval[string](t, ctx, `document.getElementById('port').innerText`)); got != strconv.Itoa(port) {
		t.Errorf("port shown: got %q, want %d", got, port)
	}
	// The processor count is prominent: its text is larger than the body's.
	if big := browserEval[bool](t, ctx, `parseFloat(getComputedStyle(document.getElementById('cpus')).fontSize) >= 1.5 * parseFloat(getComputedStyle(document.body).fontSize)`); !big {
		t.Errorf("the processor count is not prominent (font size under 1.5 times the body's)")
	}
	browserNoErrors(t, ctx)
	browserNoHorizontalScroll(t, ctx)
	png := browserScreenshot(t, ctx, "info")
	browserDocImage(t, "info", png)

	phone := browserNew(t, 390, 844)
	browserOpen(t, phone, base+"/info", "#cpus")
	browserNoHorizontalScroll(t, phone)
	browserScreenshot(t, phone, "info-phone")
}

// (b) The live page against a CLUSTER server: the bars it draws must match
// what the workers themselves counted. Every pid on the page is a real worker
// (a child of the master), on the server's port; the per-pid counts add up to
// the requests the page sent; and each worker's own /metrics counter of
// /api/randoms answers equals the page's count for that pid.
func TestBrowserBalanceClusterMatchesServer(t *testing.T) {
	master, base, port := browserStartCluster(t, 2)
	workers := ChildPids(master.Pid())
	before := balanceWorkerServed(t, base, workers)
	ctx := browserNew(t, 1100, 900)
	browserOpen(t, ctx, base+"/balance", "#start")

	const n = 600
	s := balanceRun(t, ctx, "/api/randoms?cant=100000", 0, 8, n, 90*time.Second)
	if s.Sent != n || s.Done != n || s.OK != n || s.HTTPErrors != 0 || s.NetErrors != 0 || s.Unattributed != 0 {
		t.Fatalf("got %v, want %d requests, all answered 200 with X-Server-Pid", s, n)
	}
	sum := 0
	for _, w := range s.Pids {
		sum += w.Count
		pid, _ := strconv.Atoi(w.Pid)
		if !slices.Contains(workers, pid) {
			t.Errorf("pid %s on the page is not a worker of the master (workers: %v)", w.Pid, workers)
		}
		if w.Port != strconv.Itoa(port) {
			t.Errorf("pid %s: port %s, want %d", w.Pid, w.Port, port)
		}
		if id, _ := strconv.Atoi(w.Worker); id < 1 || id > 2 {
			t.Errorf("pid %s: worker id %q, want 1 or 2", w.Pid, w.Worker)
		}
	}
	if sum != n {
		t.Errorf("per-pid counts add up to %d, want %d", sum, n)
	}
	if len(s.Ports) != 1 || s.Ports[0].Count != n {
		t.Errorf("ports: got %v, want one port with %d", s.Ports, n)
	}
	after := balanceWorkerServed(t, base, workers)
	server := map[string]int{}
	for pid, v := range after {
		if d := v - before[pid]; d != 0 {
			server[pid] = d
		}
	}
	balanceSameCounts(t, s.pidCounts(), server)
	balanceCheckBarsMatchSnapshot(t, ctx, s)
	browserNoErrors(t, ctx)
	png := browserScreenshot(t, ctx, "balance-cluster")
	browserDocImage(t, "balance", png)
}

// Straight against a plain FORK process (issue 7: "directly against FORK or
// CLUSTER"): one bar, for the process itself, labelled worker 0, whose count
// equals the process's own /metrics count.
func TestBrowserBalanceForkMatchesServer(t *testing.T) {
	port := FreePort(t)
	p := StartLB(t, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--mode", "FORK")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	WaitHTTP(t, p, base+"/healthz", 20*time.Second)
	pid := strconv.Itoa(p.Pid())
	before := balanceWorkerServed(t, base, []int{p.Pid()})
	ctx := browserNew(t, 1100, 900)
	browserOpen(t, ctx, base+"/balance", "#start")

	const n = 200
	s := balanceRun(t, ctx, "/api/randoms?cant=10000", 0, 4, n, 60*time.Second)
	if s.Sent != n || s.Done != n || s.OK != n || s.HTTPErrors != 0 || s.NetErrors != 0 || s.Unattributed != 0 {
		t.Fatalf("got %v, want %d requests, all answered 200 with X-Server-Pid", s, n)
	}
	if len(s.Pids) != 1 || s.Pids[0].Pid != pid || s.Pids[0].Worker != "0" || s.Pids[0].Port != strconv.Itoa(port) || s.Pids[0].Count != n {
		t.Errorf("pids on the page: %+v, want one: pid %s, worker 0, port %d, count %d", s.Pids, pid, port, n)
	}
	after := balanceWorkerServed(t, base, []int{p.Pid()})
	balanceSameCounts(t, s.pidCounts(), map[string]int{pid: after[pid] - before[pid]})
	balanceCheckBarsMatchSnapshot(t, ctx, s)
	browserNoErrors(t, ctx)
	browserScreenshot(t, ctx, "balance-fork")
}

// A worker killed and the master reloaded during a run: the page keeps
// running, the dead worker's bar stops growing, its replacement and the
// reloaded workers appear as new pids, and every pid is one the master
// started.
func TestBrowserBalanceClusterKillAndReload(t *testing.T) {
	master, base, _ := browserStartCluster(t, 2)
	ctx := browserNew(t, 1100, 900)
	browserOpen(t, ctx, base+"/balance", "#start")
	seen := map[int]bool{}
	for _, p := range ChildPids(master.Pid()) {
		seen[p] = true
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("path"), "/api/randoms?cant=10000"),
		chromedp.SetValue(chromedp.ID("rate"), "100"),
		chromedp.SetValue(chromedp.ID("concurrency"), "4"),
		chromedp.SetValue(chromedp.ID("limit"), "3000"),
		chromedp.Click(chromedp.ID("start")),
	); err != nil {
		t.Fatal(err)
	}
	snap := func() balanceSnapshot { return browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`) }
	Eventually(t, 30*time.Second, "100 answers", func() bool { return snap().OK >= 100 })

	// Kill the worker that answered most so far.
	var victim balanceWorker
	for _, w := range snap().Pids {
		if w.Count > victim.Count {
			victim = w
		}
	}
	vpid, _ := strconv.Atoi(victim.Pid)
	if err := syscall.Kill(vpid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill worker %d: %v", vpid, err)
	}
	Eventually(t, 20*time.Second, "the master to replace the killed worker", func() bool {
		ps := ChildPids(master.Pid())
		for _, p := range ps {
			seen[p] = true
		}
		return len(ps) == 2 && !slices.Contains(ps, vpid)
	})
	// The killed pid stops growing and falls silent.
	Eventually(t, 20*time.Second, "the killed worker's bar to fall silent", func() bool {
		st := browserEval[string](t, ctx, `(document.querySelector('#pids li[data-pid="`+victim.Pid+`"]')||{dataset:{}}).dataset.state || ''`)
		return st == "silent"
	})
	frozen := snap().pidCounts()[victim.Pid]

	// A rolling reload: every worker is replaced.
	old := ChildPids(master.Pid())
	preReload := map[int]bool{}
	for p := range seen {
		preReload[p] = true
	}
	if err := master.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 40*time.Second, "a reload that replaces every worker", func() bool {
		ps := ChildPids(master.Pid())
		for _, p := range ps {
			seen[p] = true
		}
		return len(ps) == 2 && !slices.Contains(ps, old[0]) && !slices.Contains(ps, old[1])
	})
	// The page sees a new pid (one of the reloaded workers) answer.
	Eventually(t, 30*time.Second, "a bar for a reloaded worker's pid", func() bool {
		for _, b := range balanceBars(t, ctx, "pids") {
			pid, _ := strconv.Atoi(b.Pid)
			if b.Count != "0" && !preReload[pid] {
				return true
			}
		}
		return false
	})
	browserScreenshot(t, ctx, "balance-cluster-kill-reload")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatal(err)
	}
	var s balanceSnapshot
	Eventually(t, 40*time.Second, "the run to stop", func() bool { s = snap(); return !s.Running })

	if got := s.pidCounts()[victim.Pid]; got != frozen {
		t.Errorf("the killed worker %s kept growing: %d after it fell silent, then %d", victim.Pid, frozen, got)
	}
	sum := 0
	for _, w := range s.Pids {
		sum += w.Count
		pid, _ := strconv.Atoi(w.Pid)
		if !seen[pid] {
			t.Errorf("pid %s on the page was never a worker of the master (workers seen: %v)", w.Pid, seen)
		}
	}
	if sum != s.OK+s.HTTPErrors-s.Unattributed || s.Done != s.Sent || s.Done != s.OK+s.HTTPErrors+s.NetErrors {
		t.Errorf("tallies do not add up: %v", s)
	}
	// A kill loses the requests the worker was serving, at most one per
	// connection; a rolling reload loses none.
	t.Logf("run: %d sent, %d OK, %d HTTP errors, %d network errors, %d pids", s.Sent, s.OK, s.HTTPErrors, s.NetErrors, len(s.Pids))
	if s.NetErrors+s.HTTPErrors > 8 {
		t.Errorf("errors: got %d network and %d HTTP, want at most the 8 in flight when the worker died", s.NetErrors, s.HTTPErrors)
	}
	balanceCheckBarsMatchSnapshot(t, ctx, s)
	browserNoErrors(t, ctx)
}
