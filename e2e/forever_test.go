package e2e

// Forever end to end: the documented forever command line and the JSON
// configurations in deploy/forever/, driven with the pinned forever from
// tools/node_modules under a private FOREVER_ROOT. Each test runs
// `forever stopall`, then SIGKILLs (by pid) any forever monitor that carries
// its FOREVER_ROOT and any lbserver started from its staged binary.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// foreverRow is one process in `forever list`.
type foreverRow struct {
	UID        string
	Command    string
	Script     string // the script and its arguments
	ForeverPid int    // the monitor (a node process)
	Pid        int    // lbserver
	Line       string
}

// foreverEnv is a forever CLI bound to one private FOREVER_ROOT.
type foreverEnv struct {
	tb   testing.TB
	bin  string
	root string
	dir  string
	env  []string
}

func foreverStart(tb testing.TB, dir string) *foreverEnv {
	tb.Helper()
	f := &foreverEnv{tb: tb, bin: pmTool(tb, "forever"), dir: dir}
	root, err := os.MkdirTemp("", "forever-")
	if err != nil {
		tb.Fatal(err)
	}
	f.root = root
	f.env = []string{"FOREVER_ROOT=" + root}
	tb.Cleanup(func() {
		if tb.Failed() {
			logs, _ := filepath.Glob(filepath.Join(root, "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				tb.Logf("%s (tail):\n%s", filepath.Base(l), pmTail(string(b), 3000))
			}
		}
		_, _ = pmCmd(tb, 60*time.Second, dir, f.env, f.bin, "stopall")
		for _, pid := range pmEnvPids("FOREVER_ROOT=" + root) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			tb.Logf("cleanup: killed forever monitor %d", pid)
		}
		os.RemoveAll(root)
	})
	return f
}

func (f *foreverEnv) run(args ...string) string {
	f.tb.Helper()
	return pmPlain(pmMust(f.tb, 2*time.Minute, f.dir, f.env, f.bin, args...))
}

// list parses `forever list`.
func (f *foreverEnv) list() []foreverRow {
	f.tb.Helper()
	var rows []foreverRow
	for _, line := range strings.Split(f.run("list", "--no-colors"), "\n") {
		// data:    [0] lbserver-8080 env     bin/lbserver --port 8080 --mode FORK 13597   13616    /root/lbserver-8080.log 0:0:0:2.034
		fs := strings.Fields(line)
		if len(fs) < 8 || fs[0] != "data:" || !strings.HasPrefix(fs[1], "[") {
			continue
		}
		n := len(fs)
		r := foreverRow{UID: fs[2], Command: fs[3], Script: strings.Join(fs[4:n-4], " "), Line: line}
		r.ForeverPid, _ = strconv.Atoi(fs[n-4])
		r.Pid, _ = strconv.Atoi(fs[n-3])
		rows = append(rows, r)
	}
	return rows
}

// row returns the list row of uid.
func (f *foreverEnv) row(uid string) (foreverRow, bool) {
	for _, r := range f.list() {
		if r.UID == uid {
			return r, true
		}
	}
	return foreverRow{}, false
}

// waitRow waits until `forever list` shows uid with a live pid that answers
// on port, and returns the row.
func (f *foreverEnv) waitRow(uid string, port int, timeout time.Duration) foreverRow {
	f.tb.Helper()
	var r foreverRow
	Eventually(f.tb, timeout, fmt.Sprintf("forever list shows %s answering on port %d", uid, port), func() bool {
		var ok bool
		r, ok = f.row(uid)
		if !ok || r.Pid <= 0 || !Alive(r.Pid) {
			return false
		}
		in, err := pmGetInfo(port)
		// FORK: the listed pid answers. CLUSTER: one of its workers does.
		return err == nil && (in.Pid == r.Pid || in.Ppid == r.Pid)
	})
	return r
}

// pmEnvPids lists the processes whose environment holds the entry kv.
func pmEnvPids(kv string) []int {
	return Pids(func(pid int) bool {
		if pid == os.Getpid() {
			return false
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		return err == nil && slices.Contains(strings.Split(string(b), "\x00"), kv)
	})
}

// foreverConfig copies deploy/forever/NAME into dir with each app's --port
// value mapped through ports (shipped port -> test port); nothing else changes.
func foreverConfig(tb testing.TB, name, dir string, ports map[string]int) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "forever", name))
	if err != nil {
		tb.Fatal(err)
	}
	var apps []map[string]any
	if err := json.Unmarshal(b, &apps); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	for _, a := range apps {
		args, _ := a["args"].([]any)
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--port" {
				p, ok := ports[fmt.Sprint(args[i+1])]
				if !ok {
					tb.Fatalf("%s: app %v uses port %v, which the test did not map", name, a["uid"], args[i+1])
				}
				args[i+1] = strconv.Itoa(p)
			}
		}
	}
	out, err := json.MarshalIndent(apps, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestForeverCommandLine runs the documented forever command line for one
// FORK instance with watch on the binary: the list shows it, a killed process
// comes back, a rebuild is served, and stopall leaves nothing.
func TestForeverCommandLine(t *testing.T) {
	stage, bin := pmStage(t)
	port := FreePort(t)
	uid := fmt.Sprintf("lbserver-%d", port)
	f := foreverStart(t, stage)
	f.run("start", "--uid", uid, "-a", "-c", "env", "--killSignal", "SIGTERM",
		"--minUptime", "1000", "-w", "--watchDirectory", "bin",
		"bin/lbserver", "--port", strconv.Itoa(port), "--mode", "FORK")

	r := f.waitRow(uid, port, 30*time.Second)
	if r.Command != "env" || !strings.HasPrefix(r.Script, "bin/lbserver --port "+strconv.Itoa(port)) {
		t.Errorf("forever list row %q: want command env and script bin/lbserver --port %d ...", r.Line, port)
	}
	if in, _ := pmGetInfo(port); in.Ppid != r.ForeverPid {
		t.Errorf("lbserver's parent is %d, want the forever monitor %d (env must exec the binary)", in.Ppid, r.ForeverPid)
	}

	// kill -9: forever starts it again; the list shows the new pid.
	foreverPastMinUptime(t, r.Pid)
	if err := syscall.Kill(r.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var r2 foreverRow
	Eventually(t, 30*time.Second, "forever restarts the killed lbserver", func() bool {
		var ok bool
		r2, ok = f.row(uid)
		if !ok || r2.Pid == r.Pid || !Alive(r2.Pid) {
			return false
		}
		in, err := pmGetInfo(port)
		return err == nil && in.Pid == r2.Pid
	})
	if r2.ForeverPid != r.ForeverPid {
		t.Errorf("monitor changed from %d to %d; the same monitor should restart its child", r.ForeverPid, r2.ForeverPid)
	}

	// Rebuild: forever watches bin/ and restarts the process on the new build.
	pmRebuild(t, bin, "forever")
	build2 := pmBuildOf(t, bin)
	Eventually(t, 60*time.Second, "forever serves the new build "+build2, func() bool {
		in, err := pmGetInfo(port)
		return err == nil && in.Build == build2
	})

	out := f.run("stopall")
	if !strings.Contains(out, uid) {
		t.Errorf("forever stopall did not name %s:\n%s", uid, out)
	}
	pmWaitGone(t, stage, 30*time.Second)
	Eventually(t, 30*time.Second, "no forever monitor left", func() bool {
		return len(pmEnvPids("FOREVER_ROOT="+f.root)) == 0
	})
	if rows := f.list(); len(rows) != 0 {
		t.Fatalf("forever list after stopall: %v", rows)
	}
}

// TestForeverTopologyA starts deploy/forever/topology-a.json (ports moved to
// free ones): the list shows both instances, the CLUSTER master has its
// workers, a kill -9 of the master brings back a master with new workers,
// and stopall leaves nothing.
func TestForeverTopologyA(t *testing.T) {
	stage, _ := pmStage(t)
	pf, pc := FreePort(t), FreePort(t)
	conf := foreverConfig(t, "topology-a.json", stage, map[string]int{"8080": pf, "8081": pc})
	f := foreverStart(t, stage)
	f.run("start", conf)

	f.waitRow("lbserver-8080", pf, 30*time.Second)
	m := f.waitRow("lbserver-8081", pc, 30*time.Second)
	var workers []int
	Eventually(t, 20*time.Second, "2 workers under the CLUSTER master", func() bool {
		workers = ChildPids(m.Pid)
		return len(workers) == 2
	})

	foreverPastMinUptime(t, m.Pid)
	if err := syscall.Kill(m.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var m2 foreverRow
	Eventually(t, 40*time.Second, "forever restarts the killed master, with 2 new workers", func() bool {
		var ok bool
		m2, ok = f.row("lbserver-8081")
		return ok && m2.Pid != m.Pid && Alive(m2.Pid) && len(ChildPids(m2.Pid)) == 2
	})
	Eventually(t, 30*time.Second, "the old workers exit", func() bool {
		for _, w := range workers {
			if Alive(w) {
				return false
			}
		}
		return true
	})
	build := pmBuildOf(t, filepath.Join(stage, "bin", "lbserver"))
	if ok, seen := pmAllServe(pc, ChildPids(m2.Pid), build, 200); !ok {
		t.Fatalf("after kill -9 of the master, port %d: %s", pc, seen)
	}

	f.run("stopall")
	pmWaitGone(t, stage, 40*time.Second)
	Eventually(t, 30*time.Second, "no forever monitor left", func() bool {
		return len(pmEnvPids("FOREVER_ROOT="+f.root)) == 0
	})
}

// TestForeverTopologyB starts deploy/forever/topology-b.json (ports moved to
// free ones): five instances listed, each answering on its own port.
func TestForeverTopologyB(t *testing.T) {
	stage, _ := pmStage(t)
	ports := map[string]int{}
	for _, p := range []string{"8080", "8082", "8083", "8084", "8085"} {
		ports[p] = FreePort(t)
	}
	conf := foreverConfig(t, "topology-b.json", stage, ports)
	f := foreverStart(t, stage)
	f.run("start", conf)
	seen := map[int]bool{}
	for shipped, port := range ports {
		r := f.waitRow("lbserver-"+shipped, port, 30*time.Second)
		seen[r.Pid] = true
	}
	if len(seen) != 5 || len(f.list()) != 5 {
		t.Fatalf("want 5 distinct listed processes, got %d pids and %d rows", len(seen), len(f.list()))
	}
	f.run("stopall")
	pmWaitGone(t, stage, 40*time.Second)
}

// TestForeverTopologyBAfterA: the documents' order, topology-a.json then
// topology-b.json with nothing stopped in between. B's lbserver-8080 finds
// the port taken and exits at once; forever must not restart it in a loop
// (it exited within minUptime, and the configs set no spinSleepTime), and
// `forever stop lbserver-8080` must return: with a spinSleepTime, forever
// keeps a dead child as "running" while it sleeps, its stop waits for an
// exit that already happened, and the command never returns.
func TestForeverTopologyBAfterA(t *testing.T) {
	stage, _ := pmStage(t)
	ports := map[string]int{}
	for _, p := range []string{"8080", "8081", "8082", "8083", "8084", "8085"} {
		ports[p] = FreePort(t)
	}
	confA := foreverConfig(t, "topology-a.json", stage, ports)
	confB := foreverConfig(t, "topology-b.json", stage, ports)
	f := foreverStart(t, stage)
	f.run("start", confA)
	first := f.waitRow("lbserver-8080", ports["8080"], 30*time.Second)
	f.waitRow("lbserver-8081", ports["8081"], 30*time.Second)
	f.run("start", confB)
	for _, p := range []string{"8082", "8083", "8084", "8085"} {
		f.waitRow("lbserver-"+p, ports[p], 30*time.Second)
	}
	// Watch B's lbserver-8080 for 4 s (4 restarts with a 1 s spinSleepTime).
	pids := map[int]bool{}
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, r := range f.list() {
			if r.UID == "lbserver-8080" && r.Pid > 0 && r.Pid != first.Pid {
				pids[r.Pid] = true
			}
		}
	}
	if len(pids) > 1 {
		t.Errorf("B's second lbserver-8080 was started %d times in 4 s (pids %v): a restart loop", len(pids), slices.Sorted(maps.Keys(pids)))
	}
	if in, err := pmGetInfo(ports["8080"]); err != nil || in.Pid != first.Pid {
		t.Errorf("port 8080 answered pid %d (%v), want A's lbserver-8080, pid %d", in.Pid, err, first.Pid)
	}

	start := time.Now()
	out, err := pmCmd(t, 30*time.Second, stage, f.env, f.bin, "stop", "lbserver-8080")
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("forever stop lbserver-8080 did not return within 30 s:\n%s", out)
	}
	t.Logf("forever stop lbserver-8080 returned in %s (%v)", time.Since(start).Round(time.Millisecond), err)
	Eventually(t, 30*time.Second, "lbserver-8080 stopped", func() bool { return !Alive(first.Pid) })
	if _, err := pmGetInfo(ports["8080"]); err == nil {
		t.Errorf("port 8080 still answers after forever stop lbserver-8080")
	}
	f.run("stopall")
	pmWaitGone(t, stage, 40*time.Second)
}

// foreverPastMinUptime waits until pid has run longer than the configs'
// minUptime (1 s): forever restarts a process that dies later than that,
// and lets one that dies sooner go (a start-up failure, not a crash).
func foreverPastMinUptime(tb testing.TB, pid int) {
	tb.Helper()
	Eventually(tb, 10*time.Second, fmt.Sprintf("pid %d up for more than 1.2 s", pid), func() bool {
		return procUptime(pid) > 1200*time.Millisecond
	})
}

// procUptime is how long pid has been running, from /proc (0 if gone).
func procUptime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0
	}
	start, _ := strconv.ParseFloat(f[19], 64) // starttime, clock ticks after boot (USER_HZ = 100)
	u, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	up, _ := strconv.ParseFloat(strings.Fields(string(u))[0], 64)
	return time.Duration((up - start/100) * float64(time.Second))
}
