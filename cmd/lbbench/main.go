//go:build linux

// Command lbbench measures lbserver and writes docs/BENCHMARKS.md and
// docs/benchmarks.svg. `make bench` runs it; `BENCH_QUICK=1 make bench` is
// the same run with short measurements (under a minute).
//
// For each configuration (FORK, CLUSTER, and nginx topologies A and B when
// nginx is installed) it starts the processes on loopback, times the start
// up to the first answered request, warms up, loads three routes with wrk
// (or a built-in Go load generator), sums the RSS of every process it
// started, kills a CLUSTER worker to time its replacement, and measures
// /api/info latency while heavy requests keep every core busy. It also
// measures the randoms kernel in-process against a naive map-based version,
// and /api/info against a trivial net/http JSON handler, in the same run.
//
// As root, it re-runs itself inside private network and pid namespaces
// (unshare), so the nginx topologies run with their shipped configurations
// on the ports they name (80, 8080-8085) without colliding with anything, and
// every process it started dies with the namespace.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "lbbench: %v\n", err)
		os.Exit(1)
	}
}
