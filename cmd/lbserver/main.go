// Command lbserver is an HTTP server built to be load-balanced: one process
// (--mode FORK) or a master that supervises one worker per CPU sharing one
// port (--mode CLUSTER). See README.md and `lbserver --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lbserver/lbserver/cluster"
	"github.com/lbserver/lbserver/internal/config"
)

func main() {
	// SIGHUP first: lbserver does slow work (hashing its own executable)
	// before cluster.Run takes SIGHUP as a reload, and a SIGHUP then (a
	// unit's ExecReload right after its start) must not end it. Never read:
	// Run takes its own copy.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	// The first SIGINT/SIGTERM cancels ctx (drain); a second one closes force.
	ctx, force, stop := cluster.Signals(context.Background())
	err := run(ctx, force, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err == nil {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "lbserver: %v\n", err)
	if _, ok := errors.AsType[*config.UsageError](err); ok {
		os.Exit(2)
	}
	os.Exit(1)
}
