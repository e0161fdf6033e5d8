//go:build !linux

package cluster

import (
	"net"
	"os"
)

func scaleSignals() (up, down os.Signal) { return nil, nil }

func reserveSockets(net.Addr, int) ([]*os.File, error) { return nil, errUnsupported }
