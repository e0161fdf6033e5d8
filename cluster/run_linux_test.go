package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tableLeft reports whether this process still has a connection table's
// memfd open or mapped.
func tableLeft(t *testing.T) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(maps), "cluster-connections") {
		return true
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.Contains(l, "cluster-connections") {
			return true
		}
	}
	return false
}

// A master that fails after binding (here its Master hook: an address for
// metrics taken) releases everything it made: sockets, connection table.
// No worker is started.
func TestRunReleasesEverythingWhenTheMasterHookFails(t *testing.T) {
	var addr string
	boom := errors.New("master metrics: address in use")
	err := Run(context.Background(), Config{Addr: "127.0.0.1:0", Workers: 3, PrivateSockets: true, Exe: "/nonexistent",
		OnMaster: func(m *Master) (func(), error) {
			addr = m.Addr().String()
			if m.l.table == nil || !tableLeft(t) {
				t.Error("no connection table by default with 3 workers")
			}
			return nil, boom
		}},
		func(context.Context, *Worker) error { t.Error("the worker function ran in the master"); return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the hook's error", err)
	}
	if tableLeft(t) {
		t.Error("the connection table is still open or mapped after Run failed")
	}
	ln, err := net.Listen("tcp", addr) // a plain bind: fails while any socket listens there
	if err != nil {
		t.Fatalf("the port is still held after Run failed: %v", err)
	}
	ln.Close()
}

// With NoSpread (and no MaxRequests to count) the master makes no
// connection table: the workers recycle keep-alive connections instead.
func TestNoSpreadMakesNoTable(t *testing.T) {
	boom := errors.New("stop here")
	err := Run(context.Background(), Config{Addr: "127.0.0.1:0", Workers: 3, NoSpread: true, Exe: "/nonexistent",
		OnMaster: func(m *Master) (func(), error) {
			if m.l.table != nil || tableLeft(t) {
				t.Error("a connection table with NoSpread")
			}
			return nil, boom
		}},
		func(context.Context, *Worker) error { t.Error("the worker function ran in the master"); return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the hook's error", err)
	}
}

// Closing the table unmaps it and closes its memfd.
func TestConnTableClose(t *testing.T) {
	tb, err := createTable(4)
	if err != nil {
		t.Fatal(err)
	}
	if !tableLeft(t) {
		t.Fatal("createTable: no memfd in /proc/self")
	}
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	if tb.mem != nil || tb.file != nil || tableLeft(t) {
		t.Errorf("after close: mapped %v, file %v, left in /proc/self: %v", tb.mem != nil, tb.file != nil, tableLeft(t))
	}
}

// Sockets opened by someone else (Config.Files) are used instead of
// binding: one per slot, or one shared; any other count is an error.
func TestGivenFiles(t *testing.T) {
	f1, addr := tcpSocket(t)
	f2, _ := tcpSocket(t)
	fake := sys{now: time.Now}
	m, err := listen(Config{Files: []*os.File{f1, f2}, Workers: 2, Logger: slog.New(slog.DiscardHandler)}, fake)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Addr().String(); got != addr {
		t.Errorf("Addr = %s, want the first given socket's %s", got, addr)
	}
	if len(m.sockets) != 2 || m.sockets[0].Fd() == f1.Fd() {
		t.Errorf("sockets %v: want 2 duplicates of the given ones", m.sockets)
	}
	m.close()
	// The caller's sockets are still open and listening.
	ln, err := net.FileListener(f1)
	if err != nil {
		t.Fatalf("the given socket was closed by the master: %v", err)
	}
	ln.Close()
	if _, err := listen(Config{Files: []*os.File{f1, f2}, Workers: 3, Logger: slog.New(slog.DiscardHandler)}, fake); err == nil {
		t.Error("2 sockets for 3 workers: no error")
	}
}

// The workers' default executable is the path the program was started by,
// symlinks kept, while it names this executable; os.Executable otherwise.
func TestInvokedExe(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	saved := os.Args[0]
	defer func() { os.Args[0] = saved }()
	for _, c := range []struct{ arg0, want string }{
		{link, link},                   // a symlink: kept, not resolved
		{"/nonexistent/app", self},     // not this executable any more
		{os.DevNull, self},             // another file
		{"", self},                     // nothing said
		{"no-such-command-here", self}, // not in PATH
	} {
		os.Args[0] = c.arg0
		if got, err := invokedExe(); err != nil || got != c.want {
			t.Errorf("argv[0] %q: invokedExe() = %q, %v; want %q", c.arg0, got, err, c.want)
		}
	}
	// Relative: to the working directory when Run starts.
	t.Chdir(filepath.Dir(link))
	os.Args[0] = "./current"
	if got, err := invokedExe(); err != nil || got != link {
		t.Errorf("argv[0] ./current in %s: invokedExe() = %q, %v; want %q", filepath.Dir(link), got, err, link)
	}
}
