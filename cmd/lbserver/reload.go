package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/lbserver/lbserver/cluster"
	"github.com/lbserver/lbserver/internal/config"
)

// runReload is `lbserver reload PID`: ask the CLUSTER master PID for a
// rolling reload (as SIGHUP does) and wait until it has ended, in the spirit
// of `nginx -s reload`. It is the units' ExecReload: systemd's
// `systemctl reload` then returns only once every worker runs the new
// binary, and fails when the reload was aborted.
func runReload(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return &config.UsageError{Msg: "usage: lbserver reload MASTER_PID"}
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 0 {
		return &config.UsageError{Msg: fmt.Sprintf("reload: %q is not a process id", args[0])}
	}
	if err := cluster.Reload(ctx, pid); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	fmt.Fprintf(stdout, "lbserver: master %d: rolling reload finished, every worker replaced\n", pid)
	return nil
}
