//go:build unix

package systemd

import (
	"errors"
	"net"
	"syscall"
)

// writeNow sends b on c with one non-blocking write: a full queue drops
// it (ErrDropped) instead of waiting for room.
func writeNow(c *net.UnixConn, b []byte) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			_, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true // done, sent or not: never wait for room
			}
		}
	})
	if err != nil {
		return err
	}
	if errors.Is(werr, syscall.EAGAIN) {
		return ErrDropped
	}
	return werr
}
