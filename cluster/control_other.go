//go:build !linux

package cluster

import (
	"context"
	"fmt"
)

// Reload asks a cluster master for a rolling reload and waits for its end.
// Masters with workers run on Linux only: elsewhere it fails.
func Reload(ctx context.Context, pid int) error {
	return fmt.Errorf("reload master %d: %w", pid, errUnsupported)
}

func (l *loop) serveControl() (func(), error) { return nil, errUnsupported }
