package cluster_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lbserver/lbserver/cluster"
)

// A readiness endpoint for health-checking balancers (HAProxy's httpchk,
// a Kubernetes readinessProbe, a Consul check): it answers 503 from the
// start of the master's stop, while the workers serve on for ShutdownDelay
// before they drain. A rolling reload leaves it at 200.
func ExampleWorker_Stopping() {
	cfg := cluster.Config{Addr: ":8080", ShutdownDelay: 3 * time.Second}
	_ = cluster.Run(context.Background(), cfg, func(ctx context.Context, w *cluster.Worker) error {
		var stopping atomic.Bool
		served := make(chan struct{})
		go func() { // stopped by served, once Serve has returned
			select {
			case <-w.Stopping():
				stopping.Store(true)
			case <-served:
			}
		}()
		mux := http.NewServeMux()
		mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
			if stopping.Load() {
				http.Error(rw, "stopping", http.StatusServiceUnavailable)
				return
			}
			_, _ = rw.Write([]byte("ready\n"))
		})
		err := w.Serve(ctx, &http.Server{Handler: mux})
		close(served)
		return err
	})
}
