package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/lbserver/lbserver/cluster"
	"github.com/lbserver/lbserver/internal/config"
)

// runUpgrade is `lbserver upgrade PID`: ask the CLUSTER master PID to
// upgrade itself (as SIGUSR2 does, nginx's binary upgrade): it starts the
// executable again as a new master on the same sockets, and once the new
// master's workers are ready it drains its own and exits 0. It waits for
// that outcome and fails when the upgrade was refused or rolled back (the
// old master then serves on).
func runUpgrade(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return &config.UsageError{Msg: "usage: lbserver upgrade MASTER_PID"}
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 0 {
		return &config.UsageError{Msg: fmt.Sprintf("upgrade: %q is not a process id", args[0])}
	}
	newPid, err := cluster.Upgrade(ctx, pid)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	fmt.Fprintf(stdout, "lbserver: master %d upgraded: new master %d serves, the old one drains and exits\n", pid, newPid)
	return nil
}
