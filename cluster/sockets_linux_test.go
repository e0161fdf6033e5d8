package cluster

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nonblocking reports whether the open file description behind ln has
// O_NONBLOCK.
func nonblocking(t *testing.T, ln net.Listener) bool {
	t.Helper()
	rc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		flags, ferr = int(r), nil
		if e != 0 {
			ferr = e
		}
	}); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
	return flags&syscall.O_NONBLOCK != 0
}

// Handing a slot's socket to another worker (os/exec calls File.Fd on it)
// must not put the socket, shared with the workers already serving on it,
// in blocking mode: their runtime would then block in accept4 and their
// drain would hang in Close.
func TestHandingSocketsOnKeepsWorkersNonBlocking(t *testing.T) {
	sockets, _, err := listenSockets("127.0.0.1:0", 2, false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFiles(sockets)
	// What a worker does with its inherited socket.
	ln, err := net.FileListener(sockets[0])
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !nonblocking(t, ln) {
		t.Fatal("a worker's listener is not non-blocking to begin with")
	}
	// What starting the next worker does to the master's copies.
	for _, f := range sockets {
		_ = f.Fd()
	}
	if !nonblocking(t, ln) {
		t.Error("after the master handed the socket on (File.Fd), the worker's listener is in blocking mode")
	}
}

// A port in use is refused (unless ShareExisting), and the sockets of one
// master share the port: with port 0 too, where the first socket's
// ephemeral port is every other's.
func TestListenSockets(t *testing.T) {
	sockets, addr, err := listenSockets("127.0.0.1:0", 3, false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFiles(sockets)
	if len(sockets) != 3 {
		t.Fatalf("%d sockets, want 3", len(sockets))
	}
	for i, f := range sockets {
		ln, err := net.FileListener(f)
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().String()
		ln.Close()
		if got != addr.String() {
			t.Errorf("socket of slot %d is bound to %s, want %s (the address the master reports)", i+1, got, addr)
		}
	}
	if _, _, err := listenSockets(addr.String(), 1, false, true); err == nil {
		t.Error("a second master bound a port in use")
	}
	more, _, err := listenSockets(addr.String(), 1, true, true)
	if err != nil {
		t.Errorf("ShareExisting on a SO_REUSEPORT port: %v", err)
	}
	closeFiles(more)
}

// A worker's private socket is in the abstract namespace: reachable by its
// address, with no file anywhere, and gone with its last descriptor.
func TestPrivateSocketsLeaveNothingOnDisk(t *testing.T) {
	f, addr, err := privateSockets()(1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "@") {
		t.Fatalf("private address %q is not abstract", addr)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatalf("dial the private socket: %v", err)
	}
	c.Close()
	ln.Close()
	if c, err := net.Dial("unix", addr); err == nil {
		c.Close()
		t.Error("the private socket is still reachable after its last descriptor closed")
	}
}

// A port held by someone else when the master starts is tried again for a
// moment (the workers of a master that just died let go of it), then it is
// an error that names the address in use.
func TestListenWaitsBrieflyForAPortInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := held.Addr().String()
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(2 * bindPause) // let go of it while listenSockets is retrying
		held.Close()
	}()
	files, _, err := listenSockets(addr, 2, false, true)
	<-released
	if err != nil {
		t.Fatalf("listenSockets while the port was let go of = %v, want it bound", err)
	}
	closeFiles(files)

	still, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer still.Close()
	start := time.Now()
	_, _, err = listenSockets(addr, 2, false, true)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("listenSockets on a port kept in use = %v, want EADDRINUSE", err)
	}
	if took := time.Since(start); took < bindRetry || took > bindRetry+time.Second {
		t.Errorf("gave up after %v, want about %v", took, bindRetry)
	}
}
