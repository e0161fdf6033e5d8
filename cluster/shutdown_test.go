package cluster

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"
)

// With a ShutdownDelay, the master's stop tells every worker first
// ("stopping": its readiness turns to not ready) and sends SIGTERM only
// once the delay is over; the stop timeout counts from the SIGTERM.
func TestShutdownDelayTellsWorkersThenTerminates(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, ShutdownDelay: 3 * time.Second, StopTimeout: 10 * time.Second})
	ps := h.startAll()
	h.stop()
	for _, p := range ps {
		if got := p.told(); !slices.ContainsFunc(got, lineSaysStopping) {
			t.Errorf("worker %d was told %q at the stop, want %q", p.pid, got, lineStopping)
		}
		if got := p.signals(); len(got) != 0 {
			t.Errorf("worker %d got %v at the start of a delayed stop, want none yet", p.pid, got)
		}
	}
	h.advance(3*time.Second - time.Millisecond)
	for _, p := range ps {
		if got := p.signals(); len(got) != 0 {
			t.Errorf("worker %d got %v within the shutdown delay, want none", p.pid, got)
		}
	}
	h.advance(time.Millisecond)
	for _, p := range ps {
		if got := p.signals(); !slices.Equal(got, []os.Signal{sigterm}) {
			t.Errorf("worker %d got %v once the delay was over, want SIGTERM", p.pid, got)
		}
	}
	h.advance(10*time.Second - time.Millisecond) // the stop timeout starts at the SIGTERM
	for _, p := range ps {
		if has(p.signals(), sigkill) {
			t.Errorf("worker %d was killed within its stop timeout", p.pid)
		}
		h.exit(p, nil)
	}
	if err := h.result(); err != nil {
		t.Errorf("Run after a delayed clean stop = %v, want nil", err)
	}
	h.noSpawn("after a delayed stop")
}

// Without a delay, the workers are told and get SIGTERM at once.
func TestStopWithoutDelayTellsAndTerminatesAtOnce(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	ps := h.startAll()
	h.stop()
	for _, p := range ps {
		if !slices.ContainsFunc(p.told(), lineSaysStopping) || !slices.Equal(p.signals(), []os.Signal{sigterm}) {
			t.Errorf("worker %d: told %q, signals %v; want %q and SIGTERM", p.pid, p.told(), p.signals(), lineStopping)
		}
	}
}

// A worker that dies within the delay is not replaced; a second stop
// signal within it kills every worker at once.
func TestShutdownDelayCrashAndForce(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, ShutdownDelay: time.Hour, StopTimeout: time.Hour})
	ps := h.startAll()
	h.stop()
	h.exit(ps[0], errors.New("signal: segmentation fault"))
	h.noSpawn("a crash within the shutdown delay")
	close(h.force)
	h.sync()
	h.sync() // force and events are separate channels: one more round
	if !has(ps[1].signals(), sigkill) {
		t.Fatalf("worker within the delay got %v after force, want SIGKILL", ps[1].signals())
	}
	h.exit(ps[1], errors.New("signal: killed"))
	if err := h.result(); !errors.Is(err, ErrForced) {
		t.Errorf("Run = %v, want ErrForced", err)
	}
}

// A rolling reload replaces workers without telling anyone the cluster
// stops, and without waiting for the shutdown delay: the cluster stays ready.
func TestReloadDoesNotTellStopping(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, ShutdownDelay: time.Hour})
	ps := h.startAll()
	h.l.send(evReload{})
	h.waitEvent(EventReloadStarted)
	var now []*fakeProc
	for _, p := range ps {
		now = append(now, h.replaceOne(p))
	}
	h.waitEvent(EventReloaded)
	for _, p := range append(ps, now...) {
		if slices.ContainsFunc(p.told(), lineSaysStopping) {
			t.Errorf("worker %d was told %q in a reload", p.pid, lineStopping)
		}
	}
}

// In-process (no worker processes), the stop closes Stopping at once and
// ends fn's ctx only after the delay; force ends it at once.
func TestInProcessShutdownDelay(t *testing.T) {
	for _, forced := range []bool{false, true} {
		w := &Worker{id: 1}
		parent, stop := context.WithCancel(context.Background())
		force := make(chan struct{})
		delay := time.Hour
		if !forced {
			delay = 50 * time.Millisecond
		}
		ctx, cancel := w.delayStop(parent, delay, force)
		select {
		case <-w.Stopping():
			t.Fatal("Stopping closed before the stop")
		default:
		}
		stop()
		<-w.Stopping()
		if ctx.Err() != nil && forced {
			t.Fatal("fn's ctx ended with the stop signal, want it to last the delay")
		}
		if forced {
			close(force)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("forced=%v: fn's ctx did not end", forced)
		}
		cancel()
	}
}
