package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Reload asks the cluster master whose process id is pid for a rolling
// reload, as SIGHUP does, and waits until that reload has ended: nil when
// every worker was replaced, an error wrapping ErrReloadAborted when it was
// given up (the old workers serve on), ErrMasterStopping when the master
// began to stop. It is what a service manager's reload command needs (e.g.
// systemd's ExecReload, which must return only once the reload is done).
// Only a process of the master's user, or root, is answered.
func Reload(ctx context.Context, pid int) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", controlAddr(pid))
	if err != nil {
		return fmt.Errorf("no cluster master with pid %d answers (%w)", pid, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write([]byte("reload\n")); err != nil {
		return fmt.Errorf("ask master %d for a reload: %w", pid, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if ctx.Err() != nil {
		return fmt.Errorf("wait for master %d's reload: %w", pid, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("wait for master %d's reload: %w", pid, err)
	}
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		return nil
	case strings.HasPrefix(line, "aborted "):
		return fmt.Errorf("master %d: %w %s", pid, ErrReloadAborted, strings.TrimPrefix(line, "aborted "))
	case strings.HasPrefix(line, "stopping"):
		return fmt.Errorf("master %d: %w", pid, ErrMasterStopping)
	default:
		return fmt.Errorf("master %d: %s", pid, strings.TrimPrefix(line, "error "))
	}
}

// serveControl listens on the master's control socket and serves it until
// the returned func is called (after the loop has returned).
func (l *loop) serveControl() (stop func(), err error) {
	ln, err := net.Listen("unix", controlAddr(os.Getpid()))
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			wg.Go(func() { l.control(c.(*net.UnixConn)) })
		}
	})
	return func() { ln.Close(); wg.Wait() }, nil
}

// control answers one control connection: "reload" waits for the reload's
// end; the answer is one line ("ok", "aborted WHY", "stopping", "error WHY").
func (l *loop) control(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := peerAllowed(c); err != nil {
		fmt.Fprintf(c, "error %v\n", err)
		return
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	switch cmd := strings.TrimSpace(line); cmd {
	case "reload":
	case "upgrade":
		l.controlUpgrade(c) // upgrade_linux.go
		return
	default:
		fmt.Fprintf(c, "error unknown command %q\n", cmd)
		return
	}
	reply := make(chan error, 1)
	l.send(evReloadWait{reply})
	select {
	case err = <-reply:
	case <-l.done:
		err = ErrMasterStopping
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	switch {
	case err == nil:
		fmt.Fprintln(c, "ok")
	case errors.Is(err, ErrReloadAborted):
		fmt.Fprintf(c, "aborted %s\n", strings.TrimPrefix(err.Error(), ErrReloadAborted.Error()+" "))
	case errors.Is(err, ErrMasterStopping):
		fmt.Fprintln(c, "stopping")
	default:
		fmt.Fprintf(c, "error %v\n", err)
	}
}

// peerAllowed admits the master's own user and root: any process of the
// network namespace can connect to an abstract socket.
func peerAllowed(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("uid %d may not control this master", cred.Uid)
	}
	return nil
}
