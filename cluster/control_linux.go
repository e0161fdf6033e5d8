package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
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
	nc, err := d.DialContext(ctx, "unix", controlAddr(pid))
	if err != nil {
		return fmt.Errorf("no cluster master with pid %d answers (%w)", pid, err)
	}
	defer nc.Close()
	c := nc.(*net.UnixConn)
	// Any user can bind an abstract name: the answer counts only from the
	// process asked for, of our user or root.
	cred, err := peerCred(c)
	if err != nil {
		return fmt.Errorf("master %d: check who answers: %w", pid, err)
	}
	if int(cred.Pid) != pid || !uidAllowed(cred.Uid) {
		return fmt.Errorf("%w: the control socket of pid %d is held by pid %d (uid %d), not the master", ErrNotMaster, pid, cred.Pid, cred.Uid)
	}
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
	name := controlAddr(os.Getpid())
	ln, err := net.Listen("unix", name)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", name, err)
	}
	return l.serveControlOn(ln), nil
}

// serveControlOn serves control commands on ln until the returned func is
// called; it closes ln.
func (l *loop) serveControlOn(ln net.Listener) (stop func()) {
	var wg sync.WaitGroup
	closed := make(chan struct{})
	wg.Go(func() {
		var pause time.Duration
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// Anything else (EMFILE, ENFILE, ENOBUFS, ECONNABORTED) may
				// pass: try again after a pause that doubles up to a second,
				// as net/http's Server.Serve does.
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				t := time.NewTimer(pause)
				select {
				case <-t.C:
				case <-closed:
					t.Stop()
					return
				}
				continue
			}
			pause = 0
			uc, ok := c.(*net.UnixConn)
			if !ok {
				_ = c.Close()
				continue
			}
			wg.Go(func() { l.control(uc) })
		}
	})
	return func() { close(closed); ln.Close(); wg.Wait() }
}

// maxControlLine bounds a control command's line ("reload\n" is 7 bytes).
const maxControlLine = 256

// control answers one control connection: "reload" waits for the reload's
// end; the answer is one line ("ok", "aborted WHY", "stopping", "error WHY").
func (l *loop) control(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := peerAllowed(c); err != nil {
		fmt.Fprintf(c, "error %v\n", err)
		return
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxControlLine)).ReadString('\n')
	if err == io.EOF && len(line) == maxControlLine {
		fmt.Fprintf(c, "error command too long (over %d bytes)\n", maxControlLine)
		return
	}
	if err != nil {
		return
	}
	if reply, ok := l.controlScale(strings.TrimSpace(line)); ok {
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintln(c, reply)
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

// peerAllowed admits the master's own user and root, from this pid
// namespace or one below it: any process of the network namespace can
// connect to an abstract socket, also from another container's pid
// namespace (its pid reads 0 here).
func peerAllowed(c *net.UnixConn) error {
	cred, err := peerCred(c)
	if err != nil {
		return err
	}
	if !uidAllowed(cred.Uid) {
		return fmt.Errorf("uid %d may not control this master", cred.Uid)
	}
	if cred.Pid == 0 {
		return errors.New("a process of another pid namespace may not control this master")
	}
	return nil
}

// uidAllowed reports whether uid is this process's user or root.
func uidAllowed(uid uint32) bool { return uid == 0 || int(uid) == os.Getuid() }

// peerCred returns the credentials of the process at the other end of c
// (for a connection we dialled: the process that listened), with its pid
// as seen from our pid namespace.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return nil, err
	}
	return cred, cerr
}

// controlAddr is the abstract unix socket (nothing on disk) on which the
// master of process pid takes control commands. Abstract names belong to
// the network namespace, which containers with pid namespaces of their own
// may share (each with its pid 1): the name carries the pid namespace's
// inode too, so that it is unique to one process, and a client computes
// the same name only from inside the master's pid namespace, where pid
// means that master.
func controlAddr(pid int) string {
	ns := "0"
	if l, err := os.Readlink("/proc/self/ns/pid"); err == nil { // "pid:[4026531836]"
		if i, j := strings.IndexByte(l, '['), strings.IndexByte(l, ']'); i >= 0 && j > i {
			ns = l[i+1 : j]
		}
	}
	return "@cluster-master-" + ns + "-" + strconv.Itoa(pid)
}

// ownersOnly is a unix listener that accepts only connections from this
// process's user or root (an abstract socket's name is listed in
// /proc/net/unix, and anyone in the network namespace can connect to it):
// others are closed at once, unanswered.
type ownersOnly struct{ *net.UnixListener }

func (l ownersOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if err := peerAllowed(c); err == nil {
			return c, nil
		}
		_ = c.Close()
	}
}

// onlyOwners restricts ln, a unix listener, to this process's user and
// root; any other listener is returned as it is.
func onlyOwners(ln net.Listener) net.Listener {
	if ul, ok := ln.(*net.UnixListener); ok {
		return ownersOnly{ul}
	}
	return ln
}
