package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listenSockets opens n listening sockets on addr, with SO_REUSEPORT when
// reuse, and returns them as plain files (the master never accepts on them)
// with the address they are bound to. The first socket is bound to addr,
// the others to the address it got: with port 0, every slot listens on the
// one port the kernel chose for the first.
func listenSockets(addr string, n int, shareExisting, reuse bool) ([]*os.File, net.Addr, error) {
	if !shareExisting {
		// A plain bind fails where anything listens, SO_REUSEPORT or not, so
		// that two masters never end up sharing a port by accident.
		probe, err := probeListen(addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		_ = probe.Close()
	}
	lc := net.ListenConfig{}
	if reuse || shareExisting {
		lc.Control = ReusePortControl
	}
	var files []*os.File
	var bound net.Addr
	for range n {
		if bound != nil {
			addr = bound.String()
		}
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			closeFiles(files)
			return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		f, err := plainFile(ln.(*net.TCPListener))
		bound = ln.Addr()
		_ = ln.Close() // f is a duplicate that keeps the socket open
		if err != nil {
			closeFiles(files)
			return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		files = append(files, f)
	}
	return files, bound, nil
}

// adoptFiles takes duplicates of sockets the caller opened (systemd socket
// activation, for one) and the address the first is bound to.
func adoptFiles(given []*os.File) ([]*os.File, net.Addr, error) {
	var files []*os.File
	var bound net.Addr
	for i, g := range given {
		ln, err := net.FileListener(g)
		if err != nil {
			closeFiles(files)
			return nil, nil, fmt.Errorf("given socket %d: %w", i, err)
		}
		f, err := plainFile(ln.(syscall.Conn))
		if bound == nil {
			bound = ln.Addr()
		}
		_ = ln.Close()
		if err != nil {
			closeFiles(files)
			return nil, nil, fmt.Errorf("given socket %d: %w", i, err)
		}
		files = append(files, f)
	}
	return files, bound, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// plainFile returns a duplicate of ln's socket as an *os.File that is not
// in non-blocking mode, so that passing it to a worker (os/exec calls
// File.Fd) never touches the socket's flags.
//
// O_NONBLOCK belongs to the socket's open file description, which the
// master and every worker share. File.Fd on a File made in non-blocking
// mode (what TCPListener.File returns) clears O_NONBLOCK on that shared
// description; a worker whose runtime then calls accept4 on the socket
// blocks in the syscall instead of waiting in the poller, and its Close of
// the listener (the first step of a drain) hangs until a connection
// arrives.
func plainFile(ln syscall.Conn) (*os.File, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	err = rc.Control(func(fd uintptr) {
		nfd, derr = syscall.Dup(int(fd))
		if derr == nil {
			syscall.CloseOnExec(nfd)
			// Blocking for now, so that os.NewFile makes a plain File; no
			// worker shares the socket yet. Workers set it non-blocking
			// again (net.FileListener) and nothing here undoes it.
			derr = syscall.SetNonblock(nfd, false)
		}
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		if nfd >= 0 {
			_ = syscall.Close(nfd)
		}
		return nil, err
	}
	return os.NewFile(uintptr(nfd), "socket"), nil
}

// ReusePortControl is a net.ListenConfig.Control that sets SO_REUSEPORT, so
// that several sockets (of one process or of several) listen on one address
// and the kernel spreads new connections over them.
func ReusePortControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// privateSockets makes each worker's private listener: a unix socket in
// the abstract namespace (Linux), which has no file on disk and vanishes
// with the last descriptor of it, so that a master killed by SIGKILL leaves
// nothing behind. Its name carries the master's pid and a random tag.
func privateSockets() func(slot int) (*os.File, string, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	base := "@cluster-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	seq := 0
	return func(slot int) (*os.File, string, error) {
		seq++
		name := base + "-w" + strconv.Itoa(slot) + "-" + strconv.Itoa(seq)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
		if err != nil {
			return nil, "", err
		}
		f, err := plainFile(ln)
		_ = ln.Close() // abstract: no file to remove; f keeps the name bound
		if err != nil {
			return nil, "", err
		}
		return f, name, nil
	}
}

// Binding a port in use is tried again for bindRetry before it is an
// error: a master started again at once after the last one died (systemd,
// PM2, forever restarting it) may find the port still held for a moment by
// the old workers, which let go of it as soon as they read EOF on their
// lifeline (Worker.dropSlots). nginx retries its binds the same way (5
// times, 500ms apart); half a second keeps a real conflict under the one
// second a process manager counts as a failed start.
const (
	bindRetry = 500 * time.Millisecond
	bindPause = 50 * time.Millisecond
)

// probeListen is net.Listen, tried again while the address is in use, for
// up to bindRetry.
func probeListen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(bindRetry)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(bindPause)
	}
}
