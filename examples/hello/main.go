// Command hello is a small HTTP server run with package cluster: a master
// and --workers processes sharing --port, restarted when they die, replaced
// one by one on SIGHUP, drained on SIGTERM.
//
//	go run ./examples/hello --port 8090 --workers 4
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/lbserver/lbserver/cluster"
)

func main() {
	port := flag.Int("port", 8090, "TCP port to listen on")
	workers := flag.Int("workers", 0, "worker processes (default: one per CPU)")
	noSpread := flag.Bool("no-spread", false, "no connection table: keep-alive connections are recycled every 100 requests instead (cluster.Config.NoSpread)")
	flag.Parse()
	ctx, force, stop := cluster.Signals(context.Background())
	cfg := cluster.Config{Addr: fmt.Sprintf(":%d", *port), Workers: *workers, NoSpread: *noSpread, Force: force,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid())}
	err := cluster.Run(ctx, cfg, func(ctx context.Context, w *cluster.Worker) error {
		hello := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(rw, "hello from worker %d, pid %d\n", w.ID(), os.Getpid())
		})
		return w.Serve(ctx, &http.Server{Handler: hello})
	})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
