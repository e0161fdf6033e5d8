package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/lbserver/lbserver/cluster"
)

// TestMain lets the test binary be the example's workers: the master starts
// this same binary again, with the same arguments, and the worker variable
// set.
func TestMain(m *testing.M) {
	if os.Getenv("EXAMPLE_WORKER_ID") != "" {
		ctx, force, stop := cluster.Signals(context.Background())
		err := cluster.Run(ctx, exampleConfig(force), hello)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func exampleConfig(force <-chan struct{}) cluster.Config {
	return cluster.Config{Addr: "127.0.0.1:0", Workers: 2, Force: force, EnvPrefix: "EXAMPLE_", Stdout: io.Discard}
}

// hello is what every worker runs.
func hello(ctx context.Context, w *cluster.Worker) error {
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello from worker %d\n", w.ID())
	})
	return w.Serve(ctx, &http.Server{Handler: h})
}

// Run is the master in the process that calls it, and the worker in each
// process the master starts. Here the master asks once its workers are all
// ready, then stops them.
func Example() {
	ctx, force, stop := cluster.Signals(context.Background())
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := exampleConfig(force)
	var addr string
	cfg.Master = func(m *cluster.Master) (func(), error) {
		addr = m.Addr().String()
		return nil, nil
	}
	var asking sync.WaitGroup
	cfg.OnEvent = func(e cluster.Event) {
		if e.Kind == cluster.EventServing { // every worker is ready
			asking.Go(func() {
				defer cancel()
				resp, err := http.Get("http://" + addr + "/")
				if err != nil {
					fmt.Println(err)
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				fmt.Println(resp.Status, strings.HasPrefix(string(body), "hello from worker"))
			})
		}
	}
	err := cluster.Run(ctx, cfg, hello)
	asking.Wait()
	fmt.Println("stopped:", err)
	// Output:
	// 200 OK true
	// stopped: <nil>
}

func ExampleEventKind_String() {
	fmt.Println(cluster.EventReady, cluster.EventReloadFailed)
	// Output: ready reload-failed
}
