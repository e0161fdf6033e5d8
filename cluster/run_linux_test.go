package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A master that fails after binding (here its Master hook: an address for
// metrics taken) releases everything it made: sockets, connection table.
// No worker is started.
func TestRunReleasesEverythingWhenTheMasterHookFails(t *testing.T) {
	before := openFDs(t)
	var addr string
	boom := errors.New("master metrics: address in use")
	err := Run(context.Background(), Config{Addr: "127.0.0.1:0", Workers: 3, Balance: true, Private: true, Exe: "/nonexistent",
		Master: func(m *Master) (func(), error) {
			addr = m.Addr().String()
			if m.l.table == nil {
				t.Error("no connection table with Balance and 3 workers")
			}
			return nil, boom
		}},
		func(context.Context, *Worker) error { t.Error("the worker function ran in the master"); return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the hook's error", err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors: %d before Run, %d after; want the same", before, after)
	}
	ln, err := net.Listen("tcp", addr) // a plain bind: fails while any socket listens there
	if err != nil {
		t.Fatalf("the port is still held after Run failed: %v", err)
	}
	ln.Close()
}

// Closing the table unmaps it and closes its memfd.
func TestConnTableClose(t *testing.T) {
	before := openFDs(t)
	tb, err := createTable(4)
	if err != nil {
		t.Fatal(err)
	}
	if openFDs(t) != before+1 {
		t.Fatal("createTable did not open one descriptor")
	}
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	if tb.mem != nil || tb.file != nil || openFDs(t) != before {
		t.Errorf("after close: mapped %v, file %v, %d descriptors (want %d)", tb.mem != nil, tb.file != nil, openFDs(t), before)
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
