package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nproc is the number of CPUs this process may run on, as coreutils'
// nproc counts them (sched_getaffinity): the expectation comes from outside
// the code under test.
func nproc(tb testing.TB) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nproc").Output()
	if err != nil {
		tb.Fatalf("nproc: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n < 1 {
		tb.Fatalf("nproc printed %q", out)
	}
	return n
}

func newTestServer(tb testing.TB) *Server {
	tb.Helper()
	s := New(Options{Mode: "FORK", Port: 8080, Args: []string{"--port", "8080"}, Build: "abc123",
		MaxCant: 1_000_000_000, DefaultCant: 20_000, Slots: 1, Queue: 4})
	s.SetReady(true)
	return s
}

func do(tb testing.TB, h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	tb.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestRoutes(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		method, target string
		status         int
		ctype          string
		allow          string
	}{
		{"GET", "/", 200, "text/html", ""},
		{"GET", "/info", 200, "text/html", ""},
		{"GET", "/api/info", 200, "application/json", ""},
		{"GET", "/api/randoms?cant=1000", 200, "application/json", ""},
		{"GET", "/healthz", 200, "application/json", ""},
		{"GET", "/livez", 200, "application/json", ""},
		{"GET", "/readyz", 200, "application/json", ""},
		{"POST", "/readyz", 405, "application/json", "GET, HEAD"},
		{"GET", "/metrics", 200, "text/plain", ""},
		{"HEAD", "/info", 200, "text/html", ""},
		{"POST", "/info", 405, "application/json", "GET, HEAD"},
		{"DELETE", "/api/randoms", 405, "application/json", "GET, HEAD"},
		{"PUT", "/", 405, "application/json", "GET, HEAD"},
		{"GET", "/nope", 404, "application/json", ""},
		{"GET", "/info/extra", 404, "application/json", ""},
	}
	for _, tt := range tests {
		w := do(t, s, tt.method, tt.target)
		if w.Code != tt.status {
			t.Errorf("%s %s: got status %d, want %d", tt.method, tt.target, w.Code, tt.status)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
			t.Errorf("%s %s: got Content-Type %q, want %s", tt.method, tt.target, ct, tt.ctype)
		}
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: got Allow %q, want %q", tt.method, tt.target, got, tt.allow)
		}
		if got := w.Header().Get("X-Server-Port"); got != "8080" {
			t.Errorf("%s %s: got X-Server-Port %q, want 8080", tt.method, tt.target, got)
		}
		if got := w.Header().Get("X-Server-Pid"); got == "" {
			t.Errorf("%s %s: no X-Server-Pid", tt.method, tt.target)
		}
		if tt.status >= 400 {
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Errorf("%s %s: got body %q, want a JSON error", tt.method, tt.target, w.Body.String())
			}
		}
	}
}

func TestAPIInfo(t *testing.T) {
	s := newTestServer(t)
	for _, w := range []*httptest.ResponseRecorder{
		do(t, s, "GET", "/api/info"),
		do(t, s, "GET", "/info", "Accept", "application/json"),
	} {
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", w.Body.String(), err)
		}
		for _, k := range []string{"args", "platform", "goVersion", "rssBytes", "execPath", "pid", "cwd", "cpus", "mode", "workerId", "port", "uptimeSeconds", "build"} {
			if _, ok := m[k]; !ok {
				t.Errorf("missing key %q in %s", k, w.Body.String())
			}
		}
		if got, want := m["cpus"].(float64), nproc(t); int(got) != want {
			t.Errorf("got cpus %v, want %d (nproc)", got, want)
		}
		if got := m["rssBytes"].(float64); got <= 0 {
			t.Errorf("got rssBytes %v, want > 0", got)
		}
		if m["mode"] != "FORK" || m["build"] != "abc123" {
			t.Errorf("got mode %v build %v, want FORK abc123", m["mode"], m["build"])
		}
	}
}

func TestInfoHTML(t *testing.T) {
	s := newTestServer(t)
	w := do(t, s, "GET", "/info", "Accept", "text/html")
	body := w.Body.String()
	want := `id="cpus">` + strconv.Itoa(nproc(t)) + `<`
	if !strings.Contains(body, want) {
		t.Errorf("/info does not show the processor count (%s)", want)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
		if w.Header().Get(h) == "" {
			t.Errorf("/info lacks %s", h)
		}
	}
	if !strings.Contains(body, "--port") || !strings.Contains(body, runtime.Version()) {
		t.Error("/info lacks the arguments or the Go version")
	}
}

func TestRandoms(t *testing.T) {
	s := newTestServer(t)
	for _, tt := range []struct {
		target string
		n      uint64
	}{
		{"/api/randoms?cant=1", 1},
		{"/api/randoms?cant=123457", 123457},
		{"/api/randoms", 20_000}, // the configured default
	} {
		w := do(t, s, "GET", tt.target)
		if w.Code != 200 {
			t.Fatalf("%s: got %d, want 200: %s", tt.target, w.Code, w.Body.String())
		}
		var m map[string]uint64
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s: invalid JSON: %v", tt.target, err)
		}
		var sum uint64
		for k, v := range m {
			n, err := strconv.Atoi(k)
			if err != nil || n < 1 || n > 1000 {
				t.Errorf("%s: key %q outside 1..1000", tt.target, k)
			}
			sum += v
		}
		if sum != tt.n {
			t.Errorf("%s: values sum to %d, want %d", tt.target, sum, tt.n)
		}
		// Keys in ascending numeric order in the raw body.
		prev := 0
		for _, part := range strings.Split(strings.Trim(w.Body.String(), "{}"), ",") {
			k, _ := strconv.Atoi(strings.Trim(strings.SplitN(part, ":", 2)[0], `"`))
			if k <= prev {
				t.Fatalf("%s: keys not ascending at %d after %d", tt.target, k, prev)
			}
			prev = k
		}
	}
}

func TestRandomsBadCant(t *testing.T) {
	s := newTestServer(t)
	for _, q := range []string{"cant=-5", "cant=0", "cant=abc", "cant=1.5", "cant=1e9", "cant=", "cant=1&cant=2",
		"cant=99999999999999999999", "cant=1000000001", "cant=+5", "cant=%205"} {
		w := do(t, s, "GET", "/api/randoms?"+q)
		if w.Code != 400 {
			t.Errorf("%s: got %d, want 400", q, w.Code)
			continue
		}
		var e struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, "1 to 1000000000") {
			t.Errorf("%s: got %q, want a JSON error naming the allowed range", q, w.Body.String())
		}
	}
}

func TestHealthzNotReady(t *testing.T) {
	s := New(Options{Mode: "FORK", Port: 1, MaxCant: 10, DefaultCant: 10})
	if w := do(t, s, "GET", "/healthz"); w.Code != 503 {
		t.Errorf("got %d before ready, want 503", w.Code)
	}
}

// /readyz follows the process's life: 503 before it serves, 200 while it
// does, 503 from the start of a stop while every other route still answers;
// /livez answers 200 throughout, /healthz keeps its old meaning.
func TestReadyzAndLivezThroughALife(t *testing.T) {
	s := New(Options{Mode: "FORK", Port: 1, MaxCant: 10, DefaultCant: 10, Slots: 1, Queue: 1})
	type want struct{ livez, readyz, healthz, randoms int }
	check := func(stage string, w want) {
		t.Helper()
		for _, c := range []struct {
			path string
			want int
		}{{"/livez", w.livez}, {"/readyz", w.readyz}, {"/healthz", w.healthz}, {"/api/randoms?cant=5", w.randoms}} {
			if got := do(t, s, "GET", c.path).Code; got != c.want {
				t.Errorf("%s: GET %s: got %d, want %d", stage, c.path, got, c.want)
			}
		}
	}
	check("before SetReady", want{200, 503, 503, 200})
	s.SetReady(true)
	check("serving", want{200, 200, 200, 200})
	s.SetStopping()
	check("stopping", want{200, 503, 200, 200})
	var e struct{ Error string }
	if err := json.Unmarshal(do(t, s, "GET", "/readyz").Body.Bytes(), &e); err != nil || e.Error != "stopping" {
		t.Errorf("stopping: /readyz body %+v (%v), want error \"stopping\"", e, err)
	}
	s.SetReady(true)
	check("SetReady after stopping", want{200, 503, 200, 200})
}

func TestMetricsCountRequests(t *testing.T) {
	s := newTestServer(t)
	do(t, s, "GET", "/api/randoms?cant=500")
	do(t, s, "GET", "/api/randoms?cant=abc")
	body := do(t, s, "GET", "/metrics").Body.String()
	for _, want := range []string{
		`lbserver_http_requests_total{code="200",route="GET /api/randoms"} 1`,
		`lbserver_http_requests_total{code="400",route="GET /api/randoms"} 1`,
		`lbserver_randoms_numbers_drawn_total 500`,
		`lbserver_compute_slots 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestRandomsUniform checks that for a large N every number 1..1000 is
// drawn, each close to N/1000 (issue 2). With N = 2,000,000 each count is
// binomial with mean 2000 and sd about 45; +-15% (300) is more than 6 sd, so
// a fair generator fails this about once in 10^8 runs, while a skewed or
// truncated range (a key missing, a number never drawn) fails it always.
func TestRandomsUniform(t *testing.T) {
	const n, keys = 2_000_000, 1000
	s := newTestServer(t)
	w := do(t, s, "GET", "/api/randoms?cant="+strconv.Itoa(n))
	if w.Code != 200 {
		t.Fatalf("got %d, want 200: %s", w.Code, w.Body.String())
	}
	var m map[string]uint64
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	if len(m) != keys {
		t.Errorf("got %d distinct numbers, want %d", len(m), keys)
	}
	const want, tol = n / keys, n / keys * 15 / 100
	lo, hi := uint64(n), uint64(0)
	for k := 1; k <= keys; k++ {
		v := m[strconv.Itoa(k)]
		lo, hi = min(lo, v), max(hi, v)
		if v < want-tol || v > want+tol {
			t.Errorf("number %d drawn %d times, want %d +- %d", k, v, want, tol)
		}
	}
	t.Logf("N=%d: counts from %d to %d (expected %d each)", n, lo, hi, want)
}

func TestServerHostHeader(t *testing.T) {
	osName, _ := os.Hostname()
	tests := []struct {
		name, hostName, want string
	}{
		{"given", "host1", "host1"},
		{"default is the machine's hostname", "", hostName(os.Hostname)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Mode: "FORK", Port: 8080, HostName: tt.hostName, MaxCant: 10, DefaultCant: 10, Slots: 1})
			s.SetReady(true)
			for _, target := range []string{"/api/randoms?cant=1", "/healthz", "/nope"} {
				if got := do(t, s, "GET", target).Header().Get("X-Server-Host"); got != tt.want {
					t.Errorf("GET %s: got X-Server-Host %q, want %q", target, got, tt.want)
				}
			}
			var info struct{ Host string }
			if err := json.Unmarshal(do(t, s, "GET", "/api/info").Body.Bytes(), &info); err != nil || info.Host != tt.want {
				t.Errorf("/api/info host: got %q (err %v), want %q", info.Host, err, tt.want)
			}
		})
	}
	if osName != "" && hostName(os.Hostname) != osName {
		t.Errorf("hostName: got %q, want the OS's %q", hostName(os.Hostname), osName)
	}
	if got := hostName(func() (string, error) { return "", errors.New("no uts") }); got != "unknown" {
		t.Errorf("hostName when the OS fails: got %q, want unknown", got)
	}
}

// In a cluster, /api/info and /metrics show the worker count as it is now.
func TestWorkersCount(t *testing.T) {
	s := New(Options{Mode: "CLUSTER", WorkerID: 1})
	n := 2
	s.SetWorkers(func() int { return n })
	get := func(path string) string {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Body.String()
	}
	if b := get("/api/info"); !strings.Contains(b, `"workers":2}`) {
		t.Errorf("/api/info = %s, want workers 2", b)
	}
	n = 3
	if b := get("/api/info"); !strings.Contains(b, `"workers":3}`) {
		t.Errorf("/api/info after a scale = %s, want workers 3", b)
	}
	if b := get("/metrics"); !strings.Contains(b, "lbserver_cluster_workers 3") {
		t.Errorf("/metrics lacks lbserver_cluster_workers 3")
	}
	if b := get("/api/info"); !json.Valid([]byte(b)) {
		t.Errorf("/api/info is not JSON: %s", b)
	}
}
