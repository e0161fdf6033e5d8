//go:build !linux

package cluster

import (
	"net"
	"os"
)

func messagePair() (net.Conn, *os.File, error) { return nil, nil, errUnsupported }

func messageConn(int) (net.Conn, error) { return nil, errUnsupported }

func sendMessage(net.Conn, []byte) error { return ErrNoMessages }
