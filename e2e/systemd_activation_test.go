package e2e

// systemd's protocols spoken by a FORK lbserver outside systemd: the test
// plays systemd. It listens on a unix datagram socket named by NOTIFY_SOCKET
// and reads what lbserver sends (sd_notify), and it holds a listening socket
// that it passes as descriptor 3 with LISTEN_FDS=1 and LISTEN_PID set to the
// server's pid (socket activation), through the same tiny wrapper systemd's
// own tools amount to: `sh -c 'LISTEN_PID=$$ exec lbserver ...'`.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sdListenShell sets LISTEN_PID to the shell's pid, which exec makes lbserver's.
const sdListenShell = `LISTEN_PID=$$ LISTEN_FDS=${LISTEN_FDS:-1} exec "$0" "$@"`

// sdHeldSocket is a listening socket the test holds for the whole test, as
// systemd holds a .socket unit's: the port stays open between servers.
func sdHeldSocket(tb testing.TB) (*os.File, int) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // f keeps the socket open and listening
	tb.Cleanup(func() { f.Close() })
	return f, port
}

// sdActivated starts argv (lbserver or a wrapper of it) with the passed
// sockets at descriptors 3, 4, ... and LISTEN_PID set by the wrapper shell.
func sdActivated(tb testing.TB, env []string, files []*os.File, argv ...string) *Proc {
	tb.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", sdListenShell}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(files)))
	cmd.ExtraFiles = files
	return StartCmd(tb, cmd)
}

// sdNotifySocket is where NOTIFY_SOCKET points; datagrams arrive on the channel.
func sdNotifySocket(tb testing.TB) (string, <-chan string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan string, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	tb.Cleanup(func() { c.Close(); <-done })
	return path, ch
}

// sdNextDatagram waits for the next datagram that is not a watchdog ping.
func sdNextDatagram(tb testing.TB, ch <-chan string, what string) string {
	tb.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case d := <-ch:
			if d != "WATCHDOG=1" {
				tb.Logf("datagram: %q", d)
				return d
			}
		case <-deadline:
			tb.Fatalf("no %s datagram within 20s", what)
		}
	}
}

// TestSystemdForkNotify: READY=1 (with a STATUS line) only once /api/info
// answers, watchdog pings every WATCHDOG_USEC/2, STOPPING=1 when SIGTERM
// starts the drain, then a clean exit.
func TestSystemdForkNotify(t *testing.T) {
	path, ch := sdNotifySocket(t)
	port := FreePort(t)
	cmd := exec.Command(binPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+path, "WATCHDOG_USEC=200000")
	p := StartCmd(t, cmd)
	ready := sdNextDatagram(t, ch, "READY")
	want := fmt.Sprintf("READY=1\nSTATUS=serving on 127.0.0.1:%d (bound), pid %d", port, p.Pid())
	if ready != want {
		t.Fatalf("first datagram %q, want %q", ready, want)
	}
	// What systemctl start promises: once READY=1 arrived, the first request is answered.
	if in, err := pmGetInfo(port); err != nil || in.Pid != p.Pid() {
		t.Fatalf("right after READY=1: /api/info %+v %v, want an answer from pid %d", in, err, p.Pid())
	}
	// WATCHDOG_USEC=200000: a ping every 100ms.
	pings := 0
	for deadline := time.After(10 * time.Second); pings < 3; {
		select {
		case d := <-ch:
			if d != "WATCHDOG=1" {
				t.Fatalf("datagram %q, want WATCHDOG=1", d)
			}
			pings++
		case <-deadline:
			t.Fatalf("%d watchdog pings in 10s, want 3", pings)
		}
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("STOPPING=1\nSTATUS=draining connections on 127.0.0.1:%d", port)
	if got := sdNextDatagram(t, ch, "STOPPING"); got != want {
		t.Errorf("datagram after SIGTERM %q, want %q", got, want)
	}
	if !p.Wait(20*time.Second) || p.Err() != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0", p.Err())
	}
	if strings.Contains(p.Output.String(), "systemd notification") {
		t.Errorf("warnings about notifications:\n%s", p.Output.String())
	}
}

// TestSystemdForkNotifyUnreachable: a NOTIFY_SOCKET nobody listens on is a
// warning in the log; the server serves anyway.
func TestSystemdForkNotifyUnreachable(t *testing.T) {
	port := FreePort(t)
	cmd := exec.Command(binPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(t.TempDir(), "nobody"))
	p := StartCmd(t, cmd)
	WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
	Eventually(t, 5*time.Second, "a warning about the notification", func() bool {
		return strings.Contains(p.Output.String(), `level=WARN msg="systemd notification"`)
	})
}

// TestSystemdForkActivationBadInput: what is not one listening TCP socket
// meant for this process is one line on stderr and exit 2, nothing served;
// LISTEN_FDS meant for another process is ignored (lbserver binds its port).
func TestSystemdForkActivationBadInput(t *testing.T) {
	held1, _ := sdHeldSocket(t)
	held2, _ := sdHeldSocket(t)
	unixLn, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	unixF, _ := unixLn.(*net.UnixListener).File()
	defer unixF.Close()
	cases := []sdRefusal{
		{"two sockets", []*os.File{held1, held2}, "lbserver: socket activation: 2 sockets passed (LISTEN_FDS), FORK serves on one"},
		{"a unix socket", []*os.File{unixF}, "lbserver: socket activation: passed socket 3 (LISTEN_FD_3) is a unix socket: not a listening TCP socket"},
	}
	sdAssertRefused(t, cases, func(port int) []string {
		return []string{binPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port)}
	})
	t.Run("LISTEN_PID of another process", func(t *testing.T) {
		port := FreePort(t)
		cmd := exec.Command(binPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_PID=1")
		cmd.ExtraFiles = []*os.File{unixF}
		p := StartCmd(t, cmd)
		WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
	})
}

// sdRestartUnderLoad runs 16 clients (a new connection per request) against
// the held socket's port while the server is stopped (SIGTERM, wait for its
// exit) and a new one started on the same socket, restarts times. Nothing
// listens on the port between two servers but the held socket. Each server
// answers from perServer processes (a CLUSTER master's workers).
func sdRestartUnderLoad(t *testing.T, restarts int, start func() *Proc, port, perServer int) {
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := start()
	WaitHTTP(t, p, base+"/healthz", 20*time.Second)
	load := relStartLoad(t, relLoadOpts{URL: base + "/api/info", PerRequest: 16, MaxTime: 90 * time.Second})
	pids := map[int]bool{p.Pid(): true}
	var gaps []time.Duration
	for i := range restarts {
		ok := load.Snapshot().OK
		Eventually(t, 20*time.Second, "200 more answers", func() bool { return load.Snapshot().OK >= ok+200 })
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if !p.Wait(20 * time.Second) {
			t.Fatalf("restart %d: server %d did not exit within 20s of SIGTERM", i+1, p.Pid())
		}
		if err := p.Err(); err != nil {
			t.Fatalf("restart %d: server exit %v, want 0\n%s", i+1, err, p.Output.String())
		}
		stopped := time.Now()
		p = start()
		pids[p.Pid()] = true
		WaitHTTP(t, p, base+"/healthz", 20*time.Second)
		gaps = append(gaps, time.Since(stopped).Round(time.Millisecond))
	}
	ok := load.Snapshot().OK
	Eventually(t, 20*time.Second, "200 more answers", func() bool { return load.Snapshot().OK >= ok+200 })
	res := load.Stop()
	t.Logf("%d restarts on one held socket, no server for %v each: %s", restarts, gaps, res)
	relAssertNoLoss(t, res)
	if len(res.ByPid) != (restarts+1)*perServer {
		t.Errorf("answers came from %d pids, want %d (every server served)", len(res.ByPid), (restarts+1)*perServer)
	}
}

// TestSystemdSocketActivationRestart: the protocol systemd uses for a
// .socket unit, with the test holding the socket: 0 refused, 0 failed.
func TestSystemdSocketActivationRestart(t *testing.T) {
	held, port := sdHeldSocket(t)
	sdRestartUnderLoad(t, 3, func() *Proc {
		return sdActivated(t, nil, []*os.File{held}, binPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	}, port, 1)
}

// TestSystemdSocketActivateRestart: the same through Debian's
// systemd-socket-activate, which takes the held socket (sd_listen_fds) and
// passes it on to lbserver with its own LISTEN_PID and LISTEN_FDNAMES.
func TestSystemdSocketActivateRestart(t *testing.T) {
	ssa := requireTool(t, "systemd-socket-activate")
	held, port := sdHeldSocket(t)
	sdRestartUnderLoad(t, 3, func() *Proc {
		return sdActivated(t, nil, []*os.File{held}, ssa, "--fdname=web", binPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	}, port, 1)
}

// sdRefusal is passed sockets lbserver must refuse, and the one line it
// must print.
type sdRefusal struct {
	name  string
	files []*os.File
	want  string
}

// sdAssertRefused starts the command args(port) gives with each case's
// sockets passed as systemd passes them, and checks the refusal: exit 2,
// the one line, and nothing served on port.
func sdAssertRefused(t *testing.T, cases []sdRefusal, args func(port int) []string) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port := FreePort(t)
			p := sdActivated(t, nil, c.files, args(port)...)
			if !p.Wait(20 * time.Second) {
				t.Fatal("lbserver still runs, want exit 2")
			}
			if code := relExitCode(p); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if out := strings.TrimSpace(p.Output.String()); out != c.want {
				t.Errorf("output %q, want the one line %q", out, c.want)
			}
			if !relDialRefused(fmt.Sprintf("127.0.0.1:%d", port)) {
				t.Errorf("port %d is served, want nothing started", port)
			}
		})
	}
}
