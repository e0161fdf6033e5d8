//go:build !linux

package cluster

import (
	"context"
	"net"
	"os"
)

func scaleSignals() (up, down os.Signal) { return nil, nil }

func reserveSockets(net.Addr, int) ([]*os.File, error) { return nil, errUnsupported }

// Scale asks a cluster master to run n workers. Masters with workers run
// on Linux only: elsewhere it fails.
func Scale(ctx context.Context, pid, n int) error { return errUnsupported }

// RestartWorker asks a cluster master to replace one worker. Masters with
// workers run on Linux only: elsewhere it fails.
func RestartWorker(ctx context.Context, pid, id int) error { return errUnsupported }
