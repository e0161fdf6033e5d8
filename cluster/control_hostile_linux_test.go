package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests of what a local user who is not the master's can do to it, run as
// that user (nobody): a copy of this test binary, re-executed with
// CLUSTER_TEST_HOSTILE set, plays the part (see init below).

const hostileEnv = "CLUSTER_TEST_HOSTILE"

// init runs the hostile helper when this test binary is re-executed as one:
//
//	fake-master NAME: listen on the abstract unix socket NAME (this process's
//	own control socket name when NAME is empty), say "listening NAME" on
//	stdout, and answer every command with "ok", as a master whose reload
//	finished would.
//	dial NAME PATH: connect to unix socket NAME, send "GET PATH", print
//	what comes back (or "refused: ERR").
func init() {
	v := os.Getenv(hostileEnv)
	if v == "" {
		return
	}
	os.Exit(hostileMain(strings.Fields(v), os.Stdout))
}

func hostileMain(args []string, out io.Writer) int {
	switch {
	case len(args) >= 1 && args[0] == "fake-master":
		name := controlAddr(os.Getpid())
		if len(args) > 1 {
			name = args[1]
		}
		ln, err := net.Listen("unix", name)
		if err != nil {
			fmt.Fprintln(out, "error", err)
			return 1
		}
		fmt.Fprintln(out, "listening", name)
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				fmt.Fprintln(c, "ok")
			}()
		}
	case len(args) == 2 && args[0] == "guard":
		// A socket guarded as the master guards its own: each peer is told
		// whether it would be admitted.
		ln, err := net.Listen("unix", args[1])
		if err != nil {
			fmt.Fprintln(out, "error", err)
			return 1
		}
		fmt.Fprintln(out, "listening", args[1])
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			if err := peerAllowed(c.(*net.UnixConn)); err != nil {
				fmt.Fprintln(c, "refused:", err)
			} else {
				fmt.Fprintln(c, "admitted")
			}
			c.Close()
		}
	case len(args) == 3 && args[0] == "dial":
		c, err := net.DialTimeout("unix", args[1], 5*time.Second)
		if err != nil {
			fmt.Fprintln(out, "refused:", err)
			return 0
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", args[2])
		b, err := io.ReadAll(c)
		if len(b) == 0 {
			fmt.Fprintln(out, "refused: no answer:", err)
			return 0
		}
		fmt.Fprintf(out, "%s", b)
		return 0
	}
	fmt.Fprintln(out, "bad", hostileEnv, args)
	return 2
}

// needRoot skips a test that must switch users, except in CI (which runs
// as root: there a skip would hide the test).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (to run a helper as nobody); CI runs as root")
	}
	t.Skip("needs root, to run a helper as nobody")
}

// nobody returns nobody's uid and gid.
func nobody(t *testing.T) (uint32, uint32) {
	t.Helper()
	uid, gid := uint32(65534), uint32(65534)
	if u, err := user.Lookup("nobody"); err == nil {
		if n, err := strconv.Atoi(u.Uid); err == nil {
			uid = uint32(n)
		}
		if n, err := strconv.Atoi(u.Gid); err == nil {
			gid = uint32(n)
		}
	}
	return uid, gid
}

// hostileBinary copies this test binary into a folder anyone can read and
// enter (the build cache and a 0700 home are not), for nobody to run.
func hostileBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cluster-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hostile")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// startHostile starts the helper with args, as nobody (asNobody) or in a pid
// namespace of its own (newPidNS), and returns its first stdout line; it is
// killed when the test ends.
func startHostile(t *testing.T, asNobody, newPidNS bool, args ...string) string {
	t.Helper()
	needRoot(t)
	cmd := exec.Command(hostileBinary(t))
	cmd.Env = append(os.Environ(), hostileEnv+"="+strings.Join(args, " "))
	cmd.Stderr = os.Stderr
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if asNobody {
		uid, gid := nobody(t)
		attr.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	}
	if newPidNS {
		attr.Cloneflags = syscall.CLONE_NEWPID
	}
	cmd.SysProcAttr = attr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("hostile helper %v: no first line: %v", args, err)
	}
	return strings.TrimSpace(line)
}

// A local user (nobody) who binds a master's control socket name before
// the master does cannot make Reload report a reload that never happened:
// Reload checks who answers (SO_PEERCRED: the pid it asked for, our uid or
// root).
func TestReloadRefusesAnImpostor(t *testing.T) {
	name := controlAddr(os.Getpid())
	if got := startHostile(t, true, false, "fake-master", name); got != "listening "+name {
		t.Fatalf("helper as nobody: %q, want it listening on %s", got, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Reload(ctx, os.Getpid())
	if err == nil {
		t.Fatal("Reload = nil: a reload reported done by nobody's impostor socket, want an error")
	}
	if !strings.Contains(err.Error(), "not the master") {
		t.Errorf("Reload = %v, want it to say the socket is not the master's", err)
	}
	t.Logf("Reload: %v", err)
}

// A master whose control socket name is taken does not run on silently
// (reload commands would never reach it, or reach the squatter): Run fails
// at once and says why, before starting a worker.
func TestRunFailsWhenItsControlSocketIsTaken(t *testing.T) {
	name := controlAddr(os.Getpid())
	startHostile(t, true, false, "fake-master", name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := Run(ctx, Config{Addr: "127.0.0.1:0", Workers: 1, Exe: "/nonexistent"},
		func(context.Context, *Worker) error { t.Error("the worker function ran in the master"); return nil })
	if err == nil || !strings.Contains(err.Error(), "control socket") {
		t.Fatalf("Run with its control socket taken = %v, want an error about the control socket", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Run returned only when its context ended (%v), want at once", err)
	}
	t.Logf("Run: %v", err)
}

// Masters in different pid namespaces (containers on one network
// namespace, each maybe pid 1) have different control socket names:
// Reload(1) here cannot reach the pid 1 of another pid namespace.
func TestReloadDoesNotReachAnotherPidNamespace(t *testing.T) {
	got := startHostile(t, false, true, "fake-master")
	if !strings.HasPrefix(got, "listening ") {
		t.Fatalf("helper in a new pid namespace: %q", got)
	}
	t.Logf("pid 1 of a new pid namespace %s; here Reload(1) dials %s", got, controlAddr(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Reload(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), "no cluster master with pid 1") {
		t.Fatalf("Reload(1) = %v, want 'no cluster master with pid 1' (the other namespace's pid 1 is not ours)", err)
	}
}

// A worker's private socket (its name is listed in /proc/net/unix for
// anyone) answers only its master's user and root: nobody connecting there
// gets nothing, while the master still reaches the worker.
func TestPrivateSocketRefusesOtherUsers(t *testing.T) {
	needRoot(t)
	ms := make(chan *Master, 1)
	serving := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The workers are this test binary again: TestMain (example_linux_test.go)
	// runs them for EnvPrefix EXAMPLE_, answering "hello from worker N".
	cfg := Config{Addr: "127.0.0.1:0", Workers: 1, PrivateSockets: true, EnvPrefix: "EXAMPLE_", Stdout: io.Discard,
		OnMaster: func(m *Master) (func(), error) { ms <- m; return nil, nil },
		OnEvent: func(e Event) {
			if e.Kind == EventServing {
				select {
				case serving <- struct{}{}:
				default:
				}
			}
		}}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, func(context.Context, *Worker) error { return fmt.Errorf("the worker function ran in the master") })
	}()
	t.Cleanup(func() { cancel(); <-done })
	m := <-ms
	select {
	case <-serving:
	case err := <-done:
		t.Fatalf("Run = %v before its workers served", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the workers were not serving within 30s")
	}
	w := m.Workers()[0]
	if w.PrivateAddr == "" {
		t.Fatal("no private socket with Config.PrivateSockets")
	}
	got := startHostile(t, true, false, "dial", w.PrivateAddr, "/")
	if strings.Contains(got, "hello") || strings.HasPrefix(got, "HTTP/") {
		t.Errorf("nobody on the worker's private socket %s got %q, want no answer", w.PrivateAddr, got)
	} else {
		t.Logf("nobody on %s: %s", w.PrivateAddr, got)
	}
	c := &http.Client{Transport: PrivateTransport(w.PrivateAddr), Timeout: 10 * time.Second}
	resp, err := c.Get("http://worker/")
	if err != nil {
		t.Fatalf("the master's own user on the private socket: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "hello from worker") {
		t.Errorf("the master's own user on the private socket got %q, want the worker's answer", body)
	}
}

// A process of another pid namespace (one the master cannot see into: its
// pid reads 0 there), even root's, is not admitted on a master's sockets:
// a container's master takes control commands only from its own pid
// namespace.
func TestControlRefusesAnotherPidNamespace(t *testing.T) {
	name := "@cluster-test-guard-" + strconv.Itoa(os.Getpid())
	if got := startHostile(t, false, true, "guard", name); got != "listening "+name {
		t.Fatalf("guard in a new pid namespace: %q", got)
	}
	c, err := net.Dial("unix", name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "refused:") {
		t.Errorf("root of the parent pid namespace on a socket guarded in a child one: %q, want refused", strings.TrimSpace(line))
	}
	t.Logf("%s", strings.TrimSpace(line))
}
