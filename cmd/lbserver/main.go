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

	"github.com/lbserver/lbserver/internal/config"
)

func main() {
	// The first SIGINT/SIGTERM cancels ctx (drain); a second one closes force.
	ctx, cancel := context.WithCancel(context.Background())
	force := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		close(force)
	}()
	err := run(ctx, force, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err == nil {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "lbserver: %v\n", err)
	if _, ok := errors.AsType[*config.UsageError](err); ok {
		os.Exit(2)
	}
	os.Exit(1)
}
