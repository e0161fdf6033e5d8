//go:build !linux

package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
)

// Upgrade asks a cluster master to upgrade itself and waits for the
// outcome. Masters with workers run on Linux only: elsewhere it fails.
func Upgrade(ctx context.Context, pid int) (int, error) {
	return 0, fmt.Errorf("upgrade master %d: %w", pid, errUnsupported)
}

type upgradeIn struct {
	sockets []*os.File
	addr    net.Addr
}

func (*upgradeIn) Ready() error { return errUnsupported }

func upgradeFromEnv(*Config) (*upgradeIn, error) { return nil, nil }

func upgradeSystemdEnv(*Config) []string { return nil }

func startUpgrades(*loop, *Config, *upgradeIn, []string) func() { return func() {} }
