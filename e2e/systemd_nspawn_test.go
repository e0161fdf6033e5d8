package e2e

// The shipped units under a real systemd. systemd is not PID 1 on these
// machines, so each test boots Debian's systemd in a container with
// systemd-nspawn (a private network namespace, the root read-only under a
// tmpfs overlay), copies the binary and the units in, and drives them with
// `nsenter -t LEADER -a systemctl ...`, as an operator would. Clients run in
// the test process, with their sockets opened inside the container's network
// namespace. The root is built once by scripts/deps.d/26-nspawn-root.sh
// (debootstrap, about 45 s) outside the repository and reused.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sdRootDefault is where scripts/deps.d/26-nspawn-root.sh builds the root.
const sdRootDefault = "/var/cache/lbserver/nspawn-root"

var sdRootOnce struct {
	sync.Once
	err error
}

// sdNspawnRoot returns the container root, building it when it is missing.
func sdNspawnRoot(tb testing.TB) string {
	tb.Helper()
	relRequireRoot(tb)
	requireTool(tb, "systemd-nspawn")
	requireTool(tb, "nsenter")
	root := os.Getenv("LBSERVER_NSPAWN_ROOT")
	if root == "" {
		root = sdRootDefault
	}
	stamp := filepath.Join(root, ".lbserver-root")
	if _, err := os.Stat(stamp); err != nil {
		sdRootOnce.Do(func() {
			tb.Logf("building the systemd-nspawn root %s (debootstrap, about 45 s)", root)
			cmd := exec.Command("bash", filepath.Join(repoRoot(), "scripts", "deps.d", "26-nspawn-root.sh"))
			cmd.Env = append(os.Environ(), "LBSERVER_NSPAWN_ROOT="+root)
			if out, err := cmd.CombinedOutput(); err != nil {
				sdRootOnce.err = fmt.Errorf("%w\n%s", err, out)
			}
		})
		if sdRootOnce.err != nil {
			tb.Fatalf("build the nspawn root: %v", sdRootOnce.err)
		}
		if _, err := os.Stat(stamp); err != nil {
			tb.Fatalf("no nspawn root at %s after scripts/deps.d/26-nspawn-root.sh: %v", root, err)
		}
	}
	return root
}

// sdContainer is a booted container whose PID 1 is systemd.
type sdContainer struct {
	tb     testing.TB
	leader int      // the container's systemd, as a host pid
	netns  *os.File // its network namespace
	cgroup []string // the cgroup folders made for nspawn (one per hierarchy)
}

var sdSeq atomic.Int64

// sdBoot boots the root in a container and waits for its systemd. Every
// cleanup runs even when the test fails: halt (SIGTERM to nspawn), SIGKILL
// to the container's PID 1 if it is still there (which ends every process in
// it), then the cgroup folders nspawn made are removed.
func sdBoot(tb testing.TB) *sdContainer {
	tb.Helper()
	root := sdNspawnRoot(tb)
	name := fmt.Sprintf("lbserver-e2e-%d-%d", os.Getpid(), sdSeq.Add(1))
	c := &sdContainer{tb: tb}

	// nspawn run from the root cgroup leaves empty payload/ and supervisor/
	// folders behind: give it folders of its own, removed at the end.
	for _, h := range []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue
		}
		dir := filepath.Join(h, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		c.cgroup = append(c.cgroup, dir)
	}
	tb.Cleanup(c.removeCgroups) // runs last: after the container is gone
	var join strings.Builder
	for _, dir := range c.cgroup {
		fmt.Fprintf(&join, "echo $$ > %q/cgroup.procs && ", dir)
	}
	cmd := exec.Command("/bin/sh", "-c", join.String()+`exec "$0" "$@" </dev/null`,
		"systemd-nspawn", "-q", "--register=no", "--keep-unit", "--private-network",
		"--volatile=overlay", "-M", name, "-D", root, "-b", "--console=pipe")
	p := StartCmd(tb, cmd) // its cleanup SIGKILLs nspawn's group
	tb.Cleanup(func() {
		_ = p.Signal(syscall.SIGTERM) // a clean halt takes ~0.2 s
		if !p.Wait(15 * time.Second) {
			tb.Errorf("systemd-nspawn did not halt within 15s of SIGTERM")
		}
		if c.leader > 0 {
			_ = syscall.Kill(c.leader, syscall.SIGKILL) // PID 1 of its namespace: takes all with it
		}
		if c.netns != nil {
			c.netns.Close()
		}
		_ = os.Remove(filepath.Join("/run/systemd/nspawn/propagate", name))
	})

	start := time.Now()
	Eventually(tb, 30*time.Second, "the container's systemd", func() bool {
		select {
		case <-p.Done():
			tb.Fatalf("systemd-nspawn exited: %v\n%s", p.Err(), p.Output.String())
		default:
		}
		c.leader = sdChildNamed(p.Pid(), "systemd")
		if c.leader == 0 {
			return false
		}
		fi, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/systemd/private", c.leader))
		return err == nil && fi.Mode()&fs.ModeSocket != 0
	})
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", c.leader))
	if err != nil {
		tb.Fatal(err)
	}
	c.netns = ns
	// Wait for the boot to finish: units started later would race it.
	out, err := c.systemctl("is-system-running", "--wait")
	if err != nil && strings.TrimSpace(out) != "degraded" {
		tb.Fatalf("container boot: systemctl is-system-running: %s %v", out, err)
	}
	tb.Logf("container %s booted in %v (%s)", name, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	return c
}

// sdChildNamed is the child of pid whose command name is comm, or 0.
func sdChildNamed(pid int, comm string) int {
	matches, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, m := range matches {
		b, _ := os.ReadFile(m)
		for _, f := range strings.Fields(string(b)) {
			c, _ := strconv.Atoi(f)
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); err == nil && strings.TrimSpace(string(b)) == comm {
				return c
			}
		}
	}
	return 0
}

// removeCgroups removes the folders nspawn made under ours, deepest first,
// waiting for the processes in them to be gone.
func (c *sdContainer) removeCgroups() {
	for _, top := range c.cgroup {
		var dirs []string
		_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			deadline := time.Now().Add(10 * time.Second)
			for {
				err := os.Remove(d)
				if err == nil || errors.Is(err, fs.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) {
					c.tb.Errorf("cgroup %s left behind: %v", d, err)
					break
				}
				time.Sleep(20 * time.Millisecond) // the kernel frees a cgroup once its last process is reaped
			}
		}
	}
}

// run runs a command inside the container (all its namespaces).
func (c *sdContainer) run(argv ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.leader), "-a"}, argv...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *sdContainer) systemctl(args ...string) (string, error) {
	return c.run(append([]string{"systemctl", "--no-pager"}, args...)...)
}

// must runs systemctl and fails the test when it fails.
func (c *sdContainer) must(args ...string) string {
	c.tb.Helper()
	out, err := c.systemctl(args...)
	if err != nil {
		c.tb.Fatalf("systemctl %s: %v\n%s\njournal:\n%s", strings.Join(args, " "), err, out, c.journal(""))
	}
	return out
}

// show returns one property of a unit (systemctl show -p P --value).
func (c *sdContainer) show(unit, prop string) string {
	c.tb.Helper()
	return strings.TrimSpace(c.must("show", "-p", prop, "--value", unit))
}

// journal is this boot's log of unit (all of it when unit is "").
func (c *sdContainer) journal(unit string) string {
	args := []string{"journalctl", "-b", "--no-pager", "-o", "short-monotonic"}
	if unit != "" {
		args = append(args, "-u", unit)
	}
	out, _ := c.run(args...)
	return out
}

// install copies the binary under test and the units of deploy/systemd into
// the container (through /proc/LEADER/root), then daemon-reload.
func (c *sdContainer) install() {
	c.tb.Helper()
	root := fmt.Sprintf("/proc/%d/root", c.leader)
	copyTo := func(src, dst string, mode os.FileMode) {
		b, err := os.ReadFile(src)
		if err != nil {
			c.tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), b, mode); err != nil {
			c.tb.Fatal(err)
		}
	}
	c.tb.Cleanup(func() { // before the halt: the container is still there
		if c.tb.Failed() {
			c.tb.Logf("the container's journal:\n%s", c.journal(""))
		}
	})
	copyTo(binPath, unitBin, 0o755)
	units, _ := filepath.Glob(filepath.Join(repoRoot(), "deploy", "systemd", "*"))
	for _, u := range units {
		copyTo(u, filepath.Join("/etc/systemd/system", filepath.Base(u)), 0o644)
	}
	c.must("daemon-reload")
}

// dial opens a TCP connection inside the container's network namespace: the
// socket is made by a thread that entered it, and that thread is never
// returned to the Go scheduler (it ends with the goroutine).
func (c *sdContainer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread is in another netns now
		if err := unix.Setns(int(c.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// client is an HTTP client whose connections are inside the container.
func (c *sdContainer) client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: c.dial}}
}

// info is GET /api/info inside the container, once.
func (c *sdContainer) info(port int) (pmInfo, error) {
	var in pmInfo
	r, err := Do(c.client(), fmt.Sprintf("http://127.0.0.1:%d/api/info", port))
	if err != nil {
		return in, err
	}
	if r.Status != http.StatusOK {
		return in, fmt.Errorf("status %d", r.Status)
	}
	return in, json.Unmarshal(r.Body, &in)
}

// hostPids are the host pids of the processes in a unit's cgroup.
func (c *sdContainer) hostPids(unit string) []int {
	c.tb.Helper()
	cg := c.show(unit, "ControlGroup") // e.g. /system.slice/system-lbserver.slice/lbserver@8082.service
	var pids []int
	for _, top := range c.cgroup {
		b, err := os.ReadFile(filepath.Join(top, "payload", cg, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			p, _ := strconv.Atoi(f)
			pids = append(pids, p)
		}
		return pids
	}
	return nil
}

// TestSystemdNspawnFork runs lbserver@8082.service (Type=notify, hardened)
// under a real systemd: `systemctl start` returns only once /api/info
// answers, `systemctl status` shows lbserver's STATUS line, the sandbox is
// in force on the running process, and `systemctl stop` drains and exits 0.
func TestSystemdNspawnFork(t *testing.T) {
	began := time.Now()
	c := sdBoot(t)
	c.install()
	const unit = "lbserver@8082.service"

	start := time.Now()
	c.must("start", unit)
	took := time.Since(start)
	// The first request right after `systemctl start` returned is answered.
	in, err := c.info(8082)
	pid := c.show(unit, "MainPID")
	if err != nil || strconv.Itoa(in.Pid) != pid || in.Mode != "FORK" {
		t.Fatalf("first /api/info right after systemctl start returned: %+v %v, want FORK pid %s\n%s", in, err, pid, c.journal(unit))
	}
	t.Logf("systemctl start %s returned after %v; /api/info answered at once from pid %s", unit, took.Round(time.Millisecond), pid)
	if got := c.show(unit, "Type"); got != "notify" {
		t.Errorf("Type=%s, want notify", got)
	}

	status, _ := c.systemctl("status", unit) // exit status 0: active
	wantStatus := fmt.Sprintf(`Status: "serving on 127.0.0.1:8082 (bound), pid %s"`, pid)
	if !strings.Contains(status, wantStatus) {
		t.Errorf("systemctl status lacks %s:\n%s", wantStatus, status)
	}
	t.Logf("systemctl status:\n%s", status)

	// The sandbox of the running process (host view of the same process).
	pids := c.hostPids(unit)
	if len(pids) != 1 {
		t.Fatalf("processes in %s: %v, want 1", unit, pids)
	}
	hp := strconv.Itoa(pids[0])
	procStatus, err := os.ReadFile("/proc/" + hp + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NoNewPrivs:\t1", "CapEff:\t0000000000000000", "Seccomp:\t2"} {
		if !strings.Contains(string(procStatus), want+"\n") {
			t.Errorf("lbserver's /proc/PID/status lacks %q (NoNewPrivileges, CapabilityBoundingSet=, SystemCallFilter)", want)
		}
	}
	// ProtectSystem=strict: in lbserver's mount namespace /usr is read-only,
	// while PrivateTmp's /tmp is writable (so the failure is the sandbox's).
	ro, err := exec.Command("nsenter", "-t", hp, "-m", "touch", "/usr/local/bin/lbserver-probe").CombinedOutput()
	if err == nil || !strings.Contains(string(ro), "Read-only file system") {
		t.Errorf("write to /usr/local/bin in lbserver's mount namespace: %v %s, want Read-only file system (ProtectSystem=strict)", err, ro)
	}
	if out, err := exec.Command("nsenter", "-t", hp, "-m", "touch", "/tmp/lbserver-probe").CombinedOutput(); err != nil {
		t.Errorf("write to its private /tmp: %v %s, want it to work", err, out)
	}
	t.Logf("sandbox: write outside the allowed paths: %s", strings.TrimSpace(string(ro)))

	// A heavy request (~0.6 s) in flight when the stop begins is answered.
	heavy := make(chan error, 1)
	go func() {
		r, err := Do(c.client(), "http://127.0.0.1:8082/api/randoms?cant=1000000000")
		if err == nil && r.Status != http.StatusOK {
			err = fmt.Errorf("status %d", r.Status)
		}
		heavy <- err
	}()
	Eventually(t, 15*time.Second, "the heavy request computing", func() bool {
		r, err := Do(c.client(), "http://127.0.0.1:8082/metrics")
		return err == nil && relMetric(string(r.Body), "lbserver_compute_slots_busy") >= 1
	})
	stop := time.Now()
	c.must("stop", unit)
	t.Logf("systemctl stop with a heavy request in flight took %v", time.Since(stop).Round(time.Millisecond))
	if err := <-heavy; err != nil {
		t.Errorf("the request in flight during systemctl stop: %v, want 200", err)
	}
	// The instance is garbage-collected once inactive (systemctl show then
	// describes a fresh unit), so its exit is read from the journal: systemd
	// logs "Deactivated successfully" for a clean exit and "Failed with
	// result 'exit-code'" for a non-zero one.
	j := c.journal(unit)
	for _, want := range []string{"msg=drained", "msg=stopped", unit + ": Deactivated successfully.", "Stopped lbserver@8082.service"} {
		if !strings.Contains(j, want) {
			t.Errorf("journal lacks %q:\n%s", want, j)
		}
	}
	if strings.Contains(j, "Failed with result") {
		t.Errorf("the stop failed:\n%s", j)
	}
	t.Logf("whole test (boot, start, checks, stop) took %v", time.Since(began).Round(time.Millisecond))
}

// TestSystemdNspawnSocketRestart: with lbserver@8082.socket, systemd holds
// the port and starts the service on the first connection; restarting the
// service under 16 clients refuses nothing and fails nothing.
func TestSystemdNspawnSocketRestart(t *testing.T) {
	began := time.Now()
	c := sdBoot(t)
	c.install()
	const unit = "lbserver@8082.service"
	c.sdSocketRestart("lbserver@8082.socket", unit, 8082, 3, 1)
	if st, _ := c.systemctl("status", unit); !strings.Contains(st, `Status: "serving on 127.0.0.1:8082 (socket from systemd), pid `) {
		t.Errorf("systemctl status does not say lbserver serves on systemd's socket:\n%s", st)
	}
	t.Logf("whole test took %v", time.Since(began).Round(time.Millisecond))
}

// sdSocketRestart starts socket (systemd holds the port), checks that the
// first connection starts unit on it, then restarts unit restarts times
// under 16 clients: 0 refused, 0 failed, answers from perServer processes
// of each service run.
func (c *sdContainer) sdSocketRestart(socket, unit string, port, restarts, perServer int) {
	t := c.tb
	t.Helper()
	c.must("start", socket)
	if got := c.show(unit, "ActiveState"); got != "inactive" {
		t.Fatalf("%s is %s before any connection, want inactive (started on demand)", unit, got)
	}
	// The first connection starts the service, which serves on systemd's socket.
	if _, err := c.info(port); err != nil {
		t.Fatalf("first request through the socket: %v\n%s", err, c.journal(""))
	}
	if j := c.journal(unit); !strings.Contains(j, "socket activation: serving on the socket") {
		t.Errorf("journal does not show lbserver serving on the passed socket:\n%s", j)
	}
	load := relStartLoad(t, relLoadOpts{URL: fmt.Sprintf("http://127.0.0.1:%d/api/info", port), PerRequest: 16, MaxTime: 2 * time.Minute, Dial: c.dial})
	pids := []string{c.show(unit, "MainPID")}
	for range restarts {
		ok := load.Snapshot().OK
		Eventually(t, 30*time.Second, "200 more answers", func() bool { return load.Snapshot().OK >= ok+200 })
		began := time.Now()
		c.must("restart", unit)
		pids = append(pids, c.show(unit, "MainPID"))
		t.Logf("systemctl restart %s took %v", unit, time.Since(began).Round(time.Millisecond))
	}
	ok := load.Snapshot().OK
	Eventually(t, 30*time.Second, "200 more answers", func() bool { return load.Snapshot().OK >= ok+200 })
	res := load.Stop()
	t.Logf("%d × systemctl restart %s under 16 clients (main pids %v): %s", restarts, unit, pids, res)
	relAssertNoLoss(t, res)
	if len(res.ByPid) != (restarts+1)*perServer {
		t.Errorf("answers from %d pids, want %d", len(res.ByPid), (restarts+1)*perServer)
	}
	j := c.journal(unit)
	if n := strings.Count(j, unit+": Deactivated successfully."); n != restarts || strings.Contains(j, "Failed with result") {
		t.Errorf("%d clean exits in the journal, want %d and no failure:\n%s", n, restarts, j)
	}
}

// sdClusterWorkers is how many workers lbserver-cluster.service runs (one
// per CPU), as its ExecStartPre's --check printed it.
func (c *sdContainer) sdClusterWorkers(unit string) int {
	c.tb.Helper()
	m := regexp.MustCompile(`configuration ok: mode=CLUSTER .*workers=(\d+)`).FindStringSubmatch(c.journal(unit))
	if m == nil {
		c.tb.Fatalf("no worker count in the journal:\n%s", c.journal(unit))
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// workers are the host pids of a CLUSTER unit's workers (its processes
// but the main one).
func (c *sdContainer) workers(unit string) []int {
	c.tb.Helper()
	main := c.show(unit, "MainPID")
	var out []int
	for _, p := range c.hostPids(unit) {
		if strconv.Itoa(sdNsPid(p)) != main {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// allServe asks /api/info until every worker (host pids) has answered, at
// most 400 requests; every request must succeed.
func (c *sdContainer) allServe(port int, workers []int) {
	c.tb.Helper()
	want := map[int]bool{}
	for _, p := range workers {
		want[sdNsPid(p)] = true
	}
	seen := map[int]bool{}
	for range 400 {
		in, err := c.info(port)
		if err != nil {
			c.tb.Fatalf("/api/info: %v (answered so far by %v)", err, seen)
		}
		if !want[in.Pid] {
			c.tb.Fatalf("/api/info answered by pid %d, not one of the workers %v", in.Pid, want)
		}
		seen[in.Pid] = true
		if len(seen) == len(want) {
			return
		}
	}
	c.tb.Fatalf("400 requests answered by %v, not by every worker %v", seen, want)
}

// status is the unit's "Status:" line in `systemctl status`.
func (c *sdContainer) status(unit string) string {
	out, _ := c.systemctl("status", unit)
	for line := range strings.Lines(out) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "Status: "); ok {
			return s
		}
	}
	return ""
}

// TestSystemdNspawnCluster runs lbserver-cluster.service (Type=notify,
// hardened) under a real systemd: `systemctl start` returns only once every
// worker answers; `systemctl reload` under 16 clients loses nothing and
// returns only once every worker has been replaced; `systemctl status`
// shows the master's STATUS lines; a SIGKILLed worker is replaced; the
// master works with its workers over unix sockets without a warning
// (RestrictAddressFamilies allows AF_UNIX); `systemctl stop` drains and
// exits 0.
func TestSystemdNspawnCluster(t *testing.T) {
	began := time.Now()
	c := sdBoot(t)
	c.install()
	const unit = "lbserver-cluster.service"
	start := time.Now()
	c.must("start", unit)
	t.Logf("systemctl start %s returned after %v", unit, time.Since(start).Round(time.Millisecond))
	n := c.sdClusterWorkers(unit)
	before := c.workers(unit)
	if len(before) != n {
		t.Fatalf("workers right after systemctl start returned: %v, want %d", before, n)
	}
	c.allServe(8081, before)
	if got := c.show(unit, "Type"); got != "notify" {
		t.Errorf("Type=%s, want notify", got)
	}
	if got, want := c.status(unit), fmt.Sprintf(`"%d of %d workers ready"`, n, n); got != want {
		t.Errorf("status after start: %s, want %s", got, want)
	}
	// The sandbox is in force on the master and on every worker.
	for _, p := range c.hostPids(unit) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"NoNewPrivs:\t1", "CapEff:\t0000000000000000", "Seccomp:\t2"} {
			if !strings.Contains(string(b), want+"\n") {
				t.Errorf("process %d of %s lacks %q in /proc/PID/status", p, unit, want)
			}
		}
	}

	// systemctl reload under 16 clients: returns once every worker is new.
	load := relStartLoad(t, relLoadOpts{URL: "http://127.0.0.1:8081/api/info", PerRequest: 16, MaxTime: 2 * time.Minute, Dial: c.dial})
	ok := load.Snapshot().OK
	Eventually(t, 30*time.Second, "200 answers", func() bool { return load.Snapshot().OK >= ok+200 })
	// Heavy requests in flight: their workers drain them before they exit,
	// so the reload lasts at least as long; systemctl reload must wait for
	// them. One takes a few hundred ms, and each /metrics poll reaches one
	// worker, picked by the kernel; so 2 per worker (each worker computes one
	// at a time and queues the next), for a busy window the polls cannot
	// miss (with one, they missed it once in 3 CI runs).
	const heavies = 4
	heavy := make(chan error, heavies)
	for range heavies {
		go func() {
			r, err := Do(c.client(), "http://127.0.0.1:8081/api/randoms?cant=1000000000")
			if err == nil && r.Status != http.StatusOK {
				err = fmt.Errorf("status %d", r.Status)
			}
			heavy <- err
		}()
	}
	Eventually(t, 15*time.Second, "a heavy request computing", func() bool {
		r, err := Do(c.client(), "http://127.0.0.1:8081/metrics")
		return err == nil && relMetric(string(r.Body), "lbserver_compute_slots_busy") >= 1
	})
	start = time.Now()
	c.must("reload", unit)
	took := time.Since(start)
	// (A worker exits only once it has answered them: the check of the
	// workers below fails if systemctl reload returned before that.)
	answers := time.After(30 * time.Second)
	for i := range heavies {
		select {
		case err := <-heavy:
			if err != nil {
				t.Errorf("a heavy request in flight during the reload: %v, want 200", err)
			}
		case <-answers:
			t.Fatalf("heavy requests in flight during the reload: %d of %d answered within 30s", i, heavies)
		}
	}
	after := c.workers(unit)
	if len(after) != n || slices.ContainsFunc(after, func(p int) bool { return slices.Contains(before, p) }) {
		t.Fatalf("workers when systemctl reload returned: %v, want %d new ones (were %v)", after, n, before)
	}
	st := c.status(unit)
	if !regexp.MustCompile(fmt.Sprintf(`^"%d of %d workers ready; reload finished in [0-9.]+m?s"$`, n, n)).MatchString(st) {
		t.Errorf("status after reload: %s, want %d of %d workers ready; reload finished in ...", st, n, n)
	}
	ok = load.Snapshot().OK
	Eventually(t, 30*time.Second, "200 more answers", func() bool { return load.Snapshot().OK >= ok+200 })
	res := load.Stop()
	t.Logf("systemctl reload under 16 clients took %v (workers %v -> %v; status %s): %s", took.Round(time.Millisecond), before, after, st, res)
	relAssertNoLoss(t, res)
	full, _ := c.systemctl("status", unit)
	t.Logf("systemctl status after the reload:\n%s", full)

	// A SIGKILLed worker is replaced, and the status says so once it is.
	if err := syscall.Kill(after[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var now []int
	Eventually(t, 30*time.Second, "the killed worker replaced", func() bool {
		now = c.workers(unit)
		return len(now) == n && !slices.Contains(now, after[0])
	})
	Eventually(t, 30*time.Second, "the status back to every worker ready", func() bool {
		return c.status(unit) == fmt.Sprintf(`"%d of %d workers ready"`, n, n)
	})
	c.allServe(8081, now)
	if j := c.journal(unit); !strings.Contains(j, `msg="restarting worker"`) {
		t.Errorf("journal lacks the restart:\n%s", j)
	}

	start = time.Now()
	c.must("stop", unit)
	t.Logf("systemctl stop took %v", time.Since(start).Round(time.Millisecond))
	j := c.journal(unit)
	if !strings.Contains(j, unit+": Deactivated successfully.") || strings.Contains(j, "Failed with result") {
		t.Errorf("systemctl stop did not end cleanly:\n%s", j)
	}
	for line := range strings.Lines(j) {
		// The killed worker's crash and restart, and another worker
		// accepting for its slot meanwhile, are the warnings expected.
		expected := strings.Contains(line, `msg="restarting worker"`) || strings.Contains(line, `msg="worker adopts orphaned slot`) ||
			strings.Contains(line, `msg="worker exited"`) && strings.Contains(line, "reason=crashed")
		if (strings.Contains(line, "level=WARN") && !expected) || strings.Contains(line, "level=ERROR") {
			t.Errorf("the journal has a warning (the sandbox denies the master something?): %s", line)
		}
	}
	t.Logf("whole test took %v", time.Since(began).Round(time.Millisecond))
}

// TestSystemdNspawnClusterSocketRestart: with lbserver-cluster.socket,
// systemd holds port 8081; restarting the master itself (systemctl restart)
// under 16 clients refuses nothing and fails nothing.
func TestSystemdNspawnClusterSocketRestart(t *testing.T) {
	began := time.Now()
	c := sdBoot(t)
	c.install()
	const unit = "lbserver-cluster.service"
	// The worker count: from a --check run in the container.
	out, err := c.run(unitBin, "--host", "127.0.0.1", "--port", "8081", "--mode", "CLUSTER", "--check")
	m := regexp.MustCompile(`workers=(\d+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("lbserver --check in the container: %v %s", err, out)
	}
	n, _ := strconv.Atoi(m[1])
	c.sdSocketRestart("lbserver-cluster.socket", unit, 8081, 2, n)
	t.Logf("whole test took %v", time.Since(began).Round(time.Millisecond))
}

// sdNsPid is the pid of host process p inside its own pid namespace (the
// last NSpid field of /proc/p/status), or 0.
func sdNsPid(p int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}

// TestSystemdNspawnForkWatchdog: with WatchdogSec=1s added by a drop-in (the
// units ship without it), lbserver's pings keep the service alive for well
// over a second; a stopped (SIGSTOP) lbserver misses them, and systemd kills
// it and, Restart=on-failure, starts a new one that serves.
func TestSystemdNspawnForkWatchdog(t *testing.T) {
	c := sdBoot(t)
	c.install()
	const unit = "lbserver@8082.service"
	pid := c.startWithWatchdog(t, unit)

	// A stuck lbserver: no pings, systemd kills it and starts another.
	pids := c.hostPids(unit)
	if len(pids) != 1 {
		t.Fatalf("processes in %s: %v, want 1", unit, pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 20*time.Second, "systemd's watchdog timeout", func() bool {
		return strings.Contains(c.journal(unit), "Watchdog timeout")
	})
	Eventually(t, 30*time.Second, "a new lbserver started by Restart=on-failure", func() bool {
		now := c.show(unit, "MainPID")
		return now != "0" && now != pid && c.show(unit, "ActiveState") == "active"
	})
	if in, err := c.info(8082); err != nil || strconv.Itoa(in.Pid) != c.show(unit, "MainPID") {
		t.Errorf("after the restart: /api/info %+v %v, want the new main pid", in, err)
	}
	t.Logf("journal:\n%s", c.journal(unit))
}

// TestSystemdNspawnClusterWatchdog: with WatchdogSec=1s added by a drop-in,
// the CLUSTER master's pings (sent by its event loop) keep the service up;
// a stopped (SIGSTOP) master misses them, and systemd kills it and starts a
// new master whose workers serve.
func TestSystemdNspawnClusterWatchdog(t *testing.T) {
	c := sdBoot(t)
	c.install()
	const unit = "lbserver-cluster.service"
	master := c.startWithWatchdog(t, unit)
	var host int
	for _, p := range c.hostPids(unit) {
		if strconv.Itoa(sdNsPid(p)) == master {
			host = p
		}
	}
	if host == 0 {
		t.Fatalf("no host pid for the master %s", master)
	}
	if err := syscall.Kill(host, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 20*time.Second, "systemd's watchdog timeout", func() bool {
		return strings.Contains(c.journal(unit), "Watchdog timeout")
	})
	Eventually(t, 30*time.Second, "a new master started by Restart=on-failure", func() bool {
		now := c.show(unit, "MainPID")
		return now != "0" && now != master && c.show(unit, "ActiveState") == "active"
	})
	n := c.sdClusterWorkers(unit)
	var workers []int
	Eventually(t, 30*time.Second, "the new master's workers", func() bool { workers = c.workers(unit); return len(workers) == n })
	c.allServe(8081, workers)
	t.Logf("master %s stopped, watchdog timeout, new master %s with workers %v", master, c.show(unit, "MainPID"), workers)
}

// startWithWatchdog starts unit with WatchdogSec=1s added by a drop-in (the
// units ship without it) and returns its main pid once its pings have
// reached systemd: the watchdog timestamp moves on 4 times (2 s at one ping
// per 500 ms, twice WatchdogSec) and the service stays, with no timeout.
func (c *sdContainer) startWithWatchdog(t *testing.T, unit string) string {
	t.Helper()
	dropin := fmt.Sprintf("/proc/%d/root/etc/systemd/system/%s.d", c.leader, unit)
	if err := os.MkdirAll(dropin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dropin+"/watchdog.conf", []byte("[Service]\nWatchdogSec=1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.must("daemon-reload")
	c.must("start", unit)
	pid := c.show(unit, "MainPID")
	seen := map[string]bool{}
	Eventually(t, 10*time.Second, "4 watchdog pings", func() bool {
		seen[c.show(unit, "WatchdogTimestampMonotonic")] = true
		return len(seen) > 4
	})
	if got := c.show(unit, "MainPID"); got != pid || strings.Contains(c.journal(unit), "Watchdog timeout") {
		t.Fatalf("MainPID %s (was %s) or a watchdog timeout while %s pinged:\n%s", got, pid, unit, c.journal(unit))
	}
	return pid
}
