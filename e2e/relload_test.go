package e2e

// Load generation and process helpers for the reliability tests
// (reliability_test.go, spread_test.go). Names start with rel.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// relLoadOpts describe a bounded client load.
type relLoadOpts struct {
	URL        string
	KeepAlive  int           // clients that each keep one connection open and reuse it
	PerRequest int           // clients that open a new connection for every request
	MaxTime    time.Duration // the load stops by itself after this long
	MaxReqs    int64         // ... or after this many requests in all (0: no count bound)
	Timeout    time.Duration // per request; default 10s (a hung request is a failure)
	Pause      time.Duration // between a client's requests; default none
	// Dial, if set, opens the clients' connections (e.g. inside a network namespace).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// relLoad is a running load. Stop it to get the result.
type relLoad struct {
	opts   relLoadOpts
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
	refuse atomic.Int64
	sent   atomic.Int64

	mu       sync.Mutex // guards errs, byWorker, byPid
	errs     []string
	byWorker map[string]int64
	byPid    map[string]int64
}

// relResult is what a load saw.
type relResult struct {
	OK, Failed, Refused int64
	Errors              []string         // the first few failures, as the client saw them
	ByWorker            map[string]int64 // answers by X-Worker-Id
	ByPid               map[string]int64 // answers by X-Server-Pid
}

func (r relResult) String() string {
	return fmt.Sprintf("ok=%d failed=%d refused=%d workers=%v pids=%d errors=%q",
		r.OK, r.Failed, r.Refused, r.ByWorker, len(r.ByPid), r.Errors)
}

// relStartLoad starts the clients; they run until Stop, MaxTime or MaxReqs.
func relStartLoad(tb testing.TB, o relLoadOpts) *relLoad {
	tb.Helper()
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxTime == 0 {
		o.MaxTime = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.MaxTime)
	l := &relLoad{opts: o, cancel: cancel, byWorker: map[string]int64{}, byPid: map[string]int64{}}
	for i := range o.KeepAlive + o.PerRequest {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
		if i >= o.KeepAlive {
			tr = &http.Transport{DisableKeepAlives: true, DisableCompression: true}
		}
		tr.DialContext = o.Dial
		c := &http.Client{Transport: tr, Timeout: o.Timeout}
		l.wg.Go(func() {
			defer tr.CloseIdleConnections()
			l.client(ctx, c)
		})
	}
	tb.Cleanup(func() { l.Stop() })
	return l
}

func (l *relLoad) client(ctx context.Context, c *http.Client) {
	for ctx.Err() == nil {
		if l.opts.MaxReqs > 0 && l.sent.Add(1) > l.opts.MaxReqs {
			return
		}
		l.one(c)
		if l.opts.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(l.opts.Pause):
			}
		}
	}
}

// one sends one request. It is never cut short by Stop: a request that was
// sent is always waited for, so that Stop does not invent failures.
func (l *relLoad) one(c *http.Client) {
	r, err := c.Get(l.opts.URL)
	if err == nil {
		_, err = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if err == nil && r.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", r.StatusCode)
		}
	}
	if err != nil {
		l.failed.Add(1)
		if errors.Is(err, syscall.ECONNREFUSED) {
			l.refuse.Add(1)
		}
		l.mu.Lock()
		if len(l.errs) < 10 {
			l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
		l.mu.Unlock()
		return
	}
	l.ok.Add(1)
	l.mu.Lock()
	l.byWorker[r.Header.Get("X-Worker-Id")]++
	l.byPid[r.Header.Get("X-Server-Pid")]++
	l.mu.Unlock()
}

// Snapshot returns the counts so far.
func (l *relLoad) Snapshot() relResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return relResult{
		OK: l.ok.Load(), Failed: l.failed.Load(), Refused: l.refuse.Load(),
		Errors:   slices.Clone(l.errs),
		ByWorker: maps.Clone(l.byWorker), ByPid: maps.Clone(l.byPid),
	}
}

// Wait waits until the load ends by itself (MaxReqs or MaxTime).
func (l *relLoad) Wait() relResult {
	l.wg.Wait()
	return l.Snapshot()
}

// Stop ends the load, waits for every client, and returns the result.
func (l *relLoad) Stop() relResult {
	l.cancel()
	l.wg.Wait()
	return l.Snapshot()
}

// relSpread is max/min of the answers per worker (ids 1..n; a worker that
// answered nothing makes it +Inf).
func relSpread(by map[string]int64, n int) (ratio float64, counts []int64) {
	lo, hi := int64(-1), int64(0)
	for id := 1; id <= n; id++ {
		c := by[strconv.Itoa(id)]
		counts = append(counts, c)
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
	}
	if lo <= 0 {
		return math.Inf(1), counts
	}
	return float64(hi) / float64(lo), counts
}

// relBase is the loopback URL of port.
func relBase(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// relWaitWorkers waits until the master has n live children that have
// each logged that they serve (ready).
func relWaitWorkers(tb testing.TB, p *Proc, n int) []int {
	tb.Helper()
	var pids []int
	Eventually(tb, 20*time.Second, fmt.Sprintf("%d workers of master %d", n, p.Pid()), func() bool {
		pids = ChildPids(p.Pid())
		return len(pids) == n
	})
	slices.Sort(pids)
	return pids
}

// relCount counts lines of the process output that contain s.
func relCount(p *Proc, s string) int { return strings.Count(p.Output.String(), s) }

// relWaitLog waits until the output holds s at least n times.
func relWaitLog(tb testing.TB, p *Proc, s string, n int, timeout time.Duration) {
	tb.Helper()
	Eventually(tb, timeout, fmt.Sprintf("%d× %q in the log", n, s), func() bool { return relCount(p, s) >= n })
}

// relExitCode is the exit status of an exited process (-1 if killed by a signal).
func relExitCode(p *Proc) int {
	<-p.Done()
	if p.Cmd.ProcessState == nil {
		return -1
	}
	return p.Cmd.ProcessState.ExitCode()
}

// relCopyBin copies the binary under test into dir, so that a test may
// replace it on disk.
func relCopyBin(tb testing.TB, dir string) string {
	tb.Helper()
	b, err := os.ReadFile(binPath)
	if err != nil {
		tb.Fatal(err)
	}
	out := dir + "/lbserver"
	if err := os.WriteFile(out, b, 0o755); err != nil {
		tb.Fatal(err)
	}
	return out
}

// relReplaceFile atomically replaces path with content (write + rename), as
// a build tool or a deploy does; a running executable cannot be written to.
func relReplaceFile(tb testing.TB, path string, content []byte) {
	tb.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// relDialRefused reports whether a TCP connect to addr is refused now.
func relDialRefused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// relMetric returns the value of an unlabelled metric line in a Prometheus
// text body, or -1.
func relMetric(body, name string) float64 {
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// relWaitBusy waits until some process behind base reports a busy compute
// slot on /metrics (each scrape reaches one worker, so it polls).
func relWaitBusy(tb testing.TB, base string, n float64) {
	tb.Helper()
	Eventually(tb, 15*time.Second, "a heavy request computing", func() bool {
		r, err := Get(base + "/metrics")
		return err == nil && relMetric(string(r.Body), "lbserver_compute_slots_busy") >= n
	})
}
