package e2e

// Tests of the lab (scripts/lab.sh, make lab*): four lbserver CLUSTER hosts,
// each in a network namespace of its own, behind nginx in a fifth one, with
// topology B's configuration. They drive the make targets a user runs, talk
// to nginx over the lab's link to this machine, and check after every test
// that `make lab-down` left no namespace, link or process. Each test uses
// its own namespace prefix and private /16, so a lab left by a user (or by
// a crashed run) cannot be mistaken for the test's own.

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// labSeq numbers the labs of one test process (part of their prefix).
var labSeq atomic.Int32

// lab is one lab started by a test.
type lab struct {
	t      *testing.T
	prefix string // LAB_PREFIX: the namespaces are prefix+"lb", prefix+"host1".. 4
	net    string // LAB_NET: the lab's private /16, e.g. "10.150"
	runDir string // LAB_RUN_DIR
	bin    string // the lbserver the lab runs (make builds it)
	url    string // nginx, seen from this machine: http://NET.255.2
	// balancer is LAB_BALANCER: "" (nginx) or "haproxy".
	balancer string
}

// labFreeNet is a 10.X private /16 that no interface of this machine uses.
func labFreeNet(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for x := 100 + os.Getpid()%50; x < 250; x++ {
		n := fmt.Sprintf("10.%d.", x)
		used := slices.ContainsFunc(addrs, func(a net.Addr) bool { return strings.HasPrefix(a.String(), n) })
		if !used {
			return strings.TrimSuffix(n, ".")
		}
	}
	t.Fatal("no free 10.X.0.0/16 for the lab")
	return ""
}

// labStart runs `make lab` with a prefix and a /16 of the test's own, and
// registers `make lab-down` and the check that nothing is left, to run even
// when the test fails.
func labStart(t *testing.T) *lab {
	t.Helper()
	return labStartWith(t, "")
}

// labStartWith is labStart with LAB_BALANCER=balancer ("": nginx).
func labStartWith(t *testing.T, balancer string) *lab {
	t.Helper()
	requireTool(t, "ip")
	requireTool(t, cmp.Or(balancer, "nginx"))
	requireTool(t, "make")
	relRequireRoot(t)
	tmp := t.TempDir()
	// nginx's workers run as nobody: they must be able to enter the prefix.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l := &lab{
		t:      t,
		prefix: fmt.Sprintf("lt%d%c-", os.Getpid()%100000, 'a'+rune(labSeq.Add(1)%26)),
		net:    labFreeNet(t),
		runDir: filepath.Join(tmp, "run"),
		bin:    filepath.Join(tmp, "lbserver"),

		balancer: balancer,
	}
	l.url = "http://" + l.net + ".255.2"
	t.Cleanup(l.down)
	start := time.Now()
	out := l.mustMake("lab")
	t.Logf("make lab: %s (prefix %s, net %s.0.0/16)", time.Since(start).Round(time.Millisecond), l.prefix, l.net)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if want := "open " + l.url + "/balance"; lines[len(lines)-1] != want {
		t.Fatalf("make lab: last line %q, want %q\n%s", lines[len(lines)-1], want, out)
	}
	return l
}

// make runs `make target vars...` with the lab's environment.
func (l *lab) make(target string, vars ...string) (string, error) {
	args := append([]string{"-C", repoRoot(), "--no-print-directory", target, "BIN=" + l.bin}, vars...)
	cmd := exec.Command("make", args...)
	cmd.Env = append(os.Environ(), "LAB_PREFIX="+l.prefix, "LAB_NET="+l.net, "LAB_RUN_DIR="+l.runDir)
	if l.balancer != "" {
		cmd.Env = append(cmd.Env, "LAB_BALANCER="+l.balancer)
	}
	done := make(chan struct{})
	timer := time.AfterFunc(3*time.Minute, func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	b, err := cmd.CombinedOutput()
	close(done)
	return string(b), err
}

func (l *lab) mustMake(target string, vars ...string) string {
	l.t.Helper()
	out, err := l.make(target, vars...)
	if err != nil {
		l.t.Fatalf("make %s %v: %v\n%s", target, vars, err, out)
	}
	return out
}

// down runs `make lab-down` and checks that no namespace, link or process
// of the lab is left.
func (l *lab) down() {
	t := l.t
	if t.Failed() {
		if out, err := l.make("lab-status"); err == nil || out != "" {
			t.Logf("make lab-status before lab-down:\n%s", out)
		}
		for _, f := range []string{"nginx/logs/error.log", "logs/host1.log", "logs/host2.log", "logs/host3.log", "logs/host4.log", "logs/lb.log"} {
			if b, err := os.ReadFile(filepath.Join(l.runDir, f)); err == nil {
				t.Logf("%s (last 2000 bytes):\n%s", f, b[max(0, len(b)-2000):])
			}
		}
		if b, err := os.ReadFile(filepath.Join(l.runDir, "nginx", "logs", "access.log")); err == nil {
			var odd []string
			for _, line := range strings.Split(string(b), "\n") {
				if line != "" && !strings.Contains(line, "\" 200 ") && len(odd) < 20 {
					odd = append(odd, line)
				}
			}
			t.Logf("access.log, answers other than 200 (first 20):\n%s", strings.Join(odd, "\n"))
		}
	}
	start := time.Now()
	out, err := l.make("lab-down")
	if err != nil {
		t.Errorf("make lab-down: %v\n%s", err, out)
	}
	t.Logf("make lab-down: %s", time.Since(start).Round(time.Millisecond))
	if ns := l.namespaces(); len(ns) > 0 {
		t.Errorf("after make lab-down, namespaces left: %v", ns)
	}
	if err := exec.Command("ip", "link", "show", l.prefix+"up").Run(); err == nil {
		t.Errorf("after make lab-down, link %sup is left", l.prefix)
	}
	if left := l.procs(); len(left) > 0 {
		t.Errorf("after make lab-down, processes left: %v", left)
	}
}

// namespaces lists the network namespaces named with the lab's prefix.
func (l *lab) namespaces() []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var ns []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], l.prefix) {
			ns = append(ns, f[0])
		}
	}
	return ns
}

// procs lists the live processes of the lab: its lbservers (by binary) and
// its nginx (by prefix).
func (l *lab) procs() []string {
	var left []string
	for _, pid := range Pids(func(pid int) bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		s := string(b)
		return strings.HasPrefix(s, l.bin+"\x00") || (strings.HasPrefix(s, "nginx") && strings.Contains(s, l.runDir))
	}) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		left = append(left, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(b), "\x00", " ")))
	}
	return left
}

// master is the pid of host n's lbserver master, from the lab's pid file.
func (l *lab) master(n int) int {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.runDir, "pids", fmt.Sprintf("host%d.pid", n)))
	if err != nil {
		l.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		l.t.Fatalf("host%d.pid: %v", n, err)
	}
	return pid
}

// workers maps each host to its master's worker pids, as ps sees them.
func (l *lab) workers() map[string][]string {
	m := map[string][]string{}
	for n := 1; n <= 4; n++ {
		for _, pid := range ChildPids(l.master(n)) {
			m[fmt.Sprintf("host%d", n)] = append(m[fmt.Sprintf("host%d", n)], strconv.Itoa(pid))
		}
	}
	return m
}

// labTimeouts are the figures of the lab's nginx.conf that bound what a dead
// link costs a client.
type labTimeouts struct {
	Connect, Read, Fail time.Duration // proxy_connect_timeout; proxy_read_timeout of /api/randoms; fail_timeout
}

func (l *lab) timeouts() labTimeouts {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.runDir, "nginx", "conf", "nginx.conf"))
	if err != nil {
		l.t.Fatal(err)
	}
	conf := string(b)
	secs := func(re, in string) time.Duration {
		m := regexp.MustCompile(re).FindStringSubmatch(in)
		if m == nil {
			l.t.Fatalf("the lab's nginx.conf has no %s", re)
		}
		n, _ := strconv.Atoi(m[1])
		return time.Duration(n) * time.Second
	}
	randoms := conf[strings.Index(conf, "location = /api/randoms"):]
	randoms = randoms[:strings.Index(randoms, "}")]
	return labTimeouts{
		Connect: secs(`(?m)^\s*proxy_connect_timeout\s+(\d+)s;`, conf),
		Read:    secs(`(?m)^\s*proxy_read_timeout\s+(\d+)s;`, randoms),
		Fail:    secs(`fail_timeout=(\d+)s`, conf),
	}
}

// labAnswer is one request through nginx.
type labAnswer struct {
	Start, End time.Time
	Status     int
	Err        error
	Host, Pid  string // X-Server-Host, X-Server-Pid
	Upstream   string // X-Upstream: every upstream nginx tried
	Sum, Want  int64  // the counts in the /api/randoms answer, and the cant asked for
}

func (a labAnswer) failure() string {
	switch {
	case a.Err != nil:
		return a.Err.Error()
	case a.Status != http.StatusOK:
		return fmt.Sprintf("status %d via %q", a.Status, a.Upstream)
	case a.Sum != a.Want:
		return fmt.Sprintf("counts sum to %d, want %d", a.Sum, a.Want)
	}
	return ""
}

// labLoad is clients concurrent clients sending /api/randoms?cant=N
// through nginx, each on kept-alive connections, until Stop, until max
// requests in all, or until limit passes.
type labLoad struct {
	mu      sync.Mutex // guards answers and busy
	answers []labAnswer
	busy    []time.Time // per client: when its request in flight started (zero: none)
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped sync.Once
}

func labStartLoad(t *testing.T, l *lab, cant int64, clients, max int, limit time.Duration) *labLoad {
	t.Helper()
	// A client timeout well above nginx's: a request nginx holds until its
	// read timeout still counts as answered, and its wait is measured.
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	ld := &labLoad{stop: make(chan struct{}), busy: make([]time.Time, clients)}
	var sent atomic.Int64
	deadline := time.Now().Add(limit)
	url := l.url + "/api/randoms?cant=" + strconv.FormatInt(cant, 10)
	for i := range clients {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			for sent.Add(1) <= int64(max) && time.Now().Before(deadline) {
				select {
				case <-ld.stop:
					return
				default:
				}
				ld.mu.Lock()
				ld.busy[i] = time.Now()
				ld.mu.Unlock()
				a := labGet(c, url)
				a.Want = cant
				ld.mu.Lock()
				ld.answers = append(ld.answers, a)
				ld.busy[i] = time.Time{}
				ld.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { ld.Stop(); c.CloseIdleConnections() })
	return ld
}

func labGet(c *http.Client, url string) labAnswer {
	a := labAnswer{Start: time.Now()}
	defer func() { a.End = time.Now() }()
	r, err := c.Get(url)
	if err != nil {
		a.Err, a.End = err, time.Now()
		return a
	}
	defer r.Body.Close()
	a.Status = r.StatusCode
	a.Host, a.Pid, a.Upstream = r.Header.Get("X-Server-Host"), r.Header.Get("X-Server-Pid"), r.Header.Get("X-Upstream")
	body, err := io.ReadAll(r.Body)
	a.End = time.Now()
	if err != nil {
		a.Err = err
		return a
	}
	if a.Status == http.StatusOK {
		for _, m := range regexp.MustCompile(`:(\d+)`).FindAllSubmatch(body, -1) {
			n, _ := strconv.ParseInt(string(m[1]), 10, 64)
			a.Sum += n
		}
	}
	return a
}

// Stop ends the load and returns every answer, in the order they came.
func (ld *labLoad) Stop() []labAnswer {
	ld.stopped.Do(func() { close(ld.stop) })
	ld.wg.Wait()
	return ld.snapshot()
}

func (ld *labLoad) snapshot() []labAnswer {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return slices.Clone(ld.answers)
}

// pendingBefore counts the requests that started before t0 and have no
// answer yet.
func (ld *labLoad) pendingBefore(t0 time.Time) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	n := 0
	for _, b := range ld.busy {
		if !b.IsZero() && b.Before(t0) {
			n++
		}
	}
	return n
}

// waitFor polls until cond holds for the answers so far.
func (ld *labLoad) waitFor(t *testing.T, timeout time.Duration, what string, cond func([]labAnswer) bool) {
	t.Helper()
	Eventually(t, timeout, what, func() bool { return cond(ld.snapshot()) })
}

// since counts the answers that started at or after t0 and are in.
func since(answers []labAnswer, t0 time.Time) int {
	n := 0
	for _, a := range answers {
		if !a.Start.Before(t0) {
			n++
		}
	}
	return n
}

func labFailures(answers []labAnswer) []string {
	var bad []string
	for _, a := range answers {
		if f := a.failure(); f != "" {
			bad = append(bad, f)
		}
	}
	return bad
}

// labLongest is the longest a client waited, and how many answers came
// through a retry (X-Upstream lists two upstreams or more).
func labLongest(answers []labAnswer) (time.Duration, int) {
	var longest time.Duration
	retried := 0
	for _, a := range answers {
		longest = max(longest, a.End.Sub(a.Start))
		if strings.Contains(a.Upstream, ",") {
			retried++
		}
	}
	return longest, retried
}

// 400 requests from 16 clients: each host answers exactly 100 (nginx's
// round robin, equal weights, shared state), with both of its workers;
// `make lab` again changes nothing; `make lab-status` shows every host up.
func TestNginxLabRoundRobin(t *testing.T) {
	l := labStart(t)
	before := l.workers()
	// cant=1000000 keeps each request on its upstream connection long
	// enough for 16 clients to need several connections per host, which the
	// connection table then evens over the host's two workers. With one
	// connection per host (nginx reuses its idle keep-alive ones), one
	// worker answering all is right, so a round where a worker was not seen
	// yet is followed by another (at most 5), each asserted 100 per host.
	pids := map[string]map[string]bool{}
	var perHost map[string]int
	for round := 1; round <= 5; round++ {
		ld := labStartLoad(t, l, 1000000, 16, 400, 2*time.Minute)
		ld.waitFor(t, 2*time.Minute, "400 answers", func(a []labAnswer) bool { return len(a) == 400 })
		answers := ld.Stop()
		if bad := labFailures(answers); len(bad) > 0 {
			t.Fatalf("round %d: %d of 400 requests failed, first: %s", round, len(bad), bad[0])
		}
		perHost = map[string]int{}
		for _, a := range answers {
			perHost[a.Host]++
			if pids[a.Host] == nil {
				pids[a.Host] = map[string]bool{}
			}
			pids[a.Host][a.Pid] = true
		}
		for n := 1; n <= 4; n++ {
			if h := fmt.Sprintf("host%d", n); perHost[h] != 100 {
				t.Errorf("round %d: %s answered %d of 400, want 100 (all: %v)", round, h, perHost[h], perHost)
			}
		}
		all := true
		for n := 1; n <= 4; n++ {
			all = all && len(pids[fmt.Sprintf("host%d", n)]) == len(before[fmt.Sprintf("host%d", n)])
		}
		if all || t.Failed() {
			t.Logf("round %d: both workers of every host answered", round)
			break
		}
	}
	for n := 1; n <= 4; n++ {
		h := fmt.Sprintf("host%d", n)
		var got []string
		for p := range pids[h] {
			got = append(got, p)
		}
		slices.Sort(got)
		if want := before[h]; !slices.Equal(got, want) {
			t.Errorf("%s answered from pids %v, want its two workers %v", h, got, want)
		}
	}
	if len(perHost) != 4 {
		t.Errorf("answers came from %v, want host1..host4 only", perHost)
	}
	t.Logf("400 requests, 16 clients: per host %v, pids per host %v", perHost, before)

	// The page and everything but /api/randoms: the lb's own instance.
	if r := MustGet(t, l.url+"/balance"); r.Status != 200 || r.Header.Get("X-Server-Host") != "lb" {
		t.Errorf("/balance: status %d X-Server-Host %q, want 200 from lb", r.Status, r.Header.Get("X-Server-Host"))
	}

	out := l.mustMake("lab")
	if !strings.Contains(out, "already up") || !strings.HasSuffix(strings.TrimSpace(out), "open "+l.url+"/balance") {
		t.Errorf("make lab on a lab that is up: got\n%s\nwant `already up` and the open line last", out)
	}
	if after := l.workers(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("make lab on a lab that is up changed the workers: %v, was %v", after, before)
	}
	status := l.mustMake("lab-status")
	for n := 1; n <= 4; n++ {
		re := regexp.MustCompile(fmt.Sprintf(`host%d .*link up .*master pid %d, workers \d+ \d+; health 200 on the host, 200 from lb`, n, l.master(n)))
		if !re.MatchString(status) {
			t.Errorf("make lab-status: no line matching %s in\n%s", re, status)
		}
	}
}

// A host's link taken down under load: no client error, the host answers
// nothing while down, the longest wait stays within nginx's timeouts, and
// after the heal it gets its share again within fail_timeout.
//
// A dead link sends no reset: what a client waits depends on whether its
// request had already reached the host. So that some had, whatever the
// machine's speed (these requests take well under a millisecond), the test
// holds host2's workers with SIGSTOP until requests pile up there, takes
// the link down, and lets the workers go on: their answers are lost with
// the link, as a slow request's would be.
func TestNginxLabLinkDown(t *testing.T) {
	l := labStart(t)
	to := l.timeouts()
	ld := labStartLoad(t, l, 1000, 16, 100000, 3*time.Minute)
	ld.waitFor(t, time.Minute, "200 answers before the failure", func(a []labAnswer) bool { return len(a) >= 200 })

	workers := ChildPids(l.master(2))
	cont := func() {
		for _, pid := range workers {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)
	for _, pid := range workers {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 5*time.Second, fmt.Sprintf("host2 worker %d stopped (state T)", pid), func() bool { return labProcState(pid) == "T" })
	}
	ld.waitFor(t, 30*time.Second, "requests held by host2 for 300ms", func([]labAnswer) bool { return ld.pendingBefore(time.Now().Add(-300*time.Millisecond)) > 0 })
	tFail := time.Now()
	l.mustMake("lab-fail", "HOST=2")
	tDown := time.Now()
	cont()
	// Every request in flight when the link went down has been answered
	// (by another host, after nginx's timeout), and 400 more came.
	ld.waitFor(t, to.Read+to.Connect+time.Minute, "the requests in flight at the failure answered, and 400 more", func(a []labAnswer) bool {
		return since(a, tDown) >= 400 && ld.pendingBefore(tFail) == 0
	})

	tHeal := time.Now()
	l.mustMake("lab-heal", "HOST=2")
	tHealed := time.Now()
	var tBack time.Time
	ld.waitFor(t, to.Fail+to.Connect+30*time.Second, "host2 answering again", func(a []labAnswer) bool {
		for _, x := range a {
			if x.Host == "host2" && x.Start.After(tHealed) {
				tBack = x.End
				return true
			}
		}
		return false
	})
	ld.waitFor(t, time.Minute, "400 answers after host2 came back", func(a []labAnswer) bool { return since(a, tBack) >= 400 })
	answers := ld.Stop()

	if bad := labFailures(answers); len(bad) > 0 {
		t.Errorf("link down and up under load: %d of %d client requests failed, first: %s", len(bad), len(answers), bad[0])
	}
	whileDown, after := 0, map[string]int{}
	for _, a := range answers {
		if a.Host == "host2" && a.End.After(tDown) && a.End.Before(tHeal) {
			whileDown++
		}
		if a.Start.After(tBack) {
			after[a.Host]++
		}
	}
	if whileDown > 0 {
		t.Errorf("host2 answered %d requests while its link was down", whileDown)
	}
	total := 0
	for _, n := range after {
		total += n
	}
	if after["host2"]*5 < total {
		t.Errorf("after it came back, host2 answered %d of %d, want its share (at least 20%%): %v", after["host2"], total, after)
	}
	back := tBack.Sub(tHealed)
	// nginx tries a host marked down again fail_timeout after its last
	// failure. A probe that was connecting when the link came back may
	// still fail (its SYN was lost) and start a new fail_timeout: at worst
	// fail_timeout + proxy_connect_timeout after the heal.
	if bound := to.Fail + to.Connect + time.Second; back > bound {
		t.Errorf("host2 answered again %s after make lab-heal returned, want within fail_timeout %s (+ proxy_connect_timeout %s for a probe under way)",
			back.Round(time.Millisecond), to.Fail, to.Connect)
	}
	longest, retried := labLongest(answers)
	if bound := to.Read + to.Connect + 3*time.Second; longest > bound || longest < to.Read {
		t.Errorf("the longest wait was %s, want proxy_read_timeout %s (a request already on host2 waits that long) "+
			"and no more than proxy_read_timeout + proxy_connect_timeout %s (+3s)", longest.Round(time.Millisecond), to.Read, to.Connect)
	}
	t.Logf("link down: %d requests, 16 clients, 0 failed required (got %d); %d answered through a retry; longest client wait %s "+
		"(proxy_read_timeout %s, proxy_connect_timeout %s); host2 down %s, answered again %s after the heal (fail_timeout %s); share after: %v",
		len(answers), len(labFailures(answers)), retried, longest.Round(time.Millisecond), to.Read, to.Connect,
		tHeal.Sub(tDown).Round(time.Millisecond), back.Round(time.Millisecond), to.Fail, after)
}

// labProcState is the state letter of pid in /proc/PID/stat ("" if gone).
func labProcState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 {
		return f[0]
	}
	return ""
}

// A host's whole lbserver killed under load: no client error, no answer
// from it afterwards; lab-heal starts it again.
func TestNginxLabKill(t *testing.T) { labKill(t, labStart(t)) }

// The same behind HAProxy (make lab LAB_BALANCER=haproxy): its checks of
// /readyz take the killed host out, its retries cover the requests in
// flight, and it puts the host back after two good checks.
func TestHAProxyLabKill(t *testing.T) { labKill(t, labStartWith(t, "haproxy")) }

func labKill(t *testing.T, l *lab) {
	ld := labStartLoad(t, l, 1000, 16, 100000, 3*time.Minute)
	ld.waitFor(t, time.Minute, "200 answers before the kill", func(a []labAnswer) bool { return len(a) >= 200 })
	master, workers := l.master(3), ChildPids(l.master(3))
	l.mustMake("lab-kill", "HOST=3")
	tKilled := time.Now()
	for _, pid := range append([]int{master}, workers...) {
		if Alive(pid) {
			t.Errorf("host3 pid %d is alive after make lab-kill HOST=3", pid)
		}
	}
	ld.waitFor(t, time.Minute, "400 answers after the kill", func(a []labAnswer) bool { return since(a, tKilled) >= 400 })
	l.mustMake("lab-heal", "HOST=3")
	tHealed := time.Now()
	ld.waitFor(t, time.Minute, "host3 answering again", func(a []labAnswer) bool {
		return slices.ContainsFunc(a, func(x labAnswer) bool { return x.Host == "host3" && x.Start.After(tHealed) })
	})
	answers := ld.Stop()
	if bad := labFailures(answers); len(bad) > 0 {
		t.Errorf("host3 killed under load: %d of %d client requests failed, first: %s", len(bad), len(answers), bad[0])
	}
	after := 0
	for _, a := range answers {
		if a.Host == "host3" && a.Start.After(tKilled) && a.End.Before(tHealed) {
			after++
		}
	}
	if after > 0 {
		t.Errorf("host3 answered %d requests after its lbserver was killed", after)
	}
	longest, retried := labLongest(answers)
	t.Logf("kill host3 (master %d, workers %v): %d requests, 16 clients, 0 failed required; %d answered through a retry; longest client wait %s",
		master, workers, len(answers), retried, longest.Round(time.Millisecond))
}

// `make lab-reload` under load: host by host, every worker replaced, no
// client error.
func TestNginxLabReload(t *testing.T) {
	l := labStart(t)
	before := l.workers()
	ld := labStartLoad(t, l, 1000, 16, 100000, 3*time.Minute)
	ld.waitFor(t, time.Minute, "200 answers before the reload", func(a []labAnswer) bool { return len(a) >= 200 })
	start := time.Now()
	out := l.mustMake("lab-reload")
	took := time.Since(start)
	tDone := time.Now()
	ld.waitFor(t, time.Minute, "400 answers after the reload", func(a []labAnswer) bool { return since(a, tDone) >= 400 })
	answers := ld.Stop()
	if bad := labFailures(answers); len(bad) > 0 {
		t.Errorf("fleet reload under load: %d of %d client requests failed, first: %s", len(bad), len(answers), bad[0])
	}
	after := l.workers()
	for h, old := range before {
		if len(after[h]) != 2 {
			t.Errorf("%s has workers %v after the reload, want 2", h, after[h])
		}
		for _, p := range old {
			if slices.Contains(after[h], p) {
				t.Errorf("%s: worker %s was not replaced (before %v, after %v)", h, p, old, after[h])
			}
		}
	}
	for _, a := range answers {
		if a.Start.After(tDone) && !slices.Contains(after[a.Host], a.Pid) {
			t.Errorf("after the reload %s answered from pid %s, want one of its new workers %v", a.Host, a.Pid, after[a.Host])
			break
		}
	}
	longest, retried := labLongest(answers)
	t.Logf("make lab-reload under load: %s; %d requests, 16 clients, 0 failed required; %d answered through a retry; longest client wait %s; workers %v -> %v\n%s",
		took.Round(time.Millisecond), len(answers), retried, longest.Round(time.Millisecond), before, after, out)
}

// Bad input: an unknown HOST and a user who is not root each get one line
// that says what is valid or needed, and nothing is started.
func TestLabRefusals(t *testing.T) {
	requireTool(t, "make")
	for _, host := range []string{"", "5", "0", "host1", "1 2"} {
		cmd := exec.Command("make", "-C", repoRoot(), "--no-print-directory", "-s", "lab-fail", "HOST="+host)
		cmd.Env = append(os.Environ(), "LAB_PREFIX=ltnone-")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil {
			t.Errorf("make lab-fail HOST=%q: exit 0, want an error", host)
		}
		line := strings.SplitN(strings.TrimSpace(stderr.String()), "\n", 2)[0]
		if !strings.Contains(line, "valid values are 1, 2, 3, 4") {
			t.Errorf("make lab-fail HOST=%q: stderr %q, want one line naming the valid values", host, stderr.String())
		}
	}
	// Not root: as root, drop to nobody for the script (make would build as
	// nobody first); as a normal user, run it as is. nobody runs a copy of
	// the scripts in a world-readable folder (the checkout may sit under a
	// 0700 home, e.g. /root), and may write where the run folder would go,
	// so that "nothing was started" is the script's doing, not a permission.
	runDir := filepath.Join(t.TempDir(), "run")
	args := []string{filepath.Join(repoRoot(), "scripts", "lab.sh"), "up"}
	if os.Geteuid() == 0 {
		requireTool(t, "setpriv")
		dir := readableCopy(t, "scripts/lab.sh", "scripts/procs.sh")
		open := filepath.Join(dir, "open")
		if err := os.Mkdir(open, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, 0o1777); err != nil { // like /tmp, whatever the umask
			t.Fatal(err)
		}
		runDir = filepath.Join(open, "run")
		args = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", filepath.Join(dir, "scripts", "lab.sh"), "up"}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "LAB_PREFIX=ltnone-", "LAB_RUN_DIR="+runDir, "LBSERVER_BIN="+binPath)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Errorf("lab.sh up as a normal user: exit 0, want a refusal")
	}
	if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "needs root") {
		t.Errorf("lab.sh up as a normal user: stderr %q, want one line saying it needs root", stderr.String())
	}
	if stdout.Len() > 0 {
		t.Errorf("lab.sh up as a normal user: stdout %q, want nothing", stdout.String())
	}
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Errorf("%s exists: something was started (%v)", runDir, err)
	}
}

// labHostBar is one bar of the page's Hosts list.
type labHostBar struct {
	Host  string `json:"host"`
	State string `json:"state"`
	Count int    `json:"count"`
}

// The balance page through the lab's nginx, as a person watching it sees a
// failure: one bar per host; host3's link down greys its bar (silent) while
// the others stay live and no request fails; healed, it is live again. The
// screenshot of the failed host is docs/img/lab-balance.png
// (LBSERVER_DOC_IMAGES=1, make lab-screenshot).
func TestNginxLabBrowserBalance(t *testing.T) {
	l := labStart(t)
	ctx := browserNew(t, 1100, 1400)
	browserOpen(t, ctx, l.url+"/balance?path=/api/randoms%3Fcant%3D1000&rate=200&concurrency=16", "#start")
	browserEval[bool](t, ctx, `window.lbBalance.start({})`) // as a visitor pressing Start: no bound
	bars := func() map[string]labHostBar {
		m := map[string]labHostBar{}
		for _, b := range browserEval[[]labHostBar](t, ctx, `Array.from(document.querySelectorAll('#hosts > li')).map(function (li) {
		  return {host: li.dataset.host, state: li.dataset.state, count: Number(li.dataset.count)};
		})`) {
			m[b.Host] = b
		}
		return m
	}
	states := func(want map[string]string) func() bool {
		return func() bool {
			got := bars()
			for h, st := range want {
				if got[h].State != st {
					return false
				}
			}
			return len(got) == len(want)
		}
	}
	allLive := map[string]string{"host1": "live", "host2": "live", "host3": "live", "host4": "live"}
	Eventually(t, 30*time.Second, "four live host bars", states(allLive))
	Eventually(t, 60*time.Second, "600 answers on the page", func() bool {
		return browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`).Done >= 600
	})

	l.mustMake("lab-fail", "HOST=3")
	tDown := time.Now()
	Eventually(t, 30*time.Second, "host3's bar silent, the others live", states(map[string]string{"host1": "live", "host2": "live", "host3": "silent", "host4": "live"}))
	t.Logf("host3's bar turned silent %s after make lab-fail", time.Since(tDown).Round(time.Millisecond))
	down := bars()["host3"].Count
	// The pid bars are grouped by host: host3's workers are silent too.
	pids := browserEval[[]map[string]string](t, ctx, `Array.from(document.querySelectorAll('#pids > li')).map(function (li) {
	  return {host: li.dataset.host, pid: li.dataset.pid, state: li.dataset.state};
	})`)
	var order []string
	host3 := 0
	for _, b := range pids {
		if len(order) == 0 || order[len(order)-1] != b["host"] {
			order = append(order, b["host"])
		}
		if b["host"] == "host3" {
			host3++
			if b["state"] != "silent" {
				t.Errorf("host3's pid %s: state %q, want silent", b["pid"], b["state"])
			}
		}
	}
	if host3 == 0 || !slices.Equal(order, []string{"host1", "host2", "host3", "host4"}) {
		t.Errorf("pid bars: %v, want them grouped by host, host1 to host4, with host3's among them", pids)
	}
	png := browserScreenshot(t, ctx, "lab-balance")
	browserDocImage(t, "lab-balance", png)

	l.mustMake("lab-heal", "HOST=3")
	tHeal := time.Now()
	Eventually(t, 30*time.Second, "host3's bar live again", states(allLive))
	t.Logf("host3's bar live again %s after make lab-heal", time.Since(tHeal).Round(time.Millisecond))
	if got := bars()["host3"].Count; got <= down {
		t.Errorf("host3's count: %d after the heal, want more than %d", got, down)
	}
	browserEval[bool](t, ctx, `window.lbBalance.stop()`)
	var s balanceSnapshot
	Eventually(t, 30*time.Second, "the page's run to end (the requests in flight answered)", func() bool {
		s = browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`)
		return !s.Running && s.InFlight == 0
	})
	if s.HTTPErrors != 0 || s.NetErrors != 0 {
		t.Errorf("the page counted %d HTTP and %d network errors through the failure, want 0 (%v)", s.HTTPErrors, s.NetErrors, s)
	}
	browserNoErrors(t, ctx)
}
