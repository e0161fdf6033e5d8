package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// info is the part of /api/info the tests read.
type info struct {
	Pid      int    `json:"pid"`
	Ppid     int    `json:"ppid"`
	CPUs     int    `json:"cpus"`
	Mode     string `json:"mode"`
	WorkerID int    `json:"workerId"`
	Port     int    `json:"port"`
	Build    string `json:"build"`
}

func getInfo(tb testing.TB, base string) info {
	tb.Helper()
	r := MustGet(tb, base+"/api/info")
	var in info
	if err := json.Unmarshal(r.Body, &in); err != nil {
		tb.Fatalf("/api/info: %v: %s", err, r.Body)
	}
	return in
}

// startCluster starts a CLUSTER master with n workers on a free loopback
// port and waits until all n workers are running and the port answers. It
// returns the master and the base URL.
func startCluster(tb testing.TB, n int, extra ...string) (*Proc, string) {
	tb.Helper()
	return startClusterBin(tb, binPath, n, extra...)
}

// startClusterBin is startCluster with another lbserver executable (a copy
// that a test may replace on disk).
func startClusterBin(tb testing.TB, bin string, n int, extra ...string) (*Proc, string) {
	tb.Helper()
	port := FreePort(tb)
	args := append([]string{"--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "CLUSTER", "--workers", strconv.Itoa(n)}, extra...)
	p := StartCmd(tb, exec.Command(bin, args...))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	WaitHTTP(tb, p, base+"/healthz", 20*time.Second)
	Eventually(tb, 20*time.Second, fmt.Sprintf("%d workers of master %d", n, p.Pid()), func() bool { return len(ChildPids(p.Pid())) == n })
	return p, base
}

func TestForkIsOneProcess(t *testing.T) {
	port := FreePort(t)
	p := StartLB(t, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "fork")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	WaitHTTP(t, p, base+"/healthz", 10*time.Second)
	in := getInfo(t, base)
	if in.Pid != p.Pid() || in.Mode != "FORK" || in.WorkerID != 0 || in.Port != port {
		t.Errorf("got pid=%d mode=%s worker=%d port=%d, want %d FORK 0 %d", in.Pid, in.Mode, in.WorkerID, in.Port, p.Pid(), port)
	}
	if kids := ChildPids(p.Pid()); len(kids) != 0 {
		t.Errorf("FORK has child processes %v, want none", kids)
	}
	r := MustGet(t, base+"/info")
	if r.Header.Get("X-Server-Port") != strconv.Itoa(port) || r.Header.Get("X-Server-Pid") != strconv.Itoa(p.Pid()) {
		t.Errorf("got X-Server-Port=%q X-Server-Pid=%q, want %d %d", r.Header.Get("X-Server-Port"), r.Header.Get("X-Server-Pid"), port, p.Pid())
	}
}

func TestClusterMasterAndWorkers(t *testing.T) {
	p, base := startCluster(t, 2)
	kids := ChildPids(p.Pid())
	seen := map[int]bool{}
	for range 40 {
		in := getInfo(t, base)
		if in.Pid == p.Pid() {
			t.Fatalf("the master (pid %d) answered; it must serve no HTTP", in.Pid)
		}
		if !slices.Contains(kids, in.Pid) || in.Ppid != p.Pid() || in.Mode != "CLUSTER" || in.WorkerID < 1 || in.WorkerID > 2 {
			t.Fatalf("answered by %+v; want one of the workers %v of master %d", in, kids, p.Pid())
		}
		seen[in.Pid] = true
	}
	if len(seen) < 2 {
		t.Errorf("40 new connections were answered by %d worker(s), want both", len(seen))
	}
}

// TestClusterDefaultWorkersIsNproc: CLUSTER without --workers runs one
// worker per CPU this process may use, as `nproc` (sched_getaffinity)
// counts them from outside the binary; /api/info reports the same count.
func TestClusterDefaultWorkersIsNproc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, requireTool(t, "nproc")).Output()
	if err != nil {
		t.Fatalf("nproc: %v", err)
	}
	want, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || want < 1 {
		t.Fatalf("nproc printed %q", out)
	}
	port := FreePort(t)
	p := StartLB(t, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "CLUSTER")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	WaitHTTP(t, p, base+"/healthz", 20*time.Second)
	relWaitLog(t, p, "worker ready", want, 20*time.Second)
	if got := len(ChildPids(p.Pid())); got != want {
		t.Errorf("CLUSTER without --workers runs %d workers, want %d (nproc)", got, want)
	}
	if got := getInfo(t, base).CPUs; got != want {
		t.Errorf("/api/info cpus = %d, want %d (nproc)", got, want)
	}
}

func TestClusterKilledWorkerIsReplaced(t *testing.T) {
	p, base := startCluster(t, 2)
	kids := ChildPids(p.Pid())
	victim := kids[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "a new worker in place of the killed one", func() bool {
		now := ChildPids(p.Pid())
		return len(now) == 2 && !slices.Contains(now, victim)
	})
	for range 20 {
		if r := MustGet(t, base+"/api/info"); r.Status != 200 {
			t.Fatalf("got %d after a worker was replaced, want 200", r.Status)
		}
	}
	// The master logs the exit (worker id, pid, status), then the new worker
	// (polled: the new pid can show in /proc before its log line is written).
	// On failure StartCmd's cleanup prints the master's output.
	Eventually(t, 5*time.Second, fmt.Sprintf("the master's log of worker pid %d's exit (id, status) and of a new worker", victim), func() bool {
		var exited bool
		for line := range strings.Lines(p.Output.String()) {
			if strings.Contains(line, `msg="worker exited"`) && strings.Contains(line, "worker_pid="+strconv.Itoa(victim)+" ") &&
				strings.Contains(line, "signal: killed") && strings.Contains(line, " worker=") {
				exited = true
			}
			if exited && strings.Contains(line, `msg="worker started"`) && !strings.Contains(line, "worker_pid="+strconv.Itoa(victim)+" ") {
				return true
			}
		}
		return false
	})
}

func TestSIGTERMLeavesNoProcess(t *testing.T) {
	for _, mode := range []string{"FORK", "CLUSTER"} {
		t.Run(mode, func(t *testing.T) {
			port := FreePort(t)
			p := StartLB(t, append([]string{"--port", strconv.Itoa(port), "--host", "127.0.0.1"}, modeArgs(mode, 2)...)...)
			WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 15*time.Second)
			want := 0
			if mode == "CLUSTER" {
				want = 2
			}
			Eventually(t, 10*time.Second, "workers", func() bool { return len(ChildPids(p.Pid())) == want })
			StopAndCheck(t, p, ChildPids(p.Pid()), 20*time.Second)
			if _, err := Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port)); err == nil {
				t.Error("port still answers after SIGTERM")
			}
		})
	}
}

func TestSIGHUPReplacesEveryWorkerWithoutFailures(t *testing.T) {
	p, base := startCluster(t, 2)
	before := ChildPids(p.Pid())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				r, err := Get(base + "/api/info")
				if err != nil || r.Status != 200 {
					if ctx.Err() != nil {
						return
					}
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("err=%v status=%d", err, r.Status))
					continue
				}
				ok.Add(1)
			}
		})
	}
	Eventually(t, 5*time.Second, "client loop running", func() bool { return ok.Load() > 50 })
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 20*time.Second, "every worker replaced", func() bool {
		now := ChildPids(p.Pid())
		if len(now) != 2 {
			return false
		}
		for _, pid := range now {
			if slices.Contains(before, pid) {
				return false
			}
		}
		return true
	})
	atMark := ok.Load()
	Eventually(t, 5*time.Second, "requests served by the new workers", func() bool { return ok.Load() > atMark+50 })
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during the rolling reload (first: %v)", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	t.Logf("%d requests, 0 failed, across a rolling reload of 2 workers", ok.Load())
}

func TestInfoAnswersWhileHeavyRequestRuns(t *testing.T) {
	port := FreePort(t)
	p := StartLB(t, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--max-cant", relMaxCant)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	WaitHTTP(t, p, base+"/healthz", 10*time.Second)
	busy := func() bool {
		r, err := Get(base + "/metrics")
		return err == nil && strings.Contains(string(r.Body), "\nlbserver_compute_slots_busy 1\n")
	}
	// Three requests of relHeavyFor each (sized from a measured rate) queue
	// behind one compute slot: an /info that waited for one would take
	// seconds, far beyond the bound below.
	heavy := relHeavyURL(t, base, relHeavyFor)
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 3 {
		wg.Go(func() { _, _ = Get(heavy) })
	}
	Eventually(t, 10*time.Second, "a heavy request computing", busy)
	// Promptly: a heavy request takes seconds, so an /info that waited for
	// one would take seconds too; 1s leaves room for a busy shared machine.
	const prompt = time.Second
	var slowest time.Duration
	for range 5 {
		start := time.Now()
		r := MustGet(t, base+"/info")
		took := time.Since(start)
		slowest = max(slowest, took)
		if r.Status != 200 || !strings.Contains(string(r.Body), `id="cpus"`) {
			t.Fatalf("/info during a heavy request: got %d", r.Status)
		}
		if took > prompt {
			t.Errorf("/info during a heavy request took %s, want under %s", took.Round(time.Millisecond), prompt)
		}
	}
	t.Logf("slowest of 5 /info during heavy requests: %s", slowest.Round(time.Millisecond))
	if !busy() {
		t.Error("the heavy requests had finished before /info was checked, so this run proves nothing: make the heavy load longer")
	}
}

func TestBadCommandLines(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--mode", "turbo"}, 2, "valid modes are FORK and CLUSTER"},
		{[]string{"--port", "70000"}, 2, "1 to 65535"},
		{[]string{"--nope"}, 2, "not defined"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range tests {
		out, err := exec.CommandContext(ctx, binPath, tt.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tt.code {
			t.Errorf("%q: got %v, want exit status %d", tt.args, err, tt.code)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
			t.Errorf("%q: got output %q, want one line with %q", tt.args, out, tt.want)
		}
	}
	out, err := exec.CommandContext(ctx, binPath, "--port", "8081", "--mode", "cluster", "--check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration ok") {
		t.Errorf("--check: got %v %q, want exit 0 and 'configuration ok'", err, out)
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for _, mode := range []string{"FORK", "CLUSTER"} {
		p := StartLB(t, append([]string{"--port", port, "--host", "127.0.0.1"}, modeArgs(mode, 2)...)...)
		if !p.Wait(10 * time.Second) {
			t.Fatalf("%s: still running with its port in use", mode)
		}
		var ee *exec.ExitError
		if err := p.Err(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%s: got %v, want exit status 1", mode, err)
		}
		out := strings.TrimSpace(p.Output.String())
		if !strings.Contains(out, "address already in use") || strings.Count(out, "\n") != 0 {
			t.Errorf("%s: got %q, want one line naming 'address already in use'", mode, out)
		}
	}
}

func TestHeavyRequestStopsWhenClientLeaves(t *testing.T) {
	port := FreePort(t)
	// 10^12 numbers would take many minutes; only cancellation can end it soon.
	p := StartLB(t, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--max-cant", "1000000000000")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	WaitHTTP(t, p, base+"/healthz", 10*time.Second)
	// busy is the compute gauge as the server reports it; a scrape that
	// fails is an error, never "not busy".
	busy := func() (float64, error) {
		r, err := Get(base + "/metrics")
		if err != nil {
			return 0, err
		}
		if v := relMetric(string(r.Body), "lbserver_compute_slots_busy"); v >= 0 {
			return v, nil
		}
		return 0, fmt.Errorf("no lbserver_compute_slots_busy in /metrics (status %d)", r.Status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/randoms?cant=1000000000000", nil)
		if r, err := client.Do(req); err == nil {
			r.Body.Close()
		}
	}()
	Eventually(t, 10*time.Second, "the heavy request computing", func() bool { v, err := busy(); return err == nil && v == 1 })
	cancel()
	<-done
	var last error
	Eventually(t, 10*time.Second, "the computation to stop after the client left (gauge read from a live server)", func() bool {
		v, err := busy()
		last = err
		return err == nil && v == 0
	})
	if last != nil {
		t.Fatal(last)
	}
	// The process is still the one we started, and it still computes.
	select {
	case <-p.Done():
		t.Fatalf("the server exited: %v", p.Err())
	default:
	}
	if r := MustGet(t, base+"/api/randoms?cant=1000"); r.Status != http.StatusOK || r.Header.Get("X-Server-Pid") != strconv.Itoa(p.Pid()) {
		t.Errorf("after the cancelled request: status %d from pid %q, want 200 from %d", r.Status, r.Header.Get("X-Server-Pid"), p.Pid())
	}
}
