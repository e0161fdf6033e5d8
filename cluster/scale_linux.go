package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// scaleSignals are the signals that add a worker (SIGTTIN) and remove one
// (SIGTTOU).
func scaleSignals() (up, down os.Signal) { return syscall.SIGTTIN, syscall.SIGTTOU }

// reserveSockets binds n more SO_REUSEPORT sockets to addr (where the
// slots' sockets listen) without listening: a socket that does not listen
// is not in the port's group and gets no connection until listenFile.
func reserveSockets(addr net.Addr, n int) ([]*os.File, error) {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("reserve sockets on %v: not a TCP address", addr)
	}
	var files []*os.File
	for range n {
		f, err := bindOnly(ta)
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("reserve sockets on %v: %w", addr, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// bindOnly is what net.Listen does for a TCP address, short of listen:
// the same family (IPv6 dual-stack for a wildcard, as Go does), with
// SO_REUSEADDR and SO_REUSEPORT.
func bindOnly(ta *net.TCPAddr) (*os.File, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET6
	if ip4 := ta.IP.To4(); ip4 != nil && (len(ta.IP) == net.IPv4len || !ta.IP.IsUnspecified()) {
		family = unix.AF_INET
		s4 := &unix.SockaddrInet4{Port: ta.Port}
		copy(s4.Addr[:], ip4)
		sa = s4
	} else {
		s6 := &unix.SockaddrInet6{Port: ta.Port}
		copy(s6.Addr[:], ta.IP.To16())
		sa = s6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	opts := [][2]int{{unix.SOL_SOCKET, unix.SO_REUSEADDR}, {unix.SOL_SOCKET, unix.SO_REUSEPORT}}
	if family == unix.AF_INET6 && ta.IP.IsUnspecified() {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], 1); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "socket"), nil
}

// listenFile makes a socket from reserveSockets listen, with the backlog
// Go's listeners use (the kernel's somaxconn).
func listenFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Listen(int(fd), somaxconn()) }); err != nil {
		return err
	}
	return lerr
}

// isListening reports whether the socket f listens (SO_ACCEPTCONN).
func isListening(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	v := 0
	if err := rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN) }); err != nil {
		return false
	}
	return err == nil && v == 1
}

func somaxconn() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && n > 0 {
		return n
	}
	return syscall.SOMAXCONN
}

// readRSS is the resident memory of process pid, from /proc/PID/statm
// (its second field, in pages).
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("%s: /proc/%d/statm", strings.TrimSpace(string(b)), pid)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}

// Scale asks the cluster master whose process id is pid to run n workers
// (Master.Scale), over its control socket, as Reload does; it returns once
// the master has taken the request. Only a process of the master's user,
// or root, is answered.
func Scale(ctx context.Context, pid, n int) error {
	return command(ctx, pid, "scale "+strconv.Itoa(n))
}

// RestartWorker asks the cluster master whose process id is pid to replace
// the worker of slot id (Master.RestartWorker), as Reload does; it returns
// once the master has taken the request.
func RestartWorker(ctx context.Context, pid, id int) error {
	return command(ctx, pid, "restart-worker "+strconv.Itoa(id))
}

// command sends one control command and reads its one-line answer.
func command(ctx context.Context, pid int, line string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", controlAddr(pid))
	if err != nil {
		return fmt.Errorf("no cluster master with pid %d answers (%w)", pid, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return fmt.Errorf("master %d: %w", pid, err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("master %d: %w", pid, err)
	}
	reply = strings.TrimSpace(reply)
	if reply == "ok" {
		return nil
	}
	return fmt.Errorf("master %d: %s", pid, strings.TrimPrefix(reply, "error "))
}
