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
	pid, err := masterPID("reload", args)
	if err != nil {
		return err
	}
	if err := cluster.Reload(ctx, pid); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	fmt.Fprintf(stdout, "lbserver: master %d: rolling reload finished, every worker replaced\n", pid)
	return nil
}

// masterPID is the one argument of `lbserver VERB MASTER_PID`: a process id,
// or a usage error (exit 2).
func masterPID(verb string, args []string) (int, error) {
	if len(args) != 1 {
		return 0, &config.UsageError{Msg: "usage: lbserver " + verb + " MASTER_PID"}
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 0 {
		return 0, &config.UsageError{Msg: fmt.Sprintf("%s: %q is not a process id", verb, args[0])}
	}
	return pid, nil
}
