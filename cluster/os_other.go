//go:build !linux

package cluster

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// Elsewhere than Linux, Run serves in-process (runInProcess): these are
// never called, and say so if they are.
var errUnsupported = errors.New("cluster: worker processes need Linux")

func supported() bool { return false }

func osSys(*Config) sys { return sys{} }

func listenSockets(string, int, bool, bool) ([]*os.File, net.Addr, error) {
	return nil, nil, errUnsupported
}

func adoptFiles([]*os.File) ([]*os.File, net.Addr, error) { return nil, nil, errUnsupported }

func closeFiles(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

func createTable(int) (*connTable, error) { return nil, errUnsupported }

func (t *connTable) close() error { return nil }

func workerFromEnv(*Config) (*Worker, error) { return nil, errNotWorker }

// ReusePortControl is a net.ListenConfig.Control that sets SO_REUSEPORT;
// here it fails, as the option does not spread connections here.
func ReusePortControl(network, address string, c syscall.RawConn) error {
	return errUnsupported
}
