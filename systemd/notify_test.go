package systemd

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notifySocket listens where NOTIFY_SOCKET would point, like systemd does.
func notifySocket(tb testing.TB, name string) *net.UnixConn {
	tb.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func recv(tb testing.TB, c *net.UnixConn) string {
	tb.Helper()
	buf := make([]byte, 4096)
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		tb.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestNotifierSendsDatagrams(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run("abstract="+strconv.FormatBool(abstract), func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "notify")
			if abstract {
				name = "@lbserver-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			}
			sock := notifySocket(t, name)
			env := map[string]string{"NOTIFY_SOCKET": name, "OTHER": "x"}
			n, err := NewNotifier(MapEnv(env, 42))
			if err != nil {
				t.Fatal(err)
			}
			if !n.Enabled() || n.Addr() != name {
				t.Fatalf("Enabled()=%v Addr()=%q, want true %q", n.Enabled(), n.Addr(), name)
			}
			if _, ok := env["NOTIFY_SOCKET"]; ok || env["OTHER"] != "x" {
				t.Fatalf("env after NewNotifier: %v, want NOTIFY_SOCKET removed and OTHER kept", env)
			}
			steps := []struct {
				send func() error
				want string
			}{
				{func() error { return n.Ready("serving on 127.0.0.1:8082") }, "READY=1\nSTATUS=serving on 127.0.0.1:8082"},
				{func() error { return n.Ready("") }, "READY=1"},
				{func() error { return n.Status("reloading 1 of 2\nworker 2") }, "STATUS=reloading 1 of 2 worker 2"},
				{func() error { return n.Stopping("draining") }, "STOPPING=1\nSTATUS=draining"},
				{func() error { return n.MainPID(4242) }, "MAINPID=4242"},
				{func() error { return n.Notify("READY=1", "MAINPID=7") }, "READY=1\nMAINPID=7"},
			}
			for _, s := range steps {
				if err := s.send(); err != nil {
					t.Fatal(err)
				}
				if got := recv(t, sock); got != s.want {
					t.Errorf("datagram %q, want %q", got, s.want)
				}
			}
		})
	}
}

func TestNotifierReloadingCarriesMonotonicUsec(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	sock := notifySocket(t, name)
	n, _ := NewNotifier(MapEnv(map[string]string{"NOTIFY_SOCKET": name}, 1))
	before, _ := monotonicUsec()
	if err := n.Reloading("reloading 0 of 2"); err != nil {
		t.Fatal(err)
	}
	after, _ := monotonicUsec()
	lines := strings.Split(recv(t, sock), "\n")
	if len(lines) != 3 || lines[0] != "RELOADING=1" || lines[2] != "STATUS=reloading 0 of 2" {
		t.Fatalf("datagram %q, want RELOADING=1, MONOTONIC_USEC=..., STATUS=reloading 0 of 2", lines)
	}
	us, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || err != nil || us < before || us > after {
		t.Errorf("%s, want MONOTONIC_USEC= between %d and %d (CLOCK_MONOTONIC)", lines[1], before, after)
	}
}

func TestNotifierUnsetIsNoop(t *testing.T) {
	n, err := NewNotifier(MapEnv(map[string]string{}, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []func() error{
		func() error { return n.Ready("x") }, func() error { return n.Stopping("") },
		func() error { return n.Reloading("") }, n.Watchdog,
	} {
		if err := f(); err != nil {
			t.Errorf("without NOTIFY_SOCKET: %v, want nil", err)
		}
	}
	if n.Enabled() || n.WatchdogInterval() != 0 {
		t.Errorf("Enabled()=%v WatchdogInterval()=%v, want false 0", n.Enabled(), n.WatchdogInterval())
	}
}

func TestNotifierUnreachableIsAnError(t *testing.T) {
	dir := t.TempDir()
	n, err := NewNotifier(MapEnv(map[string]string{"NOTIFY_SOCKET": filepath.Join(dir, "gone")}, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready("x"); err == nil || !strings.Contains(err.Error(), "sd_notify") {
		t.Errorf("Ready to a missing socket: %v, want an sd_notify error", err)
	}
	// A malformed NOTIFY_SOCKET: a warning, and a Notifier that sends nothing.
	n, err = NewNotifier(MapEnv(map[string]string{"NOTIFY_SOCKET": "relative/path"}, 1))
	if err == nil || n == nil || n.Enabled() {
		t.Errorf("NOTIFY_SOCKET=relative/path: %v, enabled=%v; want a warning and a disabled Notifier", err, n != nil && n.Enabled())
	}
}

func TestNotifierWatchdog(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	sock := notifySocket(t, name)
	cases := []struct {
		usec, wpid string
		want       time.Duration
		warn       bool
	}{
		{"2000000", "", time.Second, false},
		{"2000000", "42", time.Second, false},
		{"2000000", "43", 0, false}, // another process's watchdog
		{"", "", 0, false},
		{"abc", "", 0, true},
		{"0", "", 0, true},
		{"2000000", "x", 0, true},
	}
	for _, c := range cases {
		env := map[string]string{"NOTIFY_SOCKET": name, "WATCHDOG_USEC": c.usec, "WATCHDOG_PID": c.wpid}
		n, err := NewNotifier(MapEnv(env, 42))
		if got := n.WatchdogInterval(); got != c.want || (err != nil) != c.warn {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: interval %v err %v, want %v warning=%v", c.usec, c.wpid, got, err, c.want, c.warn)
		}
		if len(env) != 0 {
			t.Errorf("env after NewNotifier: %v, want empty", env)
		}
		if err := n.Watchdog(); err != nil {
			t.Fatal(err)
		}
		if c.want != 0 {
			if got := recv(t, sock); got != "WATCHDOG=1" {
				t.Errorf("datagram %q, want WATCHDOG=1", got)
			}
		}
	}
	// Nothing else was sent: a disabled watchdog pings nobody.
	if err := sock.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if n, err := sock.Read(make([]byte, 64)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read after the pings: %d bytes, %v; want a timeout (nothing more sent)", n, err)
	}
}

// A notify socket nobody reads (a stuck or gone-away service manager) must
// never block the sender: once its queue is full, Notify returns an error
// saying the message was dropped, at once.
func TestNotifyNeverBlocksOnASocketNobodyReads(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	notifySocket(t, name) // bound, never read
	n, err := NewNotifier(MapEnv(map[string]string{"NOTIFY_SOCKET": name}, 42))
	if err != nil {
		t.Fatal(err)
	}
	const sends = 500 // far more than a unix datagram queue holds
	done := make(chan error, 1)
	go func() {
		var last error
		for i := range sends {
			if err := n.Status("message " + strconv.Itoa(i)); err != nil {
				last = err
			}
		}
		done <- last
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrDropped) {
			t.Errorf("the last failed Notify on a full socket = %v, want an error wrapping ErrDropped", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%d notifications to a socket nobody reads did not return in 20s: Notify blocks", sends)
	}
}

// PingWatchdog pings every interval until stopped, then never again; with
// no watchdog it pings nobody.
func TestPingWatchdog(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	sock := notifySocket(t, name)
	off, _ := NewNotifier(MapEnv(map[string]string{"NOTIFY_SOCKET": name}, 42))
	fail := func(err error) { t.Error(err) }
	off.PingWatchdog(fail)() // no watchdog: nothing to start, nothing sent

	// WATCHDOG_USEC=40ms: a ping every 20ms.
	n, err := NewNotifier(MapEnv(map[string]string{"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "40000"}, 42))
	if err != nil {
		t.Fatal(err)
	}
	stop := n.PingWatchdog(fail)
	for range 3 {
		if got := recv(t, sock); got != "WATCHDOG=1" {
			t.Fatalf("datagram %q, want WATCHDOG=1", got)
		}
	}
	stop()
	stop() // twice is fine
	// What was sent before stop returned is queued: take it, then expect
	// nothing for five intervals.
	var ne net.Error
	read := func(wait time.Duration) error {
		if err := sock.SetReadDeadline(time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
		_, err := sock.Read(make([]byte, 64))
		return err
	}
	for i := 0; read(5*time.Millisecond) == nil; i++ {
		if i > 10 {
			t.Fatal("pings go on after stop")
		}
	}
	if err := read(100 * time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read 100ms after stop: %v, want a timeout (no ping after stop)", err)
	}
}
