package cluster

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// A reserved socket (bound, not listening) gets no connection; once it
// listens, the kernel spreads new connections over it too.
func TestReservedSocketJoinsWhenItListens(t *testing.T) {
	files, addr, err := listenSockets("127.0.0.1:0", 1, false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFiles(files)
	spare, err := reserveSockets(addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFiles(spare)
	ln0, err := net.FileListener(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer ln0.Close()
	accepted := func(ln net.Listener) int {
		n := 0
		for {
			_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
			c, err := ln.Accept()
			if err != nil {
				return n
			}
			c.Close()
			n++
		}
	}
	dial := func(n int) {
		for range n {
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
	}
	dial(20)
	if got := accepted(ln0); got != 20 {
		t.Fatalf("the listening socket accepted %d of 20 with the other only bound, want 20", got)
	}
	if err := listenFile(spare[0]); err != nil {
		t.Fatal(err)
	}
	ln1, err := net.FileListener(spare[0])
	if err != nil {
		t.Fatal(err)
	}
	defer ln1.Close()
	dial(64)
	a0, a1 := accepted(ln0), accepted(ln1)
	if a0+a1 != 64 || a0 == 0 || a1 == 0 {
		t.Errorf("after listen: %d and %d accepted of 64, want both some", a0, a1)
	}
}

// The master's RSS reading is the process's resident memory.
func TestReadRSS(t *testing.T) {
	rss, err := readRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("readRSS(self) = %d, %v; want over 1 MiB", rss, err)
	}
	if _, err := readRSS(1 << 30); err == nil {
		t.Errorf("readRSS of no process: no error")
	}
}

// The control commands reach the loop: a scale out of range is refused
// with the reason, one in range is taken.
func TestControlScaleCommands(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, MaxWorkers: 3})
	h.startAll()
	stop, err := h.l.serveControl()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	if err := Scale(ctx, os.Getpid(), 9); err == nil || !strings.Contains(err.Error(), "1 to 3") {
		t.Errorf("Scale(9) with MaxWorkers 3 = %v, want the range in the error", err)
	}
	if err := RestartWorker(ctx, os.Getpid(), 3); err == nil || !strings.Contains(err.Error(), ErrNoWorker.Error()) {
		t.Errorf("RestartWorker(3) of 2 = %v, want %v", err, ErrNoWorker)
	}
	if err := Scale(ctx, os.Getpid(), 3); err != nil {
		t.Fatal(err)
	}
	if p := h.spawned(); p.slot != 3 {
		t.Errorf("scale 3 started slot %d, want 3", p.slot)
	}
	if err := RestartWorker(ctx, os.Getpid(), 1); err != nil {
		t.Fatal(err)
	}
}
