package e2e

// PM2 end to end: deploy/pm2/ecosystem.config.js and the documented `pm2`
// command lines, driven with the pinned pm2 from tools/node_modules under a
// private PM2_HOME. Each test kills its own PM2 daemon (pm2 kill, then the pid
// in PM2_HOME/pm2.pid) and every lbserver started from its staged binary.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pm2Proc is one row of `pm2 jlist`.
type pm2Proc struct {
	Name string `json:"name"`
	Pid  int    `json:"pid"`
	PmID int    `json:"pm_id"`
	Env  struct {
		Status      string `json:"status"`
		ExecMode    string `json:"exec_mode"`
		RestartTime int    `json:"restart_time"`
		Port        any    `json:"PORT"`
	} `json:"pm2_env"`
}

// pm2Env is a PM2 CLI bound to one private PM2_HOME.
type pm2Env struct {
	tb   testing.TB
	bin  string   // tools/node_modules/.bin/pm2
	home string   // PM2_HOME
	dir  string   // working directory of the pm2 commands
	env  []string // PM2_HOME=... and the test's variables
}

// pm2Start prepares a PM2 CLI with its own PM2_HOME and registers the
// cleanup that stops its daemon. env is added to the environment of every
// pm2 command (the daemon inherits it from the first one).
func pm2Start(tb testing.TB, dir string, env ...string) *pm2Env {
	tb.Helper()
	p := &pm2Env{tb: tb, bin: pmTool(tb, "pm2"), dir: dir}
	// A short path: PM2 puts its unix sockets in PM2_HOME (108-byte limit).
	home, err := os.MkdirTemp("", "pm2-")
	if err != nil {
		tb.Fatal(err)
	}
	p.home = home
	p.env = append([]string{"PM2_HOME=" + home}, env...)
	tb.Cleanup(func() {
		if tb.Failed() {
			p.dumpLogs()
		}
		_, _ = pmCmd(tb, 30*time.Second, dir, p.env, p.bin, "kill")
		pmKillPidFile(filepath.Join(home, "pm2.pid"))
		os.RemoveAll(home)
	})
	return p
}

// run runs `pm2 ARGS...` and fails the test on error.
func (p *pm2Env) run(args ...string) string {
	p.tb.Helper()
	return pmPlain(pmMust(p.tb, 2*time.Minute, p.dir, p.env, p.bin, args...))
}

// jlist parses `pm2 jlist`.
func (p *pm2Env) jlist() []pm2Proc {
	p.tb.Helper()
	out := p.run("jlist")
	i := strings.IndexByte(out, '[')
	if i < 0 {
		p.tb.Fatalf("pm2 jlist printed no JSON list:\n%s", out)
	}
	var list []pm2Proc
	if err := json.Unmarshal([]byte(out[i:]), &list); err != nil {
		p.tb.Fatalf("pm2 jlist: %v\n%s", err, out)
	}
	sort.Slice(list, func(a, b int) bool { return list[a].PmID < list[b].PmID })
	return list
}

// app returns the rows of app name.
func (p *pm2Env) app(name string) []pm2Proc {
	var out []pm2Proc
	for _, r := range p.jlist() {
		if r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

// waitOnline waits until app name has n rows, all online with a live pid,
// and returns them.
func (p *pm2Env) waitOnline(name string, n int, timeout time.Duration) []pm2Proc {
	p.tb.Helper()
	var rows []pm2Proc
	Eventually(p.tb, timeout, fmt.Sprintf("pm2 jlist: %d %s online", n, name), func() bool {
		rows = p.app(name)
		if len(rows) != n {
			return false
		}
		for _, r := range rows {
			if r.Env.Status != "online" || r.Pid <= 0 || !Alive(r.Pid) {
				return false
			}
		}
		return true
	})
	return rows
}

func (p *pm2Env) dumpLogs() {
	b, _ := os.ReadFile(filepath.Join(p.home, "pm2.log"))
	p.tb.Logf("PM2_HOME/pm2.log (tail):\n%s", pmTail(string(b), 4000))
	logs, _ := filepath.Glob(filepath.Join(p.home, "logs", "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		if len(b) > 0 {
			p.tb.Logf("%s (tail):\n%s", filepath.Base(f), pmTail(string(b), 2000))
		}
	}
}

func pmTail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func pm2Pids(rows []pm2Proc) []int {
	var out []int
	for _, r := range rows {
		out = append(out, r.Pid)
	}
	return out
}

// pm2Ecosystem is the shipped PM2 file, used as it is.
func pm2Ecosystem() string {
	return filepath.Join(repoRoot(), "deploy", "pm2", "ecosystem.config.js")
}

// TestPM2TopologyA starts topology A from the ecosystem file (8080 FORK and
// 8081 CLUSTER, here on free ports), then checks what a user checks: the
// list, the process tree, a kill -9 of each PM2 process, a rebuild under
// watch, and `pm2 delete all`.
func TestPM2TopologyA(t *testing.T) {
	stage, bin := pmStage(t)
	pf, pc := FreePort(t), FreePort(t)
	p := pm2Start(t, repoRoot(),
		"LBSERVER_BIN="+bin,
		fmt.Sprintf("LBSERVER_PM2_FORK_PORT=%d", pf),
		fmt.Sprintf("LBSERVER_PM2_CLUSTER_PORT=%d", pc))
	p.run("start", pm2Ecosystem(), "--only", "lbserver-fork,lbserver-cluster")

	fork := p.waitOnline("lbserver-fork", 1, 30*time.Second)[0]
	master := p.waitOnline("lbserver-cluster", 1, 30*time.Second)[0]
	for _, r := range []pm2Proc{fork, master} {
		if r.Env.ExecMode != "fork_mode" {
			t.Errorf("%s: exec_mode %q, want fork_mode (a native binary)", r.Name, r.Env.ExecMode)
		}
	}
	WaitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", pf), 20*time.Second)
	WaitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", pc), 20*time.Second)

	// FORK: the PM2 process is the server.
	in, err := pmGetInfo(pf)
	if err != nil {
		t.Fatal(err)
	}
	if in.Pid != fork.Pid || in.Mode != "FORK" {
		t.Fatalf("port %d answered pid %d mode %s, want the PM2 pid %d in FORK", pf, in.Pid, in.Mode, fork.Pid)
	}
	// CLUSTER: the PM2 process is the master; its 2 children answer.
	var workers []int
	Eventually(t, 20*time.Second, "2 workers under the CLUSTER master", func() bool {
		workers = ChildPids(master.Pid)
		return len(workers) == 2
	})
	build := pmBuildOf(t, bin)
	if ok, seen := pmAllServe(pc, workers, build, 200); !ok {
		t.Fatalf("CLUSTER port %d: %s", pc, seen)
	}

	// kill -9 of the FORK process: PM2 starts a new one, ↺ grows, the port answers.
	if err := syscall.Kill(fork.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var fork2 pm2Proc
	Eventually(t, 30*time.Second, "PM2 restarts the killed FORK process", func() bool {
		rows := p.app("lbserver-fork")
		if len(rows) != 1 {
			return false
		}
		fork2 = rows[0]
		return fork2.Env.Status == "online" && fork2.Pid != fork.Pid && Alive(fork2.Pid) &&
			fork2.Env.RestartTime > fork.Env.RestartTime
	})
	WaitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", pf), 20*time.Second)
	if in, err := pmGetInfo(pf); err != nil || in.Pid != fork2.Pid {
		t.Fatalf("after kill -9: port %d answered %+v (%v), want pid %d", pf, in, err, fork2.Pid)
	}

	// kill -9 of the CLUSTER master: PM2 starts a new master with 2 new
	// workers; the old workers see their master gone and leave.
	if err := syscall.Kill(master.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var master2 pm2Proc
	var workers2 []int
	Eventually(t, 40*time.Second, "PM2 restarts the killed CLUSTER master, with 2 new workers", func() bool {
		rows := p.app("lbserver-cluster")
		if len(rows) != 1 {
			return false
		}
		master2 = rows[0]
		if master2.Env.Status != "online" || master2.Pid == master.Pid || master2.Env.RestartTime <= master.Env.RestartTime {
			return false
		}
		workers2 = ChildPids(master2.Pid)
		return len(workers2) == 2
	})
	Eventually(t, 30*time.Second, "the old workers exit after their master was killed", func() bool {
		for _, w := range workers {
			if Alive(w) {
				return false
			}
		}
		return true
	})
	if ok, seen := pmAllServe(pc, workers2, build, 200); !ok {
		t.Fatalf("after kill -9 of the master, port %d: %s", pc, seen)
	}

	// Rebuild under watch: PM2 restarts every process; all serve the new build.
	pmRebuild(t, bin, "topology-a")
	build2 := pmBuildOf(t, bin)
	if build2 == build {
		t.Fatalf("rebuild kept build %s; the test needs a different binary", build)
	}
	Eventually(t, 60*time.Second, "every PM2 process serves the new build "+build2, func() bool {
		f := p.app("lbserver-fork")
		m := p.app("lbserver-cluster")
		if len(f) != 1 || len(m) != 1 || f[0].Env.Status != "online" || m[0].Env.Status != "online" {
			return false
		}
		if ok, _ := pmAllServe(pf, []int{f[0].Pid}, build2, 5); !ok {
			return false
		}
		ws := ChildPids(m[0].Pid)
		if len(ws) != 2 {
			return false
		}
		ok, _ := pmAllServe(pc, ws, build2, 50)
		return ok
	})

	// pm2 delete all: no lbserver process is left.
	p.run("delete", "all")
	pmWaitGone(t, stage, 40*time.Second)
	if rows := p.jlist(); len(rows) != 0 {
		t.Fatalf("pm2 jlist after delete all: %d rows, want 0", len(rows))
	}
}

// TestPM2TopologyB starts topology B's four instances (lbserver-b: PM2 gives
// instance i PORT=first+i) and checks each port is its own process, and that
// a kill -9 of one brings that same port back.
func TestPM2TopologyB(t *testing.T) {
	stage, bin := pmStage(t)
	pf := FreePort(t)
	pb := pmFreePortRun(t, 4)
	p := pm2Start(t, repoRoot(),
		"LBSERVER_BIN="+bin,
		fmt.Sprintf("LBSERVER_PM2_FORK_PORT=%d", pf),
		fmt.Sprintf("LBSERVER_PM2_B_PORT=%d", pb))
	p.run("start", pm2Ecosystem(), "--only", "lbserver-fork,lbserver-b")

	p.waitOnline("lbserver-fork", 1, 30*time.Second)
	rows := p.waitOnline("lbserver-b", 4, 30*time.Second)
	byPort := map[int]pm2Proc{}
	for i := range 4 {
		port := pb + i
		WaitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
		in, err := pmGetInfo(port)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Pid == in.Pid {
				byPort[port] = r
			}
		}
		if _, ok := byPort[port]; !ok || in.Port != port || in.Mode != "FORK" {
			t.Fatalf("port %d answered %+v; want a FORK lbserver-b instance of %v on that port", port, in, pm2Pids(rows))
		}
	}
	if len(byPort) != 4 {
		t.Fatalf("4 ports answered from %d distinct instances, want 4", len(byPort))
	}
	WaitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", pf), 20*time.Second)

	// kill -9 of the instance on the third port: the same port answers again
	// from a new pid, and that instance's restart count grew.
	port := pb + 2
	old := byPort[port]
	if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, fmt.Sprintf("port %d answers from a new pid after kill -9 of %d", port, old.Pid), func() bool {
		in, err := pmGetInfo(port)
		return err == nil && in.Pid != old.Pid && in.Port == port
	})
	var again pm2Proc
	for _, r := range p.app("lbserver-b") {
		if r.PmID == old.PmID {
			again = r
		}
	}
	if again.Env.RestartTime <= old.Env.RestartTime || again.Pid == old.Pid {
		t.Fatalf("instance %d after kill -9: pid %d restarts %d; want a new pid and restarts > %d",
			old.PmID, again.Pid, again.Env.RestartTime, old.Env.RestartTime)
	}

	p.run("delete", "all")
	pmWaitGone(t, stage, 40*time.Second)
}

// TestPM2InstancesShareAPortWithReusePort runs the documented command line
// `pm2 start bin/lbserver -i 2 --watch bin/lbserver -- --port P --reuseport`:
// PM2 starts 2 processes in fork_mode (its cluster mode is for Node.js only);
// both answer on the one port, a kill -9 of one leaves the port answering,
// and a rebuild reaches both.
func TestPM2InstancesShareAPortWithReusePort(t *testing.T) {
	stage, bin := pmStage(t)
	port := FreePort(t)
	p := pm2Start(t, stage)
	p.run("start", "bin/lbserver", "--name", "lbserver-reuseport", "-i", "2", "--watch", "bin/lbserver",
		"--", "--port", fmt.Sprint(port), "--mode", "FORK", "--reuseport")
	rows := p.waitOnline("lbserver-reuseport", 2, 30*time.Second)
	for _, r := range rows {
		if r.Env.ExecMode != "fork_mode" {
			t.Errorf("instance %d: exec_mode %q, want fork_mode", r.PmID, r.Env.ExecMode)
		}
	}
	WaitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
	build := pmBuildOf(t, bin)
	if ok, seen := pmAllServe(port, pm2Pids(rows), build, 200); !ok {
		t.Fatalf("both instances should answer on port %d: %s", port, seen)
	}

	// kill -9 of one: the other keeps the port; PM2 brings the killed one back.
	if err := syscall.Kill(rows[0].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The other instance keeps the port open. (Connections the kernel had
	// already queued on the killed process's socket are reset: kill -9 gives
	// it no chance to drain, so a few failures right after the kill are
	// expected and only logged.)
	if seen, failed := pmSample(port, 20); len(seen) == 0 {
		t.Fatalf("port %d did not answer once in 20 requests after one of two instances was killed", port)
	} else if failed > 0 {
		t.Logf("%d of 20 requests failed right after kill -9 of one instance", failed)
	}
	Eventually(t, 30*time.Second, "PM2 restarts the killed instance", func() bool {
		for _, r := range p.app("lbserver-reuseport") {
			if r.PmID == rows[0].PmID {
				return r.Env.Status == "online" && r.Pid != rows[0].Pid && r.Env.RestartTime > rows[0].Env.RestartTime
			}
		}
		return false
	})

	pmRebuild(t, bin, "reuseport")
	build2 := pmBuildOf(t, bin)
	Eventually(t, 60*time.Second, "both instances serve the new build "+build2, func() bool {
		rs := p.app("lbserver-reuseport")
		if len(rs) != 2 {
			return false
		}
		for _, r := range rs {
			if r.Env.Status != "online" {
				return false
			}
		}
		ok, _ := pmAllServe(port, pm2Pids(rs), build2, 50)
		return ok
	})

	p.run("delete", "all")
	pmWaitGone(t, stage, 40*time.Second)
}

// TestPM2LbserverWatchReloadsWithoutFailures runs lbserver-cluster-watch:
// PM2 does not watch; lbserver's own --watch replaces the workers when the
// binary changes. The PM2 process (the master) keeps its pid and restart
// count, every worker serves the new build, and a client loop running
// through the reload sees no failed request.
func TestPM2LbserverWatchReloadsWithoutFailures(t *testing.T) {
	stage, bin := pmStage(t)
	pc := FreePort(t)
	p := pm2Start(t, repoRoot(), "LBSERVER_BIN="+bin, fmt.Sprintf("LBSERVER_PM2_CLUSTER_PORT=%d", pc))
	p.run("start", pm2Ecosystem(), "--only", "lbserver-cluster-watch")
	master := p.waitOnline("lbserver-cluster-watch", 1, 30*time.Second)[0]
	WaitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", pc), 20*time.Second)
	var workers []int
	Eventually(t, 20*time.Second, "2 workers under the master", func() bool {
		workers = ChildPids(master.Pid)
		return len(workers) == 2
	})

	// A bounded client loop: at most 60s and 20000 requests.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := Get(fmt.Sprintf("http://127.0.0.1:%d/api/info", pc))
			if err != nil || r.Status != 200 {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%v status %d", err, r.Status))
				continue
			}
			ok.Add(1)
		}
	})
	stopLoop := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoop()

	Eventually(t, 10*time.Second, "the client loop is running", func() bool { return ok.Load() > 20 })
	pmRebuild(t, bin, "lbserver-watch")
	build2 := pmBuildOf(t, bin)
	var workers2 []int
	Eventually(t, 60*time.Second, "every worker replaced and serving "+build2, func() bool {
		workers2 = ChildPids(master.Pid)
		if len(workers2) != 2 {
			return false
		}
		for _, w := range workers2 {
			for _, o := range workers {
				if w == o {
					return false
				}
			}
		}
		ok, _ := pmAllServe(pc, workers2, build2, 50)
		return ok
	})
	before := ok.Load()
	Eventually(t, 10*time.Second, "the client loop goes on after the reload", func() bool { return ok.Load() > before+20 })
	stopLoop()
	t.Logf("client loop through the reload: %d ok, %d failed", ok.Load(), failed.Load())
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d requests failed during lbserver's own --watch reload (first: %v)", n, firstErr.Load())
	}
	m := p.app("lbserver-cluster-watch")
	if len(m) != 1 || m[0].Pid != master.Pid || m[0].Env.RestartTime != master.Env.RestartTime {
		t.Fatalf("PM2 row after the reload: %+v; want the same master pid %d and restart count %d",
			m, master.Pid, master.Env.RestartTime)
	}

	p.run("delete", "all")
	pmWaitGone(t, stage, 40*time.Second)
}

// TestPM2ClusterWatchWhileClusterRuns: lbserver-cluster-watch started while
// lbserver-cluster holds the same port. Its lbserver exits at once ("address
// already in use"); PM2 must give up after a few quick failures (min_uptime,
// max_restarts) and show the app as errored, not restart it for ever, and
// lbserver-cluster keeps serving.
func TestPM2ClusterWatchWhileClusterRuns(t *testing.T) {
	_, bin := pmStage(t)
	pc := FreePort(t)
	p := pm2Start(t, repoRoot(), "LBSERVER_BIN="+bin, fmt.Sprintf("LBSERVER_PM2_CLUSTER_PORT=%d", pc))
	p.run("start", pm2Ecosystem(), "--only", "lbserver-cluster")
	master := p.waitOnline("lbserver-cluster", 1, 30*time.Second)[0]
	WaitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/healthz", pc), 20*time.Second)

	p.run("start", pm2Ecosystem(), "--only", "lbserver-cluster-watch")
	var row pm2Proc
	Eventually(t, 30*time.Second, "lbserver-cluster-watch errored (PM2 gave up)", func() bool {
		rows := p.app("lbserver-cluster-watch")
		if len(rows) != 1 {
			return false
		}
		row = rows[0]
		return row.Env.Status == "errored"
	})
	// It stays given up: no restart in the next 3 s.
	restarts := row.Env.RestartTime
	if !restartsStable(p, restarts) {
		t.Errorf("lbserver-cluster-watch kept restarting after it showed errored (was %d restarts)", restarts)
	}
	if restarts > 5 {
		t.Errorf("lbserver-cluster-watch restarted %d times before PM2 gave up, want at most 5", restarts)
	}
	logs := p.run("logs", "lbserver-cluster-watch", "--lines", "20", "--nostream")
	if !strings.Contains(logs, "address already in use") {
		t.Errorf("pm2 logs lbserver-cluster-watch does not say why:\n%s", logs)
	}
	if r := p.app("lbserver-cluster"); len(r) != 1 || r[0].Pid != master.Pid || r[0].Env.Status != "online" {
		t.Errorf("lbserver-cluster: %+v, want still online with pid %d", r, master.Pid)
	}
	if in, err := pmGetInfo(pc); err != nil || in.Ppid != master.Pid {
		t.Errorf("port %d: %+v %v, want a worker of lbserver-cluster (master %d)", pc, in, err, master.Pid)
	}
}

// restartsStable watches the app for 3 s and reports whether its restart
// count stayed at n.
func restartsStable(p *pm2Env, n int) bool {
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		r := p.app("lbserver-cluster-watch")
		if len(r) != 1 || r[0].Env.RestartTime != n {
			return false
		}
	}
	return true
}
