package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbserver/lbserver/cluster"
)

// TestMain lets the test binary be the example's workers: the master starts
// this same binary again, with the same arguments, and the worker variable
// set.
func TestMain(m *testing.M) {
	if prog := os.Getenv(programEnv); prog != "" {
		os.Exit(runProgram(prog))
	}
	if os.Getenv("EXAMPLE_WORKER_ID") != "" {
		ctx, force, stop := cluster.Signals(context.Background())
		err := cluster.Run(ctx, exampleConfig(force), workerModes[os.Getenv("EXAMPLE_MODE")])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("EXMSG_WORKER_ID") != "" { // the workers of ExampleMaster_Broadcast
		ctx, force, stop := cluster.Signals(context.Background())
		err := cluster.Run(ctx, messagesConfig(force), flusher)
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

// hello is what every worker runs: it says which worker answered, on
// which address.
func hello(ctx context.Context, w *cluster.Worker) error {
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello from worker %d on %s\n", w.ID(), r.Context().Value(http.LocalAddrContextKey))
	})
	return w.Serve(ctx, &http.Server{Handler: h})
}

// Run is the master in the process that calls it, and the worker in each
// process the master starts. Here the master asks, once its workers are all
// ready, until both workers have answered (a new connection each time, so
// the kernel picks a worker each time), then stops them. Address port 0
// takes one free port for all the workers.
func Example() {
	ctx, force, stop := cluster.Signals(context.Background())
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := exampleConfig(force)
	var addr string
	cfg.OnMaster = func(m *cluster.Master) (func(), error) {
		addr = m.Addr().String() // the one port every worker listens on
		return nil, nil
	}
	var asking sync.WaitGroup
	cfg.OnEvent = func(e cluster.Event) {
		if e.Kind == cluster.EventServing { // every worker is ready
			asking.Go(func() {
				defer cancel()
				client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
				answers := map[string]bool{}
				for range 200 { // bounded: each try is a coin toss between 2 workers
					resp, err := client.Get("http://" + addr + "/")
					if err != nil {
						fmt.Println(err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					answers[strings.TrimSpace(string(body))] = true
					if len(answers) == 2 {
						break
					}
				}
				fmt.Println(answers["hello from worker 1 on "+addr], answers["hello from worker 2 on "+addr])
			})
		}
	}
	err := cluster.Run(ctx, cfg, hello)
	asking.Wait()
	fmt.Println("stopped:", err)
	// Output:
	// true true
	// stopped: <nil>
}

func ExampleEventKind_String() {
	fmt.Println(cluster.EventReady, cluster.EventReloadFailed)
	// Output: ready reload-failed
}

// Real worker processes (this test binary, run again): a killed worker is
// replaced while the other adopts its slot, a reload replaces both, and a
// stop ends them all cleanly.
func TestRealWorkers(t *testing.T) {
	events := make(chan cluster.Event, 100)
	ms := make(chan *cluster.Master, 1)
	cfg := exampleConfig(nil)
	cfg.OnMaster = func(m *cluster.Master) (func(), error) { ms <- m; return nil, nil }
	cfg.OnEvent = func(e cluster.Event) { events <- e }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cluster.Run(ctx, cfg, hello) }()
	m := <-ms
	wait := func(k cluster.EventKind) cluster.Event {
		t.Helper()
		for {
			select {
			case e := <-events:
				if e.Kind == k {
					return e
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no %s event", k)
			}
		}
	}
	wait(cluster.EventServing)
	victim := m.Workers()[0]
	if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := wait(cluster.EventExited); e.Pid != victim.Pid || e.Err == nil {
		t.Errorf("exit event %+v, want pid %d with an error", e, victim.Pid)
	}
	wait(cluster.EventAdopted)
	wait(cluster.EventReleased) // the replacement is ready
	if ws := m.Workers(); len(ws) != 2 || ws[0].Pid == victim.Pid || !ws[0].Ready {
		t.Errorf("workers after the kill: %+v", ws)
	}
	before := m.Workers()
	m.Reload()
	wait(cluster.EventReloaded)
	for i, w := range m.Workers() {
		if w.Pid == before[i].Pid {
			t.Errorf("worker %d survived the reload", w.Pid)
		}
	}
	if st := m.Stats(); st.Restarts != 1 || st.Reloads != 1 || st.Live != 2 {
		t.Errorf("stats %+v, want 1 restart, 1 reload, 2 live", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after a stop = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the master did not stop")
	}
}
