package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/lbserver/lbserver/cluster"
	"github.com/lbserver/lbserver/internal/config"
)

// runScale is `lbserver scale PID N`: ask the CLUSTER master PID to run N
// workers (as SIGTTIN and SIGTTOU do one at a time). The master adds or
// removes the workers at once, between reloads.
func runScale(ctx context.Context, args []string, stdout io.Writer) error {
	pid, n, err := twoNumbers("scale", "MASTER_PID N", args)
	if err != nil {
		return err
	}
	if err := cluster.Scale(ctx, pid, n); err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	fmt.Fprintf(stdout, "lbserver: master %d: scaling to %d workers\n", pid, n)
	return nil
}

// runRestartWorker is `lbserver restart-worker PID ID`: ask the CLUSTER
// master PID to replace worker ID the way a reload does (the new one ready
// before the old one drains).
func runRestartWorker(ctx context.Context, args []string, stdout io.Writer) error {
	pid, id, err := twoNumbers("restart-worker", "MASTER_PID WORKER_ID", args)
	if err != nil {
		return err
	}
	if err := cluster.RestartWorker(ctx, pid, id); err != nil {
		return fmt.Errorf("restart-worker: %w", err)
	}
	fmt.Fprintf(stdout, "lbserver: master %d: replacing worker %d\n", pid, id)
	return nil
}

func twoNumbers(cmd, names string, args []string) (int, int, error) {
	usage := &config.UsageError{Msg: "usage: lbserver " + cmd + " " + names}
	if len(args) != 2 {
		return 0, 0, usage
	}
	a, err1 := strconv.Atoi(args[0])
	b, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil || a <= 0 || b <= 0 {
		return 0, 0, usage
	}
	return a, b, nil
}
