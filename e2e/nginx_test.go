package e2e

// Tests of the nginx topologies (deploy/nginx/*.conf) with a real nginx.
//
// The configurations are tested as shipped: nginx on port 80, the instances
// on 8080-8085. To get those ports on a shared machine, each test re-runs
// itself inside a private network and process namespace
// (unshare --net --pid --fork --kill-child --mount-proc, as root): the ports
// are free there, nothing is reachable from outside, and when the
// namespace's init ends (after the test, or killed with unshare by the
// outer test's cleanup), the kernel kills every process left in it.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ngxEnvInside is set in the test process that runs inside the namespaces.
const ngxEnvInside = "LBSERVER_E2E_NETNS"

// ngxInNamespace makes the calling test run inside a private network and pid
// namespace. In the outer process it runs the test binary again, with only
// this test selected, under unshare; reports the inner run's result (the
// test's own log lines when it passed, the whole output when it failed); and
// returns false: the caller must return. In the inner process it returns
// true and the caller does the work. The nginx topology tests and the
// reliability tests through nginx both use it.
func ngxInNamespace(t *testing.T) bool {
	t.Helper()
	return inNamespace(t, "nginx")
}

// inPrivateNamespace is ngxInNamespace for a test that runs no nginx: the
// same private network and pid namespace, where fixed ports are free and
// nothing the test starts outlives it.
func inPrivateNamespace(t *testing.T) bool {
	t.Helper()
	return inNamespace(t)
}

// inNamespace is ngxInNamespace for a test that needs tools (nginx,
// haproxy, or none) inside.
func inNamespace(t *testing.T, tools ...string) bool {
	t.Helper()
	if os.Getenv(ngxEnvInside) == "1" {
		return true
	}
	for _, tool := range tools {
		requireTool(t, tool)
	}
	requireTool(t, "unshare")
	requireTool(t, "ip")
	relRequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const limit = 5 * time.Minute
	cmd := exec.Command("unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
		// sh stays PID 1 (no exec): it reaps the orphans that the stack
		// script leaves to init, as init does on a real machine.
		"sh", "-c", `ip link set lo up && "$0" "$@"`, self,
		"-test.run", "^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1",
		"-test.timeout", limit.String())
	cmd.Dir, _ = os.Getwd()
	cmd.Env = append(os.Environ(), ngxEnvInside+"=1", "LBSERVER_BIN="+binPath)
	p := StartCmd(t, cmd)
	if !p.Wait(limit + 30*time.Second) {
		t.Fatalf("the namespaced run did not end within %s:\n%s", limit, p.Output.String())
	}
	out := p.Output.String()
	if err := p.Err(); err != nil {
		t.Fatalf("the namespaced run failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "--- PASS: "+t.Name()+" ") {
		t.Fatalf("the namespaced run did not report --- PASS: %s\n%s", t.Name(), out)
	}
	var report []string // the test's own lines, without the processes' logs
	for line := range strings.Lines(out) {
		if strings.Contains(line, "_test.go:") || strings.Contains(line, "--- ") {
			report = append(report, strings.TrimRight(line, "\n"))
		}
	}
	t.Logf("inside the namespace:\n%s", strings.Join(report, "\n"))
	return false
}

// ngxConf is the path of a shipped configuration.
func ngxConf(name string) string {
	return filepath.Join(repoRoot(), "deploy", "nginx", name)
}

// ngxPrefix makes an nginx prefix folder (with logs/) that nginx's workers,
// which run as nobody under root, can enter.
func ngxPrefix(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ngxStart runs nginx in the foreground with conf and waits until it
// answers /healthz on port 80. The test's cleanup kills master and workers.
func ngxStart(t *testing.T, conf string) *Proc {
	t.Helper()
	prefix := ngxPrefix(t)
	if out, err := exec.CommandContext(cmdCtx(t, time.Minute), "nginx", "-t", "-q", "-p", prefix+"/", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t -c %s: %v\n%s", conf, err, out)
	}
	p := StartCmd(t, exec.Command("nginx", "-p", prefix+"/", "-c", conf, "-g", "daemon off;"))
	WaitHTTP(t, p, "http://127.0.0.1/healthz", 15*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	return p
}

// ngxStartLB starts an lbserver and waits until it is healthy.
func ngxStartLB(t *testing.T, host string, port int, args ...string) *Proc {
	t.Helper()
	args = append([]string{"--host", host, "--port", strconv.Itoa(port)}, args...)
	p := StartLB(t, args...)
	WaitHTTP(t, p, fmt.Sprintf("http://%s/healthz", net.JoinHostPort(host, strconv.Itoa(port))), 15*time.Second)
	return p
}

// ngxAnswer is what a client saw for one request.
type ngxAnswer struct {
	Status   int
	Err      error
	Port     string // X-Server-Port
	Pid      string // X-Server-Pid
	Upstream string // X-Upstream, set by nginx
	Sum      int64  // sum of the counts in an /api/randoms answer
	Start    time.Time
}

// ngxKeepAliveClient keeps connections to nginx open, like a browser.
func ngxKeepAliveClient(t *testing.T) *http.Client {
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// ngxGet fetches url once; for /api/randoms it adds up the counts.
func ngxGet(c *http.Client, url string) ngxAnswer {
	a := ngxAnswer{Start: time.Now()}
	r, err := Do(c, url)
	if err != nil {
		a.Err = err
		return a
	}
	a.Status = r.Status
	a.Port = r.Header.Get("X-Server-Port")
	a.Pid = r.Header.Get("X-Server-Pid")
	a.Upstream = r.Header.Get("X-Upstream")
	if r.Status == http.StatusOK && strings.Contains(url, "/api/randoms") {
		var counts map[string]int64
		if err := json.Unmarshal(r.Body, &counts); err != nil {
			a.Err = fmt.Errorf("decode %s: %w", url, err)
			return a
		}
		for _, n := range counts {
			a.Sum += n
		}
	}
	return a
}

// ngxGetMany sends n requests to url from conc concurrent clients sharing c
// and returns the answers in the order they completed. onDone, if not nil, is
// called after each answer with the number completed so far.
func ngxGetMany(c *http.Client, url string, n, conc int, onDone func(done int)) []ngxAnswer {
	var (
		mu      sync.Mutex // guards answers
		answers []ngxAnswer
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				a := ngxGet(c, url)
				mu.Lock()
				answers = append(answers, a)
				done := len(answers)
				mu.Unlock()
				if onDone != nil {
					onDone(done)
				}
			}
		}()
	}
	wg.Wait()
	return answers
}

// ngxFailures describes the answers that were not a 200 with wantSum counts.
func ngxFailures(answers []ngxAnswer, wantSum int64) []string {
	var bad []string
	for _, a := range answers {
		switch {
		case a.Err != nil:
			bad = append(bad, a.Err.Error())
		case a.Status != http.StatusOK:
			bad = append(bad, fmt.Sprintf("status %d from %q", a.Status, a.Upstream))
		case a.Sum != wantSum:
			bad = append(bad, fmt.Sprintf("counts sum to %d, want %d", a.Sum, wantSum))
		}
	}
	return bad
}

// ngxCount counts the answers by key.
func ngxCount(answers []ngxAnswer, key func(ngxAnswer) string) map[string]int {
	m := map[string]int{}
	for _, a := range answers {
		m[key(a)]++
	}
	return m
}

func TestNginxConfigsPassNginxT(t *testing.T) {
	requireTool(t, "nginx")
	for _, name := range []string{"topology-a.conf", "topology-b.conf"} {
		prefix := ngxPrefix(t)
		out, err := exec.CommandContext(cmdCtx(t, time.Minute), "nginx", "-t", "-p", prefix+"/", "-c", ngxConf(name)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "test is successful") {
			t.Errorf("nginx -t -c %s: %v\n%s", name, err, out)
		}
	}
}

func TestNginxTopologyA(t *testing.T) {
	if !ngxInNamespace(t) {
		return
	}
	ngxStartLB(t, "127.0.0.1", 8080, "--mode", "FORK")
	cluster := ngxStartLB(t, "127.0.0.1", 8081, "--mode", "CLUSTER", "--workers", "2")
	ngxStart(t, ngxConf("topology-a.conf"))
	c := ngxKeepAliveClient(t)

	// The heavy route: 320 requests from 16 clients at once, so that nginx
	// opens about 16 connections to 8081 (and keeps them alive). The CLUSTER
	// gives each worker a SO_REUSEPORT socket and the kernel hashes each
	// connection to one of them: with 2 workers and n connections, the
	// chance that all land on one worker is 2^(1-n), 3e-5 for 16.
	answers := ngxGetMany(c, "http://127.0.0.1/api/randoms?cant=100000", 320, 16, nil)
	if bad := ngxFailures(answers, 100000); len(bad) > 0 {
		t.Fatalf("%d of %d requests failed, first: %s", len(bad), len(answers), bad[0])
	}
	ports := ngxCount(answers, func(a ngxAnswer) string { return a.Port })
	if len(ports) != 1 || ports["8081"] != 320 {
		t.Errorf("/api/randoms answered by ports %v, want only 8081", ports)
	}
	ups := ngxCount(answers, func(a ngxAnswer) string { return a.Upstream })
	if len(ups) != 1 || ups["127.0.0.1:8081"] != 320 {
		t.Errorf("X-Upstream of /api/randoms: %v, want only 127.0.0.1:8081", ups)
	}
	pids := ngxCount(answers, func(a ngxAnswer) string { return a.Pid })
	workers := map[string]bool{}
	for _, pid := range ChildPids(cluster.Pid()) {
		workers[strconv.Itoa(pid)] = true
	}
	for pid := range pids {
		if !workers[pid] {
			t.Errorf("pid %s answered /api/randoms but is not a worker of the CLUSTER master %d (workers %v)", pid, cluster.Pid(), workers)
		}
	}
	if len(pids) < 2 {
		t.Errorf("/api/randoms answered by %d worker pid(s) %v, want more than one", len(pids), pids)
	}
	conns, _ := exec.CommandContext(cmdCtx(t, time.Minute), "ss", "-Htn", "state", "established", "( sport = :8081 )").Output()
	t.Logf("/api/randoms?cant=100000 x320 from 16 clients through nginx: answers per worker pid %v over %d upstream connections",
		pids, strings.Count(string(conns), "\n"))

	// The default cant (100,000,000) must come back through nginx.
	start := time.Now()
	a := ngxGet(c, "http://127.0.0.1/api/randoms")
	if a.Err != nil || a.Status != http.StatusOK || a.Sum != 100_000_000 || a.Port != "8081" {
		t.Errorf("default /api/randoms: status %d, err %v, sum %d, port %q; want 200, sum 100000000, port 8081", a.Status, a.Err, a.Sum, a.Port)
	}
	t.Logf("default /api/randoms through nginx took %s", time.Since(start).Round(time.Millisecond))

	// Everything else goes to the FORK instance.
	for _, path := range []string{"/", "/info", "/api/info", "/healthz", "/no-such-page", "/api/randoms/x"} {
		a := ngxGet(c, "http://127.0.0.1"+path)
		if a.Err != nil || a.Port != "8080" || a.Upstream != "127.0.0.1:8080" {
			t.Errorf("GET %s: err %v, X-Server-Port %q, X-Upstream %q; want port 8080 via 127.0.0.1:8080", path, a.Err, a.Port, a.Upstream)
		}
	}
}

// ngxRecorder is an upstream stand-in that records what nginx sends it.
type ngxRecorder struct {
	status int // the status it answers with

	mu    sync.Mutex // guards reqs and conns
	reqs  []*http.Request
	conns map[string]bool // remote addresses seen
}

func (rec *ngxRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, r)
	rec.conns[r.RemoteAddr] = true
	rec.mu.Unlock()
	w.Header().Set("X-Server-Port", strings.TrimPrefix(r.Context().Value(http.LocalAddrContextKey).(net.Addr).String(), "127.0.0.1:"))
	if rec.status != http.StatusOK {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(rec.status)
		fmt.Fprintln(w, `{"error":"busy"}`)
		return
	}
	fmt.Fprintln(w, `{"1":1}`)
}

func (rec *ngxRecorder) snapshot() ([]*http.Request, int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*http.Request(nil), rec.reqs...), len(rec.conns)
}

// ngxServeRecorder serves a recorder answering status on addr until the
// test ends.
func ngxServeRecorder(t *testing.T, addr string, status int) *ngxRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &ngxRecorder{status: status, conns: map[string]bool{}}
	srv := &http.Server{Handler: rec, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return rec
}

// What the apps receive from topology A: HTTP/1.1 on kept-alive
// connections, the client's address and scheme, the original Host; and a
// body the light routes do not take is refused before it reaches them.
func TestNginxTopologyAProxyHeaders(t *testing.T) {
	if !ngxInNamespace(t) {
		return
	}
	fork := ngxServeRecorder(t, "127.0.0.1:8080", http.StatusOK)
	cluster := ngxServeRecorder(t, "127.0.0.1:8081", http.StatusOK)
	ngxStart(t, ngxConf("topology-a.conf"))
	before, _ := fork.snapshot()

	c := ngxKeepAliveClient(t)
	const n = 20
	for i := range n {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/info", nil)
		req.Host = "lb.example"
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		r, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		r.Body.Close()
		if got := r.Header.Get("X-Upstream"); got != "127.0.0.1:8080" {
			t.Errorf("X-Upstream %q, want 127.0.0.1:8080", got)
		}
	}
	reqs, conns := fork.snapshot()
	reqs = reqs[len(before):]
	if len(reqs) != n {
		t.Fatalf("the app on 8080 saw %d requests, want %d", len(reqs), n)
	}
	for _, r := range reqs[:1] {
		checks := []struct{ what, got, want string }{
			{"protocol", r.Proto, "HTTP/1.1"},
			{"Host", r.Host, "lb.example"},
			{"X-Real-IP", r.Header.Get("X-Real-IP"), "127.0.0.1"},
			{"X-Forwarded-For", r.Header.Get("X-Forwarded-For"), "203.0.113.7, 127.0.0.1"},
			{"X-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"), "http"},
			{"Connection", r.Header.Get("Connection"), ""},
			{"close after the request", strconv.FormatBool(r.Close), "false"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("the app got %s %q, want %q", c.what, c.got, c.want)
			}
		}
	}
	// One connection per nginx worker at most (plus the readiness probe's):
	// far fewer than one per request.
	if conns > 5 {
		t.Errorf("%d requests reached the app over %d connections; want them kept alive (at most 5)", n, conns)
	}
	t.Logf("%d requests + readiness probes reached the app over %d connection(s)", n, conns)

	a := ngxGet(c, "http://127.0.0.1/api/randoms?cant=1")
	if a.Err != nil || a.Port != "8081" {
		t.Errorf("/api/randoms: err %v, port %q; want the upstream on 8081", a.Err, a.Port)
	}
	if got, _ := cluster.snapshot(); len(got) != 1 {
		t.Errorf("the upstream on 8081 saw %d requests, want 1", len(got))
	}

	body := strings.NewReader(strings.Repeat("x", 4096))
	r, err := c.Post("http://127.0.0.1/info", "text/plain", body)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST with a 4 KiB body: status %d, want 413", r.StatusCode)
	}
	if got, _ := fork.snapshot(); len(got) != len(before)+n {
		t.Errorf("the 4 KiB body reached the app")
	}
}

func TestNginxTopologyB(t *testing.T) {
	if !ngxInNamespace(t) {
		return
	}
	ngxStartLB(t, "127.0.0.1", 8080, "--mode", "FORK")
	inst := map[int]*Proc{}
	for port := 8082; port <= 8085; port++ {
		inst[port] = ngxStartLB(t, "127.0.0.1", port, "--mode", "FORK")
	}
	ngxStart(t, ngxConf("topology-b.conf"))
	c := ngxKeepAliveClient(t)
	const url = "http://127.0.0.1/api/randoms?cant=1000"

	// Equal shares. One client, one request after the other: the shared
	// (zone) round robin with equal weights deals 8082, 8083, 8084, 8085 in
	// a fixed cycle, so any 400 consecutive requests give exactly 100 each.
	// Tolerance 0: a different count means a request was retried or sent
	// elsewhere, which must not happen while every instance is up.
	answers := ngxGetMany(c, url, 400, 1, nil)
	if bad := ngxFailures(answers, 1000); len(bad) > 0 {
		t.Fatalf("%d of 400 requests failed, first: %s", len(bad), bad[0])
	}
	ports := ngxCount(answers, func(a ngxAnswer) string { return a.Port })
	for port := 8082; port <= 8085; port++ {
		if got := ports[strconv.Itoa(port)]; got != 100 {
			t.Errorf("port %d answered %d of 400, want 100 (all: %v)", port, got, ports)
		}
	}
	t.Logf("400 requests, one client: %v", ports)

	// The light routes stay on 8080.
	if a := ngxGet(c, "http://127.0.0.1/info"); a.Err != nil || a.Port != "8080" {
		t.Errorf("/info: err %v, port %q, want 8080", a.Err, a.Port)
	}

	// Stop one instance in the middle of a run, abruptly (SIGKILL) and then
	// gracefully (SIGTERM): no client request may fail; started again, the
	// instance gets requests again.
	for _, tc := range []struct {
		port int
		sig  syscall.Signal
	}{{8083, syscall.SIGKILL}, {8084, syscall.SIGTERM}} {
		ngxStopMidRun(t, c, inst[tc.port], tc.port, tc.sig)
		inst[tc.port] = ngxStartLB(t, "127.0.0.1", tc.port, "--mode", "FORK")
		ngxBackInRotation(t, c, tc.port)
	}
}

// An instance that answers 503 (its queue is full) or 502 costs the client
// nothing: nginx resends the GET to the next instance, and after max_fails
// such answers leaves the instance out for fail_timeout.
func TestNginxTopologyBRetries502And503(t *testing.T) {
	if !ngxInNamespace(t) {
		return
	}
	ngxServeRecorder(t, "127.0.0.1:8080", http.StatusOK)
	ngxServeRecorder(t, "127.0.0.1:8082", http.StatusOK)
	busy := ngxServeRecorder(t, "127.0.0.1:8083", http.StatusServiceUnavailable)
	ngxServeRecorder(t, "127.0.0.1:8084", http.StatusOK)
	broken := ngxServeRecorder(t, "127.0.0.1:8085", http.StatusBadGateway)
	ngxStart(t, ngxConf("topology-b.conf"))

	answers := ngxGetMany(ngxKeepAliveClient(t), "http://127.0.0.1/api/randoms?cant=1", 100, 1, nil)
	if bad := ngxFailures(answers, 1); len(bad) > 0 {
		t.Errorf("%d of 100 requests failed with a 503 and a 502 instance, first: %s", len(bad), bad[0])
	}
	ports := ngxCount(answers, func(a ngxAnswer) string { return a.Port })
	if ports["8082"]+ports["8084"] != 100 {
		t.Errorf("answers per port %v, want all 100 from 8082 and 8084", ports)
	}
	// Each bad instance was tried, and left out after max_fails=3 (within
	// fail_timeout=5s, this whole run).
	for _, b := range []struct {
		port string
		rec  *ngxRecorder
	}{{"8083", busy}, {"8085", broken}} {
		if got, _ := b.rec.snapshot(); len(got) < 1 || len(got) > 3 {
			t.Errorf(":%s got %d requests, want 1 to 3 (max_fails=3)", b.port, len(got))
		}
	}
	retried := 0
	for _, a := range answers {
		if strings.Contains(a.Upstream, ", ") {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no answer's X-Upstream lists a retry")
	}
	t.Logf("100 requests, one instance answering 503 and one 502: %v, %d went through a retry", ports, retried)
}

// ngxStopMidRun sends 400 requests from 4 clients through nginx and stops the
// instance on port with sig after 100 have been answered. Every request must
// succeed, and none started after the instance was gone may be answered by it.
func ngxStopMidRun(t *testing.T, c *http.Client, p *Proc, port int, sig syscall.Signal) {
	t.Helper()
	var (
		once   sync.Once
		goneMu sync.Mutex // guards gone
		gone   time.Time  // when the instance had exited
	)
	stop := func(done int) {
		if done < 100 {
			return
		}
		once.Do(func() {
			if err := p.Signal(sig); err != nil {
				t.Errorf("signal %d: %v", port, err)
			}
			if !p.Wait(15 * time.Second) {
				t.Errorf("lbserver :%d did not exit within 15s of %s", port, sig)
			}
			goneMu.Lock()
			gone = time.Now()
			goneMu.Unlock()
		})
	}
	answers := ngxGetMany(c, "http://127.0.0.1/api/randoms?cant=1000", 400, 4, stop)
	if bad := ngxFailures(answers, 1000); len(bad) > 0 {
		t.Errorf("stop :%d with %s mid-run: %d of %d client requests failed, first: %s", port, sig, len(bad), len(answers), bad[0])
	}
	goneMu.Lock()
	defer goneMu.Unlock()
	if gone.IsZero() {
		t.Fatalf("lbserver :%d was not stopped", port)
	}
	after := map[string]int{}
	retried := 0
	for _, a := range answers {
		if a.Start.After(gone) {
			after[a.Port]++
		}
		if strings.Contains(a.Upstream, ",") {
			retried++
		}
	}
	if after[strconv.Itoa(port)] > 0 {
		t.Errorf("%d requests started after :%d had exited were answered by it", after[strconv.Itoa(port)], port)
	}
	t.Logf("stop :%d with %s after 100 of 400 answers: 0 failed is required; %d answers went through a retry (X-Upstream lists 2+); answers after the stop: %v",
		port, sig, retried, after)
}

// ngxBackInRotation sends requests (at most 400, at most 20s) until the
// restarted instance on port answers one; none may fail meanwhile.
func ngxBackInRotation(t *testing.T, c *http.Client, port int) {
	t.Helper()
	start := time.Now()
	want := strconv.Itoa(port)
	for i := 0; i < 400 && time.Since(start) < 20*time.Second; i++ {
		a := ngxGet(c, "http://127.0.0.1/api/randoms?cant=1000")
		if bad := ngxFailures([]ngxAnswer{a}, 1000); len(bad) > 0 {
			t.Fatalf("while :%d came back: %s", port, bad[0])
		}
		if a.Port == want {
			t.Logf(":%d answered again %s after its restart (request %d)", port, time.Since(start).Round(time.Millisecond), i+1)
			return
		}
		time.Sleep(50 * time.Millisecond) // pacing: nginx retries a failed instance after fail_timeout (5s)
	}
	t.Errorf("restarted :%d got no request within %s", port, time.Since(start).Round(time.Millisecond))
}

// Topology B across addresses: four instances on 127.0.0.2..127.0.0.5, all
// on port 8082, like four hosts; the shipped config with only its four
// upstream server addresses changed.
func TestNginxTopologyBLoopbackAddresses(t *testing.T) {
	if !ngxInNamespace(t) {
		return
	}
	shipped, err := os.ReadFile(ngxConf("topology-b.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(shipped)
	hosts := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
	for i, h := range hosts {
		from := fmt.Sprintf("server 127.0.0.1:%d ", 8082+i)
		if strings.Count(conf, from) != 2 { // primary and backup
			t.Fatalf("topology-b.conf has %d lines with %q, want 2 (primary and backup)", strings.Count(conf, from), from)
		}
		conf = strings.ReplaceAll(conf, from, "server "+h+":8082 ")
	}
	if diff := ngxDiffLines(string(shipped), conf); len(diff) != 8 {
		t.Fatalf("the rewritten config differs from the shipped one in %d lines, want the 8 server lines: %q", len(diff), diff)
	}
	path := filepath.Join(t.TempDir(), "topology-b-addresses.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	ngxStartLB(t, "127.0.0.1", 8080, "--mode", "FORK")
	for _, h := range hosts {
		ngxStartLB(t, h, 8082, "--mode", "FORK")
	}
	// Bound to their addresses: nothing listens on 127.0.0.1:8082.
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:8082", time.Second); err == nil {
		conn.Close()
		t.Fatal("127.0.0.1:8082 accepts connections; the instances should be bound to 127.0.0.2-5 only")
	}
	ngxStart(t, path)

	c := ngxKeepAliveClient(t)
	answers := ngxGetMany(c, "http://127.0.0.1/api/randoms?cant=1000", 400, 1, nil)
	if bad := ngxFailures(answers, 1000); len(bad) > 0 {
		t.Fatalf("%d of 400 requests failed, first: %s", len(bad), bad[0])
	}
	ups := ngxCount(answers, func(a ngxAnswer) string { return a.Upstream })
	for _, h := range hosts {
		if got := ups[h+":8082"]; got != 100 {
			t.Errorf("%s:8082 answered %d of 400, want 100 (same tolerance as TestNginxTopologyB; all: %v)", h, got, ups)
		}
	}
	if ports := ngxCount(answers, func(a ngxAnswer) string { return a.Port }); len(ports) != 1 || ports["8082"] != 400 {
		t.Errorf("X-Server-Port counts %v, want 8082 for all 400", ports)
	}
	if pids := ngxCount(answers, func(a ngxAnswer) string { return a.Pid }); len(pids) != 4 {
		t.Errorf("answers came from %d pids %v, want 4", len(pids), pids)
	}
	t.Logf("400 requests over 4 addresses: %v", ups)
}

// ngxDiffLines lists the lines of b that differ from a, line by line (a and b
// must have the same number of lines; an extra line counts as a difference).
func ngxDiffLines(a, b string) []string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var diff []string
	for i := range max(len(al), len(bl)) {
		if i >= len(al) || i >= len(bl) || al[i] != bl[i] {
			if i < len(bl) {
				diff = append(diff, bl[i])
			} else {
				diff = append(diff, "(missing) "+al[i])
			}
		}
	}
	return diff
}

// ngxOtherProcs lists the live processes of the namespace other than its
// init (PID 1) and this test process, as "pid args" lines.
func ngxOtherProcs() []string {
	var out []string
	for _, pid := range Pids(func(pid int) bool { return pid != 1 && pid != os.Getpid() }) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")))
	}
	sort.Strings(out)
	return out
}
