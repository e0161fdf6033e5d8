//go:build !unix

package systemd

import (
	"net"
	"time"
)

// writeNow sends b on c, waiting for room no longer than a moment; a
// message that finds no room is dropped (ErrDropped).
func writeNow(c *net.UnixConn, b []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := c.Write(b); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return ErrDropped
		}
		return err
	}
	return nil
}
