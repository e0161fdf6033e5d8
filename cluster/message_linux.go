package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// messagePair makes a worker's channel: the master's end as a net.Conn,
// the worker's as a file to hand on. Both ends have room for MaxMessage.
func messagePair() (net.Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("message channel: %w", err)
	}
	for _, fd := range fds {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4*MaxMessage)
	}
	mf := os.NewFile(uintptr(fds[0]), "messages")
	defer mf.Close()
	conn, err := net.FileConn(mf)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("message channel: %w", err)
	}
	return conn, os.NewFile(uintptr(fds[1]), "messages"), nil
}

// messageConn is a worker's end, inherited at fd.
func messageConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "messages")
	defer f.Close()
	return net.FileConn(f)
}

// sendMessage writes data as one message on conn, at once or not at all.
func sendMessage(conn net.Conn, data []byte) error {
	if len(data) > MaxMessage {
		return fmt.Errorf("%w (%d bytes, limit %d)", ErrMessageTooLarge, len(data), MaxMessage)
	}
	sc, ok := conn.(syscall.Conn)
	if conn == nil || !ok {
		return ErrNoMessages
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return ErrNoMessages
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		_, werr = unix.SendmsgN(int(fd), data, nil, nil, unix.MSG_DONTWAIT)
		return true // one try: a full buffer is the reader's problem, not the sender's
	})
	switch {
	case err != nil:
		return ErrNoMessages
	case errors.Is(werr, unix.EAGAIN):
		return ErrMessageQueueFull
	case errors.Is(werr, unix.EPIPE), errors.Is(werr, unix.ECONNRESET), errors.Is(werr, unix.ENOTCONN):
		return ErrNoMessages
	}
	return werr
}
