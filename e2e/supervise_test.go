package e2e

// The master's supervision beyond exits (cluster/health.go, recycle.go,
// scale.go): a stuck worker is killed and replaced, workers are recycled
// after requests or above a memory size, and the number of workers
// changes at run time, each under load with no failed request.

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// supCall is one request of supLoad: when it was sent and how it ended.
type supCall struct {
	Sent time.Time
	Err  error
}

// supLoad runs clients (half keep-alive, half a new connection per request)
// on url until stop; each request's send time and outcome are kept.
type supLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards calls
	calls  []supCall
}

func supStartLoad(tb testing.TB, url string, clients int, maxTime time.Duration) *supLoad {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), maxTime)
	l := &supLoad{cancel: cancel}
	for i := range clients {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableKeepAlives: i%2 == 1}
		c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		l.wg.Go(func() {
			defer tr.CloseIdleConnections()
			for ctx.Err() == nil {
				sent := time.Now()
				r, err := c.Get(url)
				if err == nil {
					r.Body.Close()
					if r.StatusCode != http.StatusOK {
						err = relStatusError(r.StatusCode)
					}
				}
				l.mu.Lock()
				l.calls = append(l.calls, supCall{sent, err})
				l.mu.Unlock()
			}
		})
	}
	tb.Cleanup(l.stop)
	return l
}

func (l *supLoad) stop() { l.cancel(); l.wg.Wait() }

// counts are the answered and failed requests so far.
func (l *supLoad) counts() (ok, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.calls {
		if c.Err == nil {
			ok++
		} else {
			failed++
		}
	}
	return ok, failed
}

// flowing waits until n more requests have been answered.
func (l *supLoad) flowing(tb testing.TB, n int) {
	tb.Helper()
	before, _ := l.counts()
	Eventually(tb, 20*time.Second, fmt.Sprintf("%d more answers", n), func() bool {
		ok, _ := l.counts()
		return ok >= before+n
	})
}

// supLogTime is the time of the first master log line that matches re.
func supLogTime(tb testing.TB, p *Proc, re string) time.Time {
	tb.Helper()
	m := regexp.MustCompile(`time=(\S+) [^\n]*` + re).FindStringSubmatch(p.Output.String())
	if m == nil {
		tb.Fatalf("no log line matches %q", re)
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		tb.Fatal(err)
	}
	return at
}

// TestSuperviseStoppedWorkerIsReplaced: SIGSTOP on one of two workers
// under 8 clients. With --health-interval 500ms --health-misses 3 the
// master kills it within 500ms × 3 + 1s of the stop, another worker adopts
// its slot at that moment, and a new worker serves it; no request sent
// after the adoption fails (the requests the stopped worker had taken are
// the only ones that may: it is killed, it cannot drain).
func TestSuperviseStoppedWorkerIsReplaced(t *testing.T) {
	const interval, misses = 500 * time.Millisecond, 3
	p, base := startCluster(t, 2, "--health-interval", interval.String(), "--health-misses", strconv.Itoa(misses))
	pids := relWaitWorkers(t, p, 2)
	load := supStartLoad(t, base+relLight, 8, 60*time.Second)
	load.flowing(t, 100)
	victim := pids[1]
	stoppedAt := time.Now()
	if err := syscall.Kill(victim, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	relWaitState(t, victim, 'T')
	relWaitLog(t, p, "worker unresponsive; killing it", 1, 10*time.Second)
	killedAt := supLogTime(t, p, `msg="worker unresponsive; killing it"[^\n]*worker_pid=`+strconv.Itoa(victim))
	relWaitLog(t, p, "reason=unresponsive", 1, 10*time.Second)
	Eventually(t, 10*time.Second, "a new worker for the slot", func() bool {
		now := ChildPids(p.Pid())
		return len(now) == 2 && !slices.Contains(now, victim)
	})
	relWaitLog(t, p, "slot served by its own worker again", 1, 10*time.Second)
	load.flowing(t, 200)
	load.stop()
	took := killedAt.Sub(stoppedAt)
	bound := interval*misses + time.Second
	if took > bound {
		t.Errorf("stopped worker killed %s after the stop, want within %s", took.Round(time.Millisecond), bound)
	}
	if relCount(p, `msg="worker adopts orphaned slot`) == 0 {
		t.Errorf("no adoption of the stopped worker's slot logged")
	}
	ok, failed := load.counts()
	var late []string
	for _, c := range load.calls {
		if c.Err != nil && !c.Sent.Before(killedAt) {
			late = append(late, c.Sent.Format("15:04:05.000")+" "+c.Err.Error())
		}
	}
	readyAt := supLogTime(t, p, `msg="slot served by its own worker again"`)
	t.Logf("SIGSTOP at %s, killed and adopted %s later (bound %s), new worker ready %s after the stop; %d answered, %d failed (sent before the adoption, to the stopped worker)",
		stoppedAt.Format("15:04:05.000"), took.Round(time.Millisecond), bound, readyAt.Sub(stoppedAt).Round(time.Millisecond), ok, failed)
	if len(late) > 0 {
		t.Errorf("%d requests sent after the adoption failed: %q", len(late), late)
	}
	if failed > 8 {
		t.Errorf("%d requests failed, want at most one per client (8)", failed)
	}
}

// TestSuperviseBusyWorkerIsHealthy: ten clients that each ask for the
// default /api/randoms again and again keep both workers computing for 8
// health intervals (checks every second, 5 times more often than the
// default): no worker is ever unresponsive, every request answers.
func TestSuperviseBusyWorkerIsHealthy(t *testing.T) {
	const interval, busy = time.Second, 8 * time.Second
	p, base := startCluster(t, 2, "--health-interval", interval.String(), "--health-misses", "3")
	pids := relWaitWorkers(t, p, 2)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards answered, errs
	answered, errs := 0, []error(nil)
	start := time.Now()
	for range 10 {
		wg.Go(func() {
			c := &http.Client{Timeout: 2 * time.Minute}
			for time.Since(start) < busy {
				r, err := c.Get(base + "/api/randoms")
				if err == nil {
					r.Body.Close()
					if r.StatusCode != http.StatusOK {
						err = relStatusError(r.StatusCode)
					}
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					answered++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("heavy request: %v", err)
	}
	t.Logf("10 clients of default /api/randoms for %s: %d answered, %d failed; health-check misses logged: %d",
		time.Since(start).Round(time.Millisecond), answered, len(errs), relCount(p, "missed a health check"))
	if answered < 20 {
		t.Errorf("only %d heavy requests answered: the workers were not kept busy", answered)
	}
	if n := relCount(p, "worker unresponsive"); n != 0 {
		t.Errorf("%d busy workers killed as unresponsive", n)
	}
	if now := relWaitWorkers(t, p, 2); !slices.Equal(now, pids) {
		t.Errorf("workers %v after the load, want the same %v", now, pids)
	}
}

// supCommand runs `lbserver VERB PID ARG`.
func supCommand(tb testing.TB, verb string, pid, arg int) {
	tb.Helper()
	out, err := exec.Command(binPath, verb, strconv.Itoa(pid), strconv.Itoa(arg)).CombinedOutput()
	if err != nil {
		tb.Fatalf("lbserver %s %d %d: %v: %s", verb, pid, arg, err, out)
	}
}

// supWaitCount waits until the master has n workers, each ready, and
// /api/info and the master's /metrics say n.
func supWaitCount(tb testing.TB, p *Proc, base, metrics string, n int) {
	tb.Helper()
	relWaitWorkers(tb, p, n)
	want := `"workers":` + strconv.Itoa(n) + `}`
	Eventually(tb, 20*time.Second, "/api/info and /metrics showing "+strconv.Itoa(n)+" workers", func() bool {
		for range 2 * n {
			r, err := Get(base + "/api/info")
			if err != nil || !regexp.MustCompile(regexp.QuoteMeta(want)).Match(r.Body) {
				return false
			}
		}
		r, err := Get(metrics)
		return err == nil && relMetric(string(r.Body), "lbserver_master_workers") == float64(n) &&
			relMetric(string(r.Body), "lbserver_master_workers_live") == float64(n)
	})
}

// TestSuperviseScale: 2 -> 4 -> 1 -> 2 workers with `lbserver scale`, 5
// times, then SIGTTIN (3) and SIGTTOU (2), then `lbserver restart-worker`
// of worker 1, under 16 clients: no failed request, no refused connection.
func TestSuperviseScale(t *testing.T) {
	mport := FreePort(t)
	metrics := "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
	p, base := startCluster(t, 2, "--max-workers", "4", "--master-metrics", "127.0.0.1:"+strconv.Itoa(mport))
	load := relStartLoad(t, relLoadOpts{URL: base + relLight, KeepAlive: 8, PerRequest: 8, MaxTime: 120 * time.Second})
	Eventually(t, 10*time.Second, "requests flowing", func() bool { return load.Snapshot().OK > 100 })
	step := func(n int, act func()) {
		t.Helper()
		before := load.Snapshot().OK
		act()
		supWaitCount(t, p, base, metrics, n)
		Eventually(t, 20*time.Second, "requests flowing", func() bool { return load.Snapshot().OK > before+300 })
	}
	const cycles = 5
	for range cycles {
		for _, n := range []int{4, 1, 2} {
			step(n, func() { supCommand(t, "scale", p.Pid(), n) })
		}
	}
	step(3, func() { _ = p.Signal(syscall.SIGTTIN) })
	step(2, func() { _ = p.Signal(syscall.SIGTTOU) })
	first := regexp.MustCompile(`msg="worker ready"[^\n]*worker=1 worker_pid=(\d+)`).FindStringSubmatch(p.Output.String())
	if first == nil {
		t.Fatal("no worker 1 in the log")
	}
	w1, _ := strconv.Atoi(first[1])
	step(2, func() { supCommand(t, "restart-worker", p.Pid(), 1) })
	Eventually(t, 20*time.Second, "worker 1 replaced", func() bool { return !slices.Contains(ChildPids(p.Pid()), w1) && len(ChildPids(p.Pid())) == 2 })
	res := load.Stop()
	t.Logf("scale 2 -> 4 -> 1 -> 2 %d times, SIGTTIN, SIGTTOU, restart-worker 1 under 16 clients: %s", cycles, res)
	relAssertNoLoss(t, res)
	if n, want := relCount(p, `reason="scaled down"`), cycles*3+1; n != want {
		t.Errorf("%d workers exited scaled down, want %d (4 -> 1 each cycle, then 3 -> 2)", n, want)
	}
}

// TestSuperviseRecycle: workers recycled after --max-requests (with
// jitter) and above --max-memory (1M: every worker is above it, so they are
// replaced over and over, one at a time), under 8 clients: at least 4
// recycles each, no failed request.
func TestSuperviseRecycle(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"max-requests", []string{"--max-requests", "300", "--max-requests-jitter", "100"}},
		{"max-memory", []string{"--max-memory", "1M"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, base := startCluster(t, 2, tc.args...)
			load := relStartLoad(t, relLoadOpts{URL: base + relLight, KeepAlive: 4, PerRequest: 4, MaxTime: 90 * time.Second})
			recycled := regexp.MustCompile(`msg="worker exited"[^\n]*reason=recycled`)
			Eventually(t, 60*time.Second, "4 workers recycled", func() bool {
				return len(recycled.FindAllString(p.Output.String(), -1)) >= 4
			})
			res := load.Stop()
			n := len(recycled.FindAllString(p.Output.String(), -1))
			t.Logf("%v: %d workers recycled under 8 clients: %s", tc.args, n, res)
			relAssertNoLoss(t, res)
			if len(res.ByPid) < 5 {
				t.Errorf("answers from %d worker pids, want at least 5 (2 first workers, 4 replacements, one may not have answered yet)", len(res.ByPid))
			}
			if n := relCount(p, "reason=crashed"); n != 0 {
				t.Errorf("%d workers crashed", n)
			}
		})
	}
}
