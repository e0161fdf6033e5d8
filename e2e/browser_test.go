package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/lbserver/lbserver/internal/balancepage"
)

// balanceFake is a test backend that behaves like a CLUSTER as the page sees
// it: every connection is served by one "worker" (pids handed out round robin
// per connection, as a kernel hands connections to workers), every answer
// carries X-Server-Port/X-Server-Pid/X-Worker-Id, and it counts, per pid,
// the answers it sent. reload() makes a new generation of pids: the old
// connections get "Connection: close" on their next answer, like a draining
// worker, and new connections go to new pids.
type balanceFake struct {
	srv  *httptest.Server
	port string

	mu      sync.Mutex     // guards the fields below
	gen     int            // current generation of pids
	conns   int            // connections accepted
	answers map[string]int // pid -> answers sent on /api/*
}

type balanceFakeConnKey struct{}

type balanceFakeConn struct{ gen, n int }

func balanceNewFake(t *testing.T, workers int) *balanceFake {
	t.Helper()
	f := &balanceFake{answers: map[string]int{}}
	mux := http.NewServeMux()
	page := balancepage.Handler()
	mux.Handle("GET /balance", page)
	mux.Handle("GET /balance/", page)
	mux.HandleFunc("GET /api/randoms", func(w http.ResponseWriter, r *http.Request) {
		f.answer(w, r, workers, http.StatusOK, `{"1":1}`)
	})
	mux.HandleFunc("GET /api/fail", func(w http.ResponseWriter, r *http.Request) {
		f.answer(w, r, workers, http.StatusInternalServerError, `{"error":"internal error"}`)
	})
	mux.HandleFunc("GET /api/drop", func(w http.ResponseWriter, r *http.Request) {
		// A process killed mid-request: the connection closes, no answer.
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.conns++
		return context.WithValue(ctx, balanceFakeConnKey{}, balanceFakeConn{gen: f.gen, n: f.conns})
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	_, f.port, _ = net.SplitHostPort(f.srv.Listener.Addr().String())
	return f
}

func (f *balanceFake) answer(w http.ResponseWriter, r *http.Request, workers, status int, body string) {
	c := r.Context().Value(balanceFakeConnKey{}).(balanceFakeConn)
	worker := 1 + c.n%workers
	pid := strconv.Itoa(1000*(c.gen+1) + worker)
	f.mu.Lock()
	f.answers[pid]++
	stale := c.gen != f.gen
	f.mu.Unlock()
	h := w.Header()
	h.Set("X-Server-Port", f.port)
	h.Set("X-Server-Pid", pid)
	h.Set("X-Worker-Id", strconv.Itoa(worker))
	h.Set("Content-Type", "application/json")
	if stale {
		h.Set("Connection", "close")
	}
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (f *balanceFake) reload() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
}

func (f *balanceFake) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]int, len(f.answers))
	for k, v := range f.answers {
		m[k] = v
	}
	return m
}

func (f *balanceFake) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.answers)
}

// balanceSameCounts fails unless the page's per-pid tallies equal the server's.
func balanceSameCounts(t *testing.T, page, server map[string]int) {
	t.Helper()
	if fmt.Sprint(page) != fmt.Sprint(server) {
		t.Errorf("answers per pid: the page counted %v, the server sent %v", page, server)
	}
}

// The page's accounting, checked against a backend that knows exactly what it
// sent: per-pid counts, HTTP errors and network errors apart, the rate limit,
// a same-origin guard, and a "reload" in the middle of a run (old pids fall
// silent, new pids appear, nothing is lost).
func TestBrowserBalancePageCountsEveryAnswer(t *testing.T) {
	f := balanceNewFake(t, 3)
	ctx := browserNew(t, 1100, 900)
	browserOpen(t, ctx, f.srv.URL+"/balance", "#start")

	t.Run("every answer is counted for the pid that sent it", func(t *testing.T) {
		f.reset()
		s := balanceRun(t, ctx, "/api/randoms?cant=10", 0, 6, 120, 60*time.Second)
		if s.Sent != 120 || s.Done != 120 || s.OK != 120 || s.HTTPErrors != 0 || s.NetErrors != 0 {
			t.Fatalf("got %v, want 120 sent, answered and OK, no errors", s)
		}
		balanceSameCounts(t, s.pidCounts(), f.counts())
		if len(s.Ports) != 1 || s.Ports[0].Port != f.port || s.Ports[0].Count != 120 {
			t.Errorf("ports: got %v, want one bar for port %s with 120", s.Ports, f.port)
		}
		if s.LatencyMs.P50 == nil || s.LatencyMs.P99 == nil || *s.LatencyMs.P50 > *s.LatencyMs.P99 {
			t.Errorf("latency: got p50 %v p99 %v, want both set and p50 <= p99", s.LatencyMs.P50, s.LatencyMs.P99)
		}
		balanceCheckBarsMatchSnapshot(t, ctx, s)
		if got := browserEval[string](t, ctx, `document.getElementById('stat-done').textContent`); got != "120" {
			t.Errorf("Answered shows %q, want 120", got)
		}
		if got := browserEval[string](t, ctx, `document.getElementById('status').textContent`); !strings.Contains(got, "120 answered") {
			t.Errorf("status line: got %q, want it to say 120 answered", got)
		}
	})

	t.Run("non-2xx and network errors are counted apart", func(t *testing.T) {
		f.reset()
		s := balanceRun(t, ctx, "/api/fail", 0, 2, 10, 30*time.Second)
		if s.Done != 10 || s.OK != 0 || s.HTTPErrors != 10 || s.NetErrors != 0 || s.Statuses["500"] != 10 {
			t.Errorf("got %v, want 10 HTTP errors (status 500), no network error", s)
		}
		balanceSameCounts(t, s.pidCounts(), f.counts())
		s = balanceRun(t, ctx, "/api/drop", 0, 2, 6, 30*time.Second)
		if s.Done != 6 || s.NetErrors != 6 || s.HTTPErrors != 0 || len(s.Pids) != 0 {
			t.Errorf("got %v, want 6 network errors and no pid", s)
		}
		if got := browserEval[string](t, ctx, `document.getElementById('stat-net').textContent`); got != "6" {
			t.Errorf("Network errors shows %q, want 6", got)
		}
	})

	t.Run("the rate limit holds", func(t *testing.T) {
		start := time.Now()
		s := balanceRun(t, ctx, "/api/randoms", 20, 4, 20, 30*time.Second)
		// 20 requests at 20/s: the last one leaves 0.95 s after the first.
		if d := time.Since(start); d < 900*time.Millisecond || s.OK != 20 {
			t.Errorf("20 requests at 20/s took %s with %d OK, want at least 0.9 s and 20 OK", d, s.OK)
		}
	})

	t.Run("other origins are refused", func(t *testing.T) {
		before := browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`)
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.ID("path"), "http://192.0.2.1/api/randoms"),
			chromedp.Click(chromedp.ID("start")),
		); err != nil {
			t.Fatal(err)
		}
		msg := browserEval[string](t, ctx, `document.getElementById('form-error').hidden ? '' : document.getElementById('form-error').textContent`)
		if !strings.Contains(msg, "same-origin") {
			t.Errorf("form error: got %q, want a same-origin message", msg)
		}
		if s := browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`); s.Running || s.Sent != before.Sent {
			t.Errorf("got %v, want no run and nothing more sent than before (%d)", s, before.Sent)
		}
	})

	t.Run("a reload mid-run shows new pids and silent old ones", func(t *testing.T) {
		f.reset()
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.ID("path"), "/api/randoms"),
			chromedp.SetValue(chromedp.ID("rate"), "100"),
			chromedp.SetValue(chromedp.ID("concurrency"), "4"),
			chromedp.SetValue(chromedp.ID("limit"), "600"),
			chromedp.Click(chromedp.ID("start")),
		); err != nil {
			t.Fatal(err)
		}
		snap := func() balanceSnapshot { return browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`) }
		Eventually(t, 20*time.Second, "100 answers", func() bool { return snap().Done >= 100 })
		old := snap().pidCounts()
		f.reload()
		Eventually(t, 20*time.Second, "a new pid, and the old ones silent, on the page", func() bool {
			s := snap()
			if !s.Running {
				t.Fatalf("the run ended before the check: %v", s)
			}
			var fresh, silentOld bool
			for _, w := range s.Pids {
				_, wasOld := old[w.Pid]
				fresh = fresh || !wasOld
				bar := browserEval[string](t, ctx, `(document.querySelector('#pids li[data-pid="`+w.Pid+`"]')||{dataset:{}}).dataset.state || ''`)
				silentOld = silentOld || (wasOld && bar == "silent")
			}
			return fresh && silentOld
		})
		browserScreenshot(t, ctx, "balance-fake-reload")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
			t.Fatal(err)
		}
		var s balanceSnapshot
		Eventually(t, 20*time.Second, "the run to stop", func() bool { s = snap(); return !s.Running })
		if s.NetErrors != 0 || s.HTTPErrors != 0 || s.OK != s.Sent {
			t.Errorf("got %v, want every request answered OK across the reload", s)
		}
		balanceSameCounts(t, s.pidCounts(), f.counts())
		balanceCheckBarsMatchSnapshot(t, ctx, s)
	})
	browserNoErrors(t, ctx)
}

// The balance page on a phone-sized screen: no sideways scrolling, controls
// usable.
func TestBrowserBalancePagePhone(t *testing.T) {
	f := balanceNewFake(t, 2)
	ctx := browserNew(t, 390, 844)
	browserOpen(t, ctx, f.srv.URL+"/balance", "#start")
	s := balanceRun(t, ctx, "/api/randoms", 0, 4, 40, 30*time.Second)
	if s.OK != 40 {
		t.Fatalf("got %v, want 40 OK", s)
	}
	browserNoHorizontalScroll(t, ctx)
	// The Start button is at least 40 px high: a finger can hit it.
	if h := browserEval[float64](t, ctx, `document.getElementById('start').getBoundingClientRect().height`); h < 40 {
		t.Errorf("Start button height: got %.0f px, want at least 40", h)
	}
	browserScreenshot(t, ctx, "balance-phone")
	browserNoErrors(t, ctx)

	// The form fills from the query string and can start by itself; in dark
	// mode (artifact only: look at it).
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
	}); err != nil {
		t.Fatal(err)
	}
	browserOpen(t, ctx, f.srv.URL+"/balance?path=/api/fail&rate=0&concurrency=2&limit=7&autostart=1", "#start")
	var got balanceSnapshot
	Eventually(t, 30*time.Second, "the autostarted run to finish", func() bool {
		got = browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`)
		return !got.Running && got.Done == 7
	})
	if got.HTTPErrors != 7 {
		t.Errorf("autostart with path=/api/fail limit=7: got %v, want 7 HTTP errors", got)
	}
	browserNoHorizontalScroll(t, ctx)
	browserScreenshot(t, ctx, "balance-phone-dark")
	browserNoErrors(t, ctx)
}

// A link with autostart=1 (anyone can send one) starts a bounded run only:
// it ends by itself after a few hundred requests even when the link asks for
// no limit or a huge one, and the form shows the bound; a visitor who then
// presses Start runs as long as they ask.
func TestBrowserBalanceAutostartIsBounded(t *testing.T) {
	f := balanceNewFake(t, 2)
	ctx := browserNew(t, 1100, 900)
	for _, q := range []string{"limit=0", "limit=100000000", ""} {
		browserOpen(t, ctx, f.srv.URL+"/balance?path=/api/info&rate=0&concurrency=4&autostart=1&"+q, "#start")
		var got balanceSnapshot
		Eventually(t, 60*time.Second, "the autostarted run ("+q+") to end by itself", func() bool {
			got = browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`)
			return !got.Running && got.Done > 0
		})
		if got.Sent > 300 {
			t.Errorf("autostart with %q sent %d requests, want at most 300", q, got.Sent)
		}
		if limit := browserEval[string](t, ctx, `document.getElementById('limit').value`); limit != "300" {
			t.Errorf("autostart with %q: the form's limit reads %q, want 300 (the bound, shown)", q, limit)
		}
		browserNoErrors(t, ctx)
	}
	// The visitor presses Start with no limit: no bound.
	browserEval[bool](t, ctx, `window.lbBalance.start({limit: 0})`)
	Eventually(t, 60*time.Second, "a run started by the visitor to pass 300 requests", func() bool {
		return browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`).Sent > 600
	})
	browserEval[bool](t, ctx, `window.lbBalance.stop()`)
	Eventually(t, 30*time.Second, "the visitor's run to stop", func() bool {
		return !browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`).Running
	})
}
