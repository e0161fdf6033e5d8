package systemd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// listenFiles is Files with the first descriptor as a parameter, so tests
// can place sockets where the Go runtime's own descriptors are not.
func listenFiles(env Env, first int) ([]*os.File, error) {
	n, names, err := passed(env)
	if err != nil || n == 0 {
		return nil, err
	}
	for fd := first; fd < first+n; fd++ {
		unix.CloseOnExec(fd)
	}
	files := make([]*os.File, 0, n)
	for i := range n {
		fd := first + i
		name := fdName(fd, i, names)
		if err := checkTCPListener(fd); err != nil {
			for _, f := range files {
				f.Close()
			}
			for rest := fd; rest < first+n; rest++ {
				unix.Close(rest)
			}
			return nil, fmt.Errorf("passed socket %d (%s) %w", fd, name, err)
		}
		files = append(files, os.NewFile(uintptr(fd), name))
	}
	return files, nil
}

// checkTCPListener says what fd is when it is not a listening TCP socket.
func checkTCPListener(fd int) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	switch {
	case errors.Is(err, unix.ENOTSOCK):
		return fmt.Errorf("is not a socket: %w", ErrNotTCPListener)
	case errors.Is(err, unix.EBADF):
		return fmt.Errorf("is not an open descriptor: %w", ErrNotTCPListener)
	case err != nil:
		return fmt.Errorf("cannot be inspected (%v): %w", err, ErrNotTCPListener)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("cannot be inspected (%v): %w", err, ErrNotTCPListener)
	}
	switch sa.(type) {
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
	case *unix.SockaddrUnix:
		return fmt.Errorf("is a unix socket: %w", ErrNotTCPListener)
	default:
		return fmt.Errorf("is a socket of another family (%T): %w", sa, ErrNotTCPListener)
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("is a UDP or other non-stream socket: %w", ErrNotTCPListener)
	}
	if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc == 0 {
		return fmt.Errorf("is a TCP socket that is not listening: %w", ErrNotTCPListener)
	}
	return nil
}
