package systemd

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// passFDs puts a duplicate of each file at first, first+1, ... as systemd
// would at 3, 4, ... (the test process's low descriptors are the runtime's).
func passFDs(tb testing.TB, first int, files ...*os.File) {
	tb.Helper()
	for i, f := range files {
		if err := unix.Dup2(int(f.Fd()), first+i); err != nil {
			tb.Fatal(err)
		}
		fd := first + i
		tb.Cleanup(func() { unix.Close(fd) }) // EBADF when Files closed it: fine
	}
}

func tcpListenerFile(tb testing.TB) (*net.TCPListener, *os.File) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return ln.(*net.TCPListener), f
}

func activationEnv(pid int, n int, names string) map[string]string {
	m := map[string]string{"LISTEN_PID": strconv.Itoa(pid), "LISTEN_FDS": strconv.Itoa(n)}
	if names != "" {
		m["LISTEN_FDNAMES"] = names
	}
	return m
}

func TestListenersServeOnPassedSockets(t *testing.T) {
	const first = 200
	ln1, f1 := tcpListenerFile(t)
	ln2, f2 := tcpListenerFile(t)
	passFDs(t, first, f1, f2)
	env := activationEnv(42, 2, "web.socket")
	env["PATH"] = "/bin"
	files, err := listenFiles(MapEnv(env, 42), first)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name() != "web.socket" || files[1].Name() != "LISTEN_FD_201" {
		t.Fatalf("files %v, want web.socket and LISTEN_FD_201", files)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s still in the environment: children would take the sockets as theirs", k)
		}
	}
	if env["PATH"] != "/bin" {
		t.Errorf("PATH removed")
	}
	flags, err := unix.FcntlInt(uintptr(first), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("descriptor %d flags %#x %v, want FD_CLOEXEC", first, flags, err)
	}
	for _, f := range files {
		f.Close()
	}

	// Listeners: a connection to the original socket is accepted on the passed one.
	passFDs(t, first, f1, f2)
	lns, err := listeners(MapEnv(activationEnv(42, 2, ""), 42), first)
	if err != nil {
		t.Fatal(err)
	}
	for i, orig := range []*net.TCPListener{ln1, ln2} {
		if lns[i].Addr().String() != orig.Addr().String() {
			t.Errorf("listener %d on %s, want %s", i, lns[i].Addr(), orig.Addr())
		}
		c, err := net.Dial("tcp", orig.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		s, err := lns[i].Accept()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hi" {
			t.Errorf("read %q %v, want hi", buf, err)
		}
		s.Close()
		c.Close()
		lns[i].Close()
	}
}

func TestListenersNotForUs(t *testing.T) {
	cases := map[string]map[string]string{
		"LISTEN_PID of another process": activationEnv(43, 1, ""),
		"LISTEN_PID unset":              {"LISTEN_FDS": "1"},
		"LISTEN_FDS unset":              {"LISTEN_PID": "42"},
		"LISTEN_FDS=0":                  activationEnv(42, 0, ""),
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			// Descriptor 3 is the runtime's here: Files must not even look at it.
			files, err := Files(MapEnv(env, 42))
			if files != nil || err != nil {
				t.Errorf("got %v %v, want nil nil (binds its own port)", files, err)
			}
			if len(env) != 0 {
				t.Errorf("env left %v, want the LISTEN_ variables removed", env)
			}
		})
	}
}

func TestListenersRefuseWhatIsNotAListeningTCPSocket(t *testing.T) {
	const first = 210
	dir := t.TempDir()
	unixLn, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	unixF, _ := unixLn.(*net.UnixListener).File()
	defer unixF.Close()

	tcpLn, tcpF := tcpListenerFile(t)
	conn, err := net.Dial("tcp", tcpLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connF, _ := conn.(*net.TCPConn).File()
	defer connF.Close()

	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpF, _ := udp.(*net.UDPConn).File()
	defer udpF.Close()

	regular, err := os.Create(filepath.Join(dir, "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()

	cases := []struct {
		name string
		f    *os.File
		want string
	}{
		{"unix socket", unixF, "is a unix socket"},
		{"connected TCP socket", connF, "is a TCP socket that is not listening"},
		{"UDP socket", udpF, "is a UDP or other non-stream socket"},
		{"regular file", regular, "is not a socket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The bad one second: the good one before it must be closed too.
			passFDs(t, first, tcpF, c.f)
			files, err := listenFiles(MapEnv(activationEnv(42, 2, "good:bad"), 42), first)
			if files != nil || !errors.Is(err, ErrNotTCPListener) {
				t.Fatalf("got %v %v, want an error wrapping ErrNotTCPListener", files, err)
			}
			want := "passed socket 211 (bad) " + c.want + ": not a listening TCP socket"
			if err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			for _, fd := range []int{first, first + 1} {
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, syscall.EBADF) {
					t.Errorf("descriptor %d still open after the error (%v): leaked", fd, err)
				}
			}
		})
	}
}

func TestListenersBadVariables(t *testing.T) {
	for _, env := range []map[string]string{
		{"LISTEN_PID": "x", "LISTEN_FDS": "1"},
		{"LISTEN_PID": "42", "LISTEN_FDS": "one"},
		{"LISTEN_PID": "42", "LISTEN_FDS": "-1"},
	} {
		desc := strings.TrimSpace(strings.ReplaceAll(strconv.Quote(env["LISTEN_PID"]+" "+env["LISTEN_FDS"]), "\"", ""))
		if _, err := Files(MapEnv(env, 42)); err == nil {
			t.Errorf("LISTEN_PID LISTEN_FDS = %s: no error, want one", desc)
		}
	}
}
