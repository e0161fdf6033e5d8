package supervisor

import (
	"net"
	"syscall"
	"testing"
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
	m, err := Listen(Options{Workers: 2, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range m.sockets {
			f.Close()
		}
	}()
	// What a worker does with its inherited socket.
	ln, err := net.FileListener(m.sockets[0])
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !nonblocking(t, ln) {
		t.Fatal("a worker's listener is not non-blocking to begin with")
	}
	// What starting the next worker does to the master's copies.
	for _, f := range m.sockets {
		_ = f.Fd()
	}
	if !nonblocking(t, ln) {
		t.Error("after the master handed the socket on (File.Fd), the worker's listener is in blocking mode")
	}
}
