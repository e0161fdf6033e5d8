package e2e

// systemd's protocols spoken by a CLUSTER master outside systemd: the test
// plays systemd (a NOTIFY_SOCKET it reads, listening sockets it holds and
// passes as descriptors 3, 4, ... with LISTEN_FDS and LISTEN_PID), as in
// systemd_activation_test.go for FORK.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbserver/lbserver/cluster"
)

// sdDatagrams reads a NOTIFY_SOCKET's datagrams, counting watchdog pings
// apart, and keeps every other one for the test's log.
type sdDatagrams struct {
	tb    testing.TB
	ch    <-chan string
	pings int
	seen  []string
}

// next is the next datagram that is not a watchdog ping.
func (d *sdDatagrams) next(what string) string {
	d.tb.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-d.ch:
			if s == "WATCHDOG=1" {
				d.pings++
				continue
			}
			d.seen = append(d.seen, s)
			return s
		case <-deadline:
			d.tb.Fatalf("no %s datagram within 30s (so far: %q)", what, d.seen)
			return ""
		}
	}
}

// waitPings reads datagrams until n watchdog pings in all have come; any
// other datagram meanwhile is an error.
func (d *sdDatagrams) waitPings(n int) {
	d.tb.Helper()
	deadline := time.After(30 * time.Second)
	for d.pings < n {
		select {
		case s := <-d.ch:
			if s != "WATCHDOG=1" {
				d.seen = append(d.seen, s)
				d.tb.Errorf("datagram %q while waiting for watchdog pings", s)
				continue
			}
			d.pings++
		case <-deadline:
			d.tb.Fatalf("%d watchdog pings within 30s, want %d", d.pings, n)
		}
	}
}

// expect reads the next datagram and checks it against a regular
// expression matched whole ($PID is the master's pid).
func (d *sdDatagrams) expect(what, re string, pid int) {
	d.tb.Helper()
	got := d.next(what)
	re = strings.ReplaceAll(re, "$PID", strconv.Itoa(pid))
	if !regexp.MustCompile(`^` + re + `$`).MatchString(got) {
		d.tb.Errorf("%s: datagram %q, want %q", what, got, re)
	}
}

// sdWorkersServe asks /api/info until every pid of want has answered (at
// most 400 requests); every request must succeed.
func sdWorkersServe(tb testing.TB, port int, want []int) {
	tb.Helper()
	seen := map[int]bool{}
	for range 400 {
		in, err := pmGetInfo(port)
		if err != nil {
			tb.Fatalf("/api/info: %v (answered so far by %v)", err, seen)
		}
		seen[in.Pid] = true
		if len(seen) == len(want) {
			break
		}
	}
	for _, p := range want {
		if !seen[p] {
			tb.Fatalf("400 requests answered by %v, not by every worker %v", seen, want)
		}
	}
}

// sdEnvOf is process pid's environment.
func sdEnvOf(tb testing.TB, pid int) []string {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(string(b), "\x00")
}

func sdNoSystemdEnv(tb testing.TB, pid int) {
	tb.Helper()
	for _, kv := range sdEnvOf(tb, pid) {
		for _, k := range []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES="} {
			if strings.HasPrefix(kv, k) {
				tb.Errorf("worker %d has %s in its environment", pid, kv)
			}
		}
	}
}

// TestSystemdClusterNotify: the datagrams a CLUSTER master of 2 workers
// sends for start (READY=1 only once both serve), a reload asked with
// `lbserver reload PID` (which returns once every worker is replaced), a
// killed worker, a reload that is aborted (the command fails and says why),
// and stop; watchdog pings all along. The workers never see the variables.
func TestSystemdClusterNotify(t *testing.T) {
	path, ch := sdNotifySocket(t)
	d := &sdDatagrams{tb: t, ch: ch}
	t.Cleanup(func() { t.Logf("datagrams (besides %d watchdog pings):\n%s", d.pings, strings.Join(d.seen, "\n--\n")) })
	port := FreePort(t)
	// A copy of the binary: the test later replaces it with a broken one.
	exe := filepath.Join(t.TempDir(), "lbserver")
	b, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--mode", "CLUSTER", "--workers", "2")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+path, "WATCHDOG_USEC=200000")
	p := StartCmd(t, cmd)
	pid := p.Pid()

	d.expect("start", `STATUS=starting 2 workers`, pid)
	d.expect("first worker ready", `STATUS=1 of 2 workers ready`, pid)
	d.expect("READY", `READY=1\nMAINPID=$PID\nSTATUS=2 of 2 workers ready`, pid)
	workers := ChildPids(pid)
	if len(workers) != 2 {
		t.Fatalf("workers right after READY=1: %v, want 2", workers)
	}
	sdWorkersServe(t, port, workers) // what systemctl start promises
	for _, w := range workers {
		sdNoSystemdEnv(t, w)
	}

	// lbserver reload PID: returns once the reload has finished, which
	// takes at least as long as the heavy requests in flight on the old
	// workers (they drain them before they exit). 2 per worker (each
	// computes one at a time and queues the next): one lasts a few hundred
	// ms, and each /metrics poll reaches one worker, so a single one could
	// be missed by the polls.
	var heavy []<-chan relAsync
	for range 4 {
		heavy = append(heavy, relAsyncGet(fmt.Sprintf("http://127.0.0.1:%d/api/randoms?cant=1000000000", port)))
	}
	Eventually(t, 15*time.Second, "a heavy request computing", func() bool {
		r, err := Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		return err == nil && relMetric(string(r.Body), "lbserver_compute_slots_busy") >= 1
	})
	out, err := exec.Command(binPath, "reload", strconv.Itoa(pid)).CombinedOutput()
	// (A worker exits only once it has answered them: the check of the
	// workers below fails if the command returned before that.)
	answers := time.After(30 * time.Second)
	for i, h := range heavy {
		select {
		case r := <-h:
			if r.err != nil || r.Status != 200 {
				t.Errorf("a heavy request in flight during the reload: %v %d, want 200", r.err, r.Status)
			}
		case <-answers:
			t.Fatalf("heavy requests in flight during the reload: %d of %d answered within 30s", i, len(heavy))
		}
	}
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprintf("lbserver: master %d: rolling reload finished, every worker replaced", pid) {
		t.Fatalf("lbserver reload %d: %v %s", pid, err, out)
	}
	now := ChildPids(pid)
	if len(now) != 2 || slices.ContainsFunc(now, func(w int) bool { return slices.Contains(workers, w) }) {
		t.Fatalf("workers when lbserver reload returned: %v, want 2 new ones (were %v)", now, workers)
	}
	d.expect("reload start", `RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading 1 of 2`, pid)
	d.expect("reload slot 2", `STATUS=reloading 2 of 2`, pid)
	d.expect("reload end", `READY=1\nSTATUS=2 of 2 workers ready; reload finished in [0-9.]+m?s`, pid)
	sdWorkersServe(t, port, now)
	workers = now

	// A killed worker: restarted at once, and said so.
	if err := syscall.Kill(workers[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.expect("worker killed", `STATUS=worker \d restarting; 1 of 2 workers ready`, pid)
	d.expect("worker back", `STATUS=2 of 2 workers ready`, pid)
	workers = ChildPids(pid)

	// A broken binary: the reload is aborted, the command fails and says why.
	broken := exe + ".new"
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho broken build >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, exe); err != nil {
		t.Fatal(err)
	}
	rc := exec.Command(binPath, "reload", strconv.Itoa(pid))
	out, err = rc.CombinedOutput()
	want := fmt.Sprintf("lbserver: reload: master %d: rolling reload aborted at worker 1: new worker exited before it was ready; the old workers serve on", pid)
	if rc.ProcessState == nil || rc.ProcessState.ExitCode() != 1 || strings.TrimSpace(string(out)) != want {
		t.Errorf("lbserver reload of a broken binary: %v %q, want exit 1 and %q", err, out, want)
	}
	d.expect("aborted reload start", `RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading 1 of 2`, pid)
	d.expect("aborted reload end", `READY=1\nSTATUS=2 of 2 workers ready; reload aborted at worker 1 \(new worker exited before it was ready\), the old workers serve on`, pid)
	if now := ChildPids(pid); !slices.Equal(now, workers) {
		t.Errorf("workers after the aborted reload: %v, want the old ones %v", now, workers)
	}
	sdWorkersServe(t, port, workers)

	// WATCHDOG_USEC=200000: a ping every 100ms, from the master's loop.
	d.waitPings(d.pings + 3)

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.expect("stop", `STOPPING=1\nSTATUS=stopping: draining 2 workers`, pid)
	d.expect("one left", `STATUS=stopping: waiting for 1 worker`, pid)
	d.expect("none left", `STATUS=stopping: waiting for 0 workers`, pid)
	if !p.Wait(30*time.Second) || p.Err() != nil {
		t.Fatalf("master exit after SIGTERM: %v, want 0\n%s", p.Err(), p.Output.String())
	}
	if strings.Contains(p.Output.String(), "systemd notification") {
		t.Errorf("warnings about notifications:\n%s", p.Output.String())
	}
}

// TestSystemdClusterNotifyUnreachable: a NOTIFY_SOCKET nobody listens on is
// one warning; the master and its workers serve anyway.
func TestSystemdClusterNotifyUnreachable(t *testing.T) {
	port := FreePort(t)
	cmd := exec.Command(binPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--mode", "CLUSTER", "--workers", "2")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(t.TempDir(), "nobody"))
	p := StartCmd(t, cmd)
	WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
	Eventually(t, 10*time.Second, "a warning about the notification", func() bool {
		return strings.Contains(p.Output.String(), `level=WARN msg="systemd notification failed; serving anyway`)
	})
}

// sdClusterArgs is a CLUSTER master of 2 workers on port.
func sdClusterArgs(port int) []string {
	return []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--mode", "CLUSTER", "--workers", "2"}
}

// TestSystemdClusterSocketActivationRestart: the test holds the listening
// socket and starts a CLUSTER master with it (the protocol systemd uses for
// a .socket unit); under 16 clients the master is stopped and a new one
// started on the same socket, 3 times: 0 refused, 0 failed.
func TestSystemdClusterSocketActivationRestart(t *testing.T) {
	held, port := sdHeldSocket(t)
	sdRestartUnderLoad(t, 3, func() *Proc {
		return sdActivated(t, nil, []*os.File{held}, append([]string{binPath}, sdClusterArgs(port)...)...)
	}, port, 2)
}

// TestSystemdClusterSocketActivateRestart: the same through Debian's
// systemd-socket-activate.
func TestSystemdClusterSocketActivateRestart(t *testing.T) {
	ssa := requireTool(t, "systemd-socket-activate")
	held, port := sdHeldSocket(t)
	sdRestartUnderLoad(t, 2, func() *Proc {
		return sdActivated(t, nil, []*os.File{held}, append([]string{ssa, "--fdname=web", binPath}, sdClusterArgs(port)...)...)
	}, port, 2)
}

// TestSystemdClusterSocketPerSlot: two SO_REUSEPORT sockets on one port
// (a ReusePort=yes socket unit with two ListenStream=) are one per worker;
// restarts under load lose nothing there either.
func TestSystemdClusterSocketPerSlot(t *testing.T) {
	first, port := sdHeldReusePort(t, 0)
	second, _ := sdHeldReusePort(t, port)
	sdRestartUnderLoad(t, 2, func() *Proc {
		return sdActivated(t, nil, []*os.File{first, second}, append([]string{binPath}, sdClusterArgs(port)...)...)
	}, port, 2)
}

// sdHeldReusePort is a held listening socket with SO_REUSEPORT on port (0:
// any free one).
func sdHeldReusePort(tb testing.TB, port int) (*os.File, int) {
	tb.Helper()
	lc := net.ListenConfig{Control: cluster.ReusePortControl}
	ln, err := lc.Listen(tb.Context(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		tb.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		tb.Fatal(err)
	}
	ln.Close()
	tb.Cleanup(func() { f.Close() })
	return f, f2port(tb, f)
}

func f2port(tb testing.TB, f *os.File) int {
	tb.Helper()
	ln, err := net.FileListener(f)
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSystemdClusterActivationBadInput: a passed descriptor that is not a
// listening TCP socket, or more sockets than workers, is one line on stderr
// and exit 2, nothing started; LISTEN_FDS meant for another process is
// ignored (the master binds its port) and no worker sees it.
func TestSystemdClusterActivationBadInput(t *testing.T) {
	held1, _ := sdHeldSocket(t)
	held2, _ := sdHeldSocket(t)
	held3, _ := sdHeldSocket(t)
	unixLn, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	unixF, _ := unixLn.(*net.UnixListener).File()
	defer unixF.Close()
	cases := []sdRefusal{
		{"three sockets for two workers", []*os.File{held1, held2, held3}, "lbserver: socket activation: 3 sockets passed (LISTEN_FDS) for 2 workers: give one socket, or one per worker"},
		{"a unix socket", []*os.File{unixF}, "lbserver: socket activation: passed socket 3 (LISTEN_FD_3) is a unix socket: not a listening TCP socket"},
	}
	sdAssertRefused(t, cases, func(port int) []string {
		return append([]string{binPath}, sdClusterArgs(port)...)
	})
	t.Run("LISTEN_PID of another process", func(t *testing.T) {
		port := FreePort(t)
		cmd := exec.Command(binPath, sdClusterArgs(port)...)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_PID=1")
		cmd.ExtraFiles = []*os.File{unixF}
		p := StartCmd(t, cmd)
		WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
		var workers []int
		Eventually(t, 20*time.Second, "2 workers", func() bool { workers = ChildPids(p.Pid()); return len(workers) == 2 })
		sdWorkersServe(t, port, workers)
		for _, w := range workers {
			sdNoSystemdEnv(t, w)
		}
	})
}
