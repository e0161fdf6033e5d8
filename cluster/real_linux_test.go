package cluster_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbserver/lbserver/cluster"
)

// workerModes are the worker functions the real-process tests pick with
// EXAMPLE_MODE ("" is hello).
var workerModes = map[string]func(context.Context, *cluster.Worker) error{
	"":     hello,
	"echo": echo, // ExampleWorker_Listeners
	// lingers: serves, and once drained stays 3s more before it exits.
	"lingers": func(ctx context.Context, w *cluster.Worker) error {
		err := hello(ctx, w)
		time.Sleep(3 * time.Second)
		return err
	},
	// broken: fails at start, as a broken deploy does.
	"broken": func(context.Context, *cluster.Worker) error {
		return errors.New("open config: no such file or directory")
	},
}

// realMaster starts a master of real workers (this test binary) in mode,
// and returns it once cfg.OnMaster ran, with its events and Run's result.
func realMaster(t *testing.T, mode string, edit func(*cluster.Config)) (*cluster.Master, <-chan cluster.Event, <-chan error, context.CancelFunc) {
	t.Helper()
	events := make(chan cluster.Event, 100)
	ms := make(chan *cluster.Master, 1)
	cfg := exampleConfig(nil)
	cfg.Env = append(os.Environ(), "EXAMPLE_MODE="+mode)
	cfg.OnMaster = func(m *cluster.Master) (func(), error) { ms <- m; return nil, nil }
	cfg.OnEvent = func(e cluster.Event) { events <- e }
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- cluster.Run(ctx, cfg, hello)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Error("the master did not stop")
		}
	})
	select {
	case m := <-ms:
		return m, events, done, cancel
	case err := <-done:
		t.Fatalf("Run = %v before its Master hook", err)
	}
	return nil, nil, nil, nil
}

// Once the stop begins, a new connection is refused at once, while the
// workers still drain (here they linger 3s after their drain).
func TestRealStopRefusesNewConnections(t *testing.T) {
	m, events, done, cancel := realMaster(t, "lingers", nil)
	waitEvent(t, events, cluster.EventServing, 0)
	addr := m.Addr().String()
	cancel()
	waitEvent(t, events, cluster.EventStopping, 0)
	deadline := time.Now().Add(2 * time.Second) // well within the workers' 3s linger
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if err == nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s during the stop: %v, still not refused after 2s", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the port's state
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) before the workers exited: the test proves nothing", err)
	default:
	}
}

// A worker that fails at start: its last words reach the master's event,
// and after MaxFailedStarts Run gives up with an error that says why.
func TestRealBrokenDeployGivesUp(t *testing.T) {
	_, events, done, _ := realMaster(t, "broken", func(c *cluster.Config) { c.MaxFailedStarts = 2; c.Workers = 1 })
	e := waitEvent(t, events, cluster.EventExited, 0)
	if e.Reason != cluster.ExitCrashed || e.LastWords != "open config: no such file or directory" {
		t.Errorf("exit event: reason %v, last words %q; want crashed with the worker's error", e.Reason, e.LastWords)
	}
	select {
	case err := <-done:
		if !errors.Is(err, cluster.ErrNeverReady) || !strings.Contains(err.Error(), "open config") {
			t.Errorf("Run = %v, want ErrNeverReady with the worker's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not give up")
	}
}

// An operator's SIGTERM to a worker: it drains, says it was stopped, and
// the master restarts it at once without counting a crash.
func TestRealOutsideSIGTERMIsNoCrash(t *testing.T) {
	m, events, _, _ := realMaster(t, "", nil)
	waitEvent(t, events, cluster.EventServing, 0)
	victim := m.Workers()[0]
	if err := syscall.Kill(victim.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, events, cluster.EventExited, 0)
	if e.Pid != victim.Pid || e.Reason != cluster.ExitSignaled {
		t.Errorf("exit event %+v, want pid %d stopped by signal", e, victim.Pid)
	}
	waitEvent(t, events, cluster.EventReady, 0)
	if st := m.Stats(); st.Restarts != 1 {
		t.Errorf("restarts %d, want 1", st.Restarts)
	}
}
