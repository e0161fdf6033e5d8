package e2e

// Tests of the HAProxy topologies (deploy/haproxy/*.cfg) with a real
// HAProxy, as shipped (port 80, the instances on 8080-8085), inside a
// private network and pid namespace like the nginx tests (inNamespace).
// What HAProxy adds to nginx open source is active health checks on
// /readyz: an instance that begins a stop with --shutdown-delay is taken out
// of the rotation before it stops accepting, so no request needs a retry.

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hapConf is the path of a shipped HAProxy configuration.
func hapConf(name string) string {
	return filepath.Join(repoRoot(), "deploy", "haproxy", name)
}

// hapProc is a running HAProxy in master-worker mode.
type hapProc struct {
	*Proc
	pidFile string
}

// hapStart runs HAProxy in the foreground in master-worker mode (-W) with
// cfg, and waits until every server of every backend is UP. The test's
// cleanup kills master and workers (one process group).
func hapStart(t *testing.T, cfg string) *hapProc {
	t.Helper()
	if out, err := exec.CommandContext(cmdCtx(t, time.Minute), "haproxy", "-c", "-q", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfg, err, out)
	}
	pidFile := filepath.Join(t.TempDir(), "haproxy.pid")
	p := StartCmd(t, exec.Command("haproxy", "-W", "-f", cfg, "-p", pidFile))
	h := &hapProc{Proc: p, pidFile: pidFile}
	Eventually(t, 20*time.Second, "HAProxy up with every server UP", func() bool {
		st, err := hapStats()
		if err != nil || len(st) == 0 {
			return false
		}
		for _, s := range st {
			if s.Status != "UP" {
				return false
			}
		}
		return true
	})
	return h
}

// workers are the pids of the master's children (HAProxy's workers).
func (h *hapProc) workers() []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", h.Pid(), h.Pid()))
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// hapServer is one server's line of HAProxy's stats.
type hapServer struct {
	Backend, Name string
	Status        string // UP, DOWN, "UP 1/2", "DOWN 1/2", MAINT...
	Retries       int64  // wretr: requests sent again to it (or from it)
	Redispatches  int64  // wredis: requests sent to another server after failing on it
	Total         int64  // stot: sessions it served
}

// hapStats reads every server's line from the stats page (/stats;csv on
// 127.0.0.1:8404, as the shipped configs serve it).
func hapStats() ([]hapServer, error) {
	r, err := Get("http://127.0.0.1:8404/stats;csv")
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("stats: status %d", r.Status)
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(r.Body), "# "))).ReadAll()
	if err != nil || len(rows) < 1 {
		return nil, fmt.Errorf("stats csv: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	num := func(row []string, name string) int64 {
		n, _ := strconv.ParseInt(row[col[name]], 10, 64)
		return n
	}
	var out []hapServer
	for _, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			continue
		}
		sv := row[col["svname"]]
		if sv == "FRONTEND" || sv == "BACKEND" {
			continue
		}
		out = append(out, hapServer{Backend: row[col["pxname"]], Name: sv, Status: row[col["status"]],
			Retries: num(row, "wretr"), Redispatches: num(row, "wredis"), Total: num(row, "stot")})
	}
	return out, nil
}

// hapMustStats is hapStats that fails the test on an error.
func hapMustStats(t *testing.T) []hapServer {
	t.Helper()
	st, err := hapStats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// hapRetried adds up retries and redispatches over every server.
func hapRetried(st []hapServer) int64 {
	var n int64
	for _, s := range st {
		n += s.Retries + s.Redispatches
	}
	return n
}

// hapStatus is the status of server name (e.g. "r8083"), or why there is
// none. Safe from any goroutine.
func hapStatus(name string) string {
	st, err := hapStats()
	if err != nil {
		return "unknown: " + err.Error()
	}
	for _, s := range st {
		if s.Name == name {
			return s.Status
		}
	}
	return "no server " + name
}

func TestHAProxyConfigsPassHAProxyC(t *testing.T) {
	requireTool(t, "haproxy")
	for _, name := range []string{"topology-a.cfg", "topology-b.cfg"} {
		out, err := exec.CommandContext(cmdCtx(t, time.Minute), "haproxy", "-c", "-f", hapConf(name)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Configuration file is valid") {
			t.Errorf("haproxy -c -f %s: %v\n%s", name, err, out)
		}
		b, err := os.ReadFile(hapConf(name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "http-check send meth GET uri /readyz") {
			t.Errorf("%s does not check /readyz", name)
		}
	}
}

// Topology A: /api/randoms reaches the CLUSTER on 8081, the rest the FORK
// on 8080; a rolling reload of the CLUSTER keeps its /readyz at 200 (the
// cluster's answer), so HAProxy never takes it out, and under load no
// request fails.
func TestHAProxyTopologyA(t *testing.T) {
	if !inNamespace(t, "haproxy") {
		return
	}
	ngxStartLB(t, "127.0.0.1", 8080, "--mode", "FORK")
	cluster := ngxStartLB(t, "127.0.0.1", 8081, "--mode", "CLUSTER", "--workers", "2", "--shutdown-delay", "2s")
	relWaitWorkers(t, cluster, 2)
	hapStart(t, hapConf("topology-a.cfg"))
	c := ngxKeepAliveClient(t)
	for _, tc := range []struct{ path, port string }{
		{"/api/randoms?cant=1000", "8081"}, {"/info", "8080"}, {"/api/info", "8080"}, {"/", "8080"}, {"/readyz", "8080"},
	} {
		a := ngxGet(c, "http://127.0.0.1"+tc.path)
		if a.Err != nil || a.Status != 200 || a.Port != tc.port {
			t.Errorf("GET %s: err %v, status %d, port %q; want 200 from %s", tc.path, a.Err, a.Status, a.Port, tc.port)
		}
	}

	// Reloads under load, while the checks watch /readyz.
	load := relStartLoad(t, relLoadOpts{URL: "http://127.0.0.1/api/randoms?cant=1000", KeepAlive: 8, PerRequest: 8,
		MaxTime: 60 * time.Second, Timeout: 20 * time.Second})
	var (
		mu      sync.Mutex // guards notUp
		notUp   []string
		stop    = make(chan struct{})
		watched = make(chan struct{})
	)
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if s := hapStatus("cluster"); s != "UP" && !strings.HasPrefix(s, "unknown: ") { // unknown: the stats page did not answer
				mu.Lock()
				notUp = append(notUp, s)
				mu.Unlock()
			}
		}
	}()
	const reloads = 3
	for i := range reloads {
		if err := cluster.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		relWaitLog(t, cluster, "rolling reload finished", i+1, 30*time.Second)
	}
	res := load.Stop()
	close(stop)
	<-watched
	t.Logf("HAProxy topology A: %d rolling reloads of the CLUSTER (--shutdown-delay 2s) under 16 clients: %s", reloads, res)
	relAssertNoLoss(t, res)
	if len(notUp) > 0 {
		t.Errorf("HAProxy saw the CLUSTER not UP during its reloads (%d polls: %q): /readyz must stay 200 through a reload", len(notUp), notUp)
	}
	if n := hapRetried(hapMustStats(t)); n != 0 {
		t.Errorf("HAProxy retried or redispatched %d requests during the reloads, want 0", n)
	}

	// The master's stop: HAProxy takes the CLUSTER out (DOWN) while it
	// still serves, within the 2s delay.
	if err := cluster.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "HAProxy marks the stopping CLUSTER DOWN", func() bool {
		return strings.HasPrefix(hapStatus("cluster"), "DOWN")
	})
	select {
	case <-cluster.Done():
		t.Error("the CLUSTER had exited before HAProxy took it out: --shutdown-delay 2s was not honoured")
	default:
		if r, err := Get("http://127.0.0.1:8081/api/info"); err != nil || r.Status != 200 {
			t.Errorf("the stopping CLUSTER, taken out, no longer serves: %v %d", err, r.Status)
		}
	}
	if !cluster.Wait(20 * time.Second) {
		t.Fatal("the CLUSTER did not exit")
	}
}

// hapStartB starts the instances of topology B (with extra arguments) and
// HAProxy in front of them.
func hapStartB(t *testing.T, extra ...string) (*hapProc, map[int]*Proc) {
	t.Helper()
	ngxStartLB(t, "127.0.0.1", 8080, "--mode", "FORK")
	inst := map[int]*Proc{}
	for port := 8082; port <= 8085; port++ {
		inst[port] = ngxStartLB(t, "127.0.0.1", port, append([]string{"--mode", "FORK"}, extra...)...)
	}
	return hapStart(t, hapConf("topology-b.cfg")), inst
}

// Topology B, the same checks as nginx's: exact shares over 400 requests,
// and one instance stopped mid-run (SIGKILL, then SIGTERM) fails no request.
func TestHAProxyTopologyB(t *testing.T) {
	if !inNamespace(t, "haproxy") {
		return
	}
	_, inst := hapStartB(t)
	c := ngxKeepAliveClient(t)
	answers := ngxGetMany(c, "http://127.0.0.1/api/randoms?cant=1000", 400, 1, nil)
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
	if a := ngxGet(c, "http://127.0.0.1/info"); a.Err != nil || a.Port != "8080" {
		t.Errorf("/info: err %v, port %q, want 8080", a.Err, a.Port)
	}
	for _, tc := range []struct {
		port int
		sig  syscall.Signal
	}{{8083, syscall.SIGKILL}, {8084, syscall.SIGTERM}} {
		before := hapRetried(hapMustStats(t))
		ngxStopMidRun(t, c, inst[tc.port], tc.port, tc.sig)
		t.Logf("HAProxy retries and redispatches while :%d stopped with %s: %d", tc.port, tc.sig, hapRetried(hapMustStats(t))-before)
		inst[tc.port] = ngxStartLB(t, "127.0.0.1", tc.port, "--mode", "FORK")
		ngxBackInRotation(t, c, tc.port)
	}
}

// What the checks add: an instance stopping with --shutdown-delay 3s
// answers 503 on /readyz at once and serves on; HAProxy marks it DOWN
// before it closes its port, so under load no request fails and none is
// retried or redispatched.
func TestHAProxyTopologyBShutdownDelay(t *testing.T) {
	if !inNamespace(t, "haproxy") {
		return
	}
	_, inst := hapStartB(t, "--shutdown-delay", "3s")
	r := hapStopping(t, inst, 8083, syscall.SIGTERM)
	t.Logf("HAProxy, :8083 stopped with SIGTERM and --shutdown-delay 3s under 4 clients: %s", r)
	if r.failed != 0 || r.retried != 0 {
		t.Errorf("failed %d, retried %d, want 0 and 0 (first failure: %s)", r.failed, r.retried, r.first)
	}
	if r.downAfter <= 0 || r.downAfter >= 3*time.Second {
		t.Errorf("HAProxy took :8083 out %s after its SIGTERM, want within the 3s delay", r.downAfter)
	}
	if r.lastAnswer.After(r.exited) {
		t.Errorf(":8083 answered a request after it had exited")
	}
}

// hapResult is what one stopped instance cost the clients behind a balancer.
type hapResult struct {
	requests, failed int
	retried          int64         // HAProxy: retries + redispatches; nginx: answers whose X-Upstream lists 2+
	downAfter        time.Duration // from the signal until the balancer marked it DOWN (HAProxy only)
	exited           time.Time
	lastAnswer       time.Time // the latest start of a request the stopped instance answered
	first            string
}

func (r hapResult) String() string {
	s := fmt.Sprintf("%d requests, %d failed, %d retried", r.requests, r.failed, r.retried)
	if r.downAfter > 0 {
		s += fmt.Sprintf(", marked DOWN %s after the signal", r.downAfter.Round(time.Millisecond))
	}
	return s
}

// hapStopping sends requests from 4 clients through HAProxy (port 80) for
// the whole stop of the instance on port (signalled with sig after 50
// answers), until it has exited and 100 more were answered, and measures
// what it cost.
func hapStopping(t *testing.T, inst map[int]*Proc, port int, sig syscall.Signal) hapResult {
	t.Helper()
	return balancerStopping(t, inst, port, sig, func() int64 { return hapRetried(hapMustStats(t)) },
		func() bool { return strings.HasPrefix(hapStatus("r"+strconv.Itoa(port)), "DOWN") })
}

// balancerStopping is hapStopping for any balancer on port 80: retried
// counts the retries so far (nil: count answers whose X-Upstream lists
// several upstreams, as nginx writes it), down reports whether the
// balancer has taken the instance out (nil: no way to ask).
func balancerStopping(t *testing.T, inst map[int]*Proc, port int, sig syscall.Signal, retried func() int64, down func() bool) hapResult {
	t.Helper()
	c := ngxKeepAliveClient(t)
	p := inst[port]
	var before int64
	if retried != nil {
		before = retried()
	}
	var (
		mu      sync.Mutex // guards answers
		answers []ngxAnswer
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	deadline := time.Now().Add(60 * time.Second) // bound on the load
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				select {
				case <-done:
					return
				default:
				}
				a := ngxGet(c, "http://127.0.0.1/api/randoms?cant=1000")
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(answers)
	}
	Eventually(t, 30*time.Second, "50 answers before the stop", func() bool { return count() >= 50 })
	var r hapResult
	signalled := time.Now()
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if down != nil {
		Eventually(t, 20*time.Second, fmt.Sprintf("the balancer marks :%d DOWN", port), func() bool {
			if down() {
				if r.downAfter == 0 {
					r.downAfter = time.Since(signalled)
				}
				return true
			}
			return false
		})
	}
	if !p.Wait(30 * time.Second) {
		t.Fatalf("lbserver :%d did not exit within 30s of %s", port, sig)
	}
	r.exited = time.Now()
	n := count()
	Eventually(t, 30*time.Second, "100 answers after the exit", func() bool { return count() >= n+100 })
	close(done)
	wg.Wait()
	want := strconv.Itoa(port)
	for _, a := range answers {
		if a.Port == want && a.Start.After(r.lastAnswer) {
			r.lastAnswer = a.Start
		}
		if retried == nil && strings.Contains(a.Upstream, ",") {
			r.retried++
		}
	}
	bad := ngxFailures(answers, 1000)
	r.requests, r.failed = len(answers), len(bad)
	if len(bad) > 0 {
		r.first = bad[0]
	}
	if retried != nil {
		r.retried = retried() - before
	}
	return r
}

// HAProxy's own seamless reload (SIGUSR2 to the master in master-worker
// mode: a new worker takes the listening sockets over from the old one)
// under 32 clients, half of them opening a new connection per request:
// no request fails, no connection is refused.
func TestHAProxyReloadUnderLoad(t *testing.T) {
	if !inNamespace(t, "haproxy") {
		return
	}
	h, _ := hapStartB(t)
	load := relStartLoad(t, relLoadOpts{URL: "http://127.0.0.1/api/randoms?cant=1000", KeepAlive: 16, PerRequest: 16,
		MaxTime: 90 * time.Second, Timeout: 20 * time.Second})
	const reloads = 5
	seen := h.workers()
	if len(seen) == 0 {
		t.Fatal("HAProxy's master has no worker")
	}
	start := time.Now()
	for i := range reloads {
		if err := h.Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 30*time.Second, fmt.Sprintf("reload %d: a new HAProxy worker", i+1), func() bool {
			for _, pid := range h.workers() {
				if !slices.Contains(seen, pid) {
					seen = append(seen, pid)
					return true
				}
			}
			return false
		})
		// The master says "Loading success" once the new worker runs; a
		// SIGUSR2 that arrives before it is dropped by HAProxy 2.6 (seen
		// here: a third reload sent right after the second worker forked
		// never happened), so the next reload waits for it, as
		// `systemctl reload` waits for a Type=notify HAProxy.
		Eventually(t, 30*time.Second, fmt.Sprintf("reload %d: the master's Loading success", i+1), func() bool {
			return strings.Count(h.Output.String(), "Loading success") >= i+2
		})
		Eventually(t, 30*time.Second, fmt.Sprintf("reload %d: the new worker's servers UP", i+1), func() bool {
			st, err := hapStats()
			if err != nil || len(st) == 0 {
				return false
			}
			for _, s := range st {
				if s.Status != "UP" {
					return false
				}
			}
			return true
		})
	}
	took := time.Since(start)
	res := load.Stop()
	t.Logf("HAProxy topology B: %d seamless reloads (SIGUSR2, -W) in %s under 32 clients: %s; workers seen: %d",
		reloads, took.Round(time.Millisecond), res, len(seen))
	relAssertNoLoss(t, res)
}

// The same failures behind nginx and behind HAProxy, in one run: an
// instance killed (SIGKILL: down), and one stopped (SIGTERM) with and
// without --shutdown-delay 3s, each under 4 keep-alive clients through
// port 80. No request may fail behind either. nginx open source has no
// active checks: it learns that an instance is gone from failed attempts
// and resends them (retried > 0 whenever the instance closes its port under
// load). HAProxy, asking /readyz, takes an instance that stops with a
// shutdown delay out before it closes its port: 0 retried. Without the
// delay it has nothing to learn from either, and retries like nginx.
func TestBalancersCompareStoppingInstance(t *testing.T) {
	if !inNamespace(t, "nginx", "haproxy") {
		return
	}
	type stopCase struct {
		name  string
		sig   syscall.Signal
		extra []string
	}
	cases := []stopCase{
		{"instance down (SIGKILL)", syscall.SIGKILL, nil},
		{"SIGTERM, no shutdown delay", syscall.SIGTERM, nil},
		{"SIGTERM, --shutdown-delay 3s", syscall.SIGTERM, []string{"--shutdown-delay", "3s"}},
	}
	var report []string
	for _, bal := range []string{"nginx", "haproxy"} {
		for _, sc := range cases {
			t.Run(bal+"/"+sc.name, func(t *testing.T) {
				ngxStartLB(t, "127.0.0.1", 8080, "--mode", "FORK")
				inst := map[int]*Proc{}
				for port := 8082; port <= 8085; port++ {
					inst[port] = ngxStartLB(t, "127.0.0.1", port, append([]string{"--mode", "FORK"}, sc.extra...)...)
				}
				var r hapResult
				if bal == "nginx" {
					ng := ngxStart(t, ngxConf("topology-b.conf"))
					r = balancerStopping(t, inst, 8083, sc.sig, nil, nil)
					_ = ng.Signal(syscall.SIGQUIT)
					ng.Wait(10 * time.Second)
				} else {
					h := hapStart(t, hapConf("topology-b.cfg"))
					r = hapStopping(t, inst, 8083, sc.sig)
					_ = h.Signal(syscall.SIGUSR1) // graceful stop
					h.Wait(10 * time.Second)
				}
				report = append(report, fmt.Sprintf("%-8s %-30s %s", bal, sc.name, r))
				if r.failed != 0 {
					t.Errorf("%d of %d requests failed, first: %s", r.failed, r.requests, r.first)
				}
				if bal == "haproxy" && sc.extra != nil && r.retried != 0 {
					t.Errorf("HAProxy retried %d requests although :8083 answered 503 on /readyz for 3s first, want 0", r.retried)
				}
				if !r.lastAnswer.IsZero() && r.lastAnswer.After(r.exited) {
					t.Errorf(":8083 answered a request that started after it had exited")
				}
			})
		}
	}
	t.Log("one instance of four (:8083) stopped under 4 keep-alive clients, through port 80:")
	for _, line := range report {
		t.Log(line)
	}
}
