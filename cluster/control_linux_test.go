package cluster

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// Reload, from another process's point of view: it reaches the master on
// its control socket (this test process's pid), returns only once the
// reload has ended, and says when it was aborted.
func TestReloadCommandWaitsForTheEnd(t *testing.T) {
	h := newHarness(t, Config{Workers: 1})
	stop, err := h.l.serveControl()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop) // every command below is answered before the test ends
	ps := h.startAll()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reload := func() chan error {
		done := make(chan error, 1)
		go func() { done <- Reload(ctx, os.Getpid()) }()
		return done
	}

	done := reload()
	n := h.spawned()
	select {
	case err := <-done:
		t.Fatalf("Reload returned %v before the new worker was ready", err)
	default:
	}
	h.ready(n)
	h.exit(ps[0], nil)
	if err := <-done; err != nil {
		t.Errorf("Reload of a reload that finished = %v, want nil", err)
	}

	done = reload()
	h.exit(h.spawned(), errors.New("exit status 3"))
	err = <-done
	if !errors.Is(err, ErrReloadAborted) || !strings.Contains(err.Error(), "new worker exited before it was ready") {
		t.Errorf("Reload of an aborted reload = %v, want ErrReloadAborted saying why", err)
	}
	t.Logf("aborted: %v", err)

	if err := Reload(ctx, 1<<22+7); err == nil || !strings.Contains(err.Error(), "no cluster master with pid") {
		t.Errorf("Reload of a pid with no master = %v, want 'no cluster master'", err)
	}
}
