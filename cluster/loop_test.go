package cluster

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every slot gets a worker, with its slot in the environment; "serving" is
// reported once every slot has a ready worker, and only once.
func TestStartsEverySlot(t *testing.T) {
	h := newHarness(t, Config{Workers: 3, EnvPrefix: "T_"})
	ps := h.startAll()
	for i, p := range ps {
		if p.slot != i+1 || !slices.Contains(p.spec.Env, "T_WORKER_ID="+string(rune('1'+i))) {
			t.Errorf("worker %d: slot %d, env %v; want slot %d with T_WORKER_ID", i, p.slot, p.spec.Env, i+1)
		}
	}
	if st := h.l.snap.Load().stats; st.Starts != 3 || st.Live != 3 {
		t.Errorf("stats = %+v, want 3 starts, 3 live", st)
	}
	h.exit(ps[0], errors.New("signal: killed"))
	h.ready(h.spawned())
	if n := strings.Count(strings.Join(kinds(h.drainEvents()), " "), "serving"); n != 0 {
		t.Errorf("serving reported again after a restart")
	}
}

func kinds(ks []EventKind) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.String())
	}
	return out
}

// A normal stop: SIGTERM to every worker, no SIGKILL while they are within
// the stop timeout, Run returns nil, and no exit is logged as a replacement.
func TestStopIsCleanWithinTheDrainTime(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, StopTimeout: 10 * time.Second})
	ps := h.startAll()
	h.stop()
	for _, p := range ps {
		if got := p.signals(); !slices.Equal(got, []os.Signal{sigterm}) {
			t.Errorf("worker %d got %v at stop, want SIGTERM only", p.pid, got)
		}
	}
	h.advance(10*time.Second - time.Millisecond)
	for _, p := range ps {
		h.exit(p, nil)
	}
	if err := h.result(); err != nil {
		t.Errorf("Run after a clean stop = %v, want nil", err)
	}
	for _, p := range ps {
		if has(p.signals(), sigkill) {
			t.Errorf("worker %d was killed within its drain time", p.pid)
		}
	}
	if n := h.logCount("reason=replaced"); n != 0 {
		t.Errorf("a normal stop logged %d exits as replaced", n)
	}
	if n := h.logCount("reason=stopped"); n != 2 {
		t.Errorf("logged %d exits with reason=stopped, want 2", n)
	}
	h.noSpawn("after a stop")
}

// A worker still running past the stop timeout is killed, and Run reports
// it (the process exits 1).
func TestStopPastTheStopTimeoutKills(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, StopTimeout: 10 * time.Second})
	ps := h.startAll()
	h.stop()
	h.exit(ps[0], nil)
	h.advance(10 * time.Second)
	if !has(ps[1].signals(), sigkill) {
		t.Fatalf("worker past the stop timeout got %v, want SIGKILL", ps[1].signals())
	}
	if has(ps[0].signals(), sigkill) {
		t.Error("the worker that had exited was killed")
	}
	h.exit(ps[1], errors.New("signal: killed"))
	if err := h.result(); !errors.Is(err, ErrStopTimeout) {
		t.Errorf("Run = %v, want ErrStopTimeout", err)
	}
}

// A second stop signal (Force) kills every worker at once.
func TestForceKillsAtOnce(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, StopTimeout: time.Hour})
	ps := h.startAll()
	h.stop()
	close(h.force)
	h.sync()
	h.sync() // force and events are separate channels: one more round
	for _, p := range ps {
		if !has(p.signals(), sigkill) {
			t.Errorf("worker %d got %v after force, want SIGKILL", p.pid, p.signals())
		}
	}
	for _, p := range ps {
		h.exit(p, errors.New("signal: killed"))
	}
	if err := h.result(); !errors.Is(err, ErrForced) {
		t.Errorf("Run = %v, want ErrForced", err)
	}
}

// A crash looping slot is restarted after 0, 100ms, 200ms, ... capped
// delays, each after exactly its delay; once the crashes leave the window,
// the next restart is immediate again. Restarts are counted.
func TestCrashBackoff(t *testing.T) {
	h := newHarness(t, Config{Workers: 1, MaxBackoff: time.Second, CrashWindow: time.Minute})
	p := h.spawned()
	h.ready(p)
	want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second}
	for i, d := range want {
		h.exit(p, errors.New("exit status 1"))
		if d > 0 {
			h.advance(d - time.Millisecond)
			h.noSpawn("before the restart delay " + d.String())
			h.advance(time.Millisecond)
		}
		p = h.spawned()
		if got := h.l.snap.Load().stats.Restarts; got != int64(i+1) {
			t.Fatalf("restarts = %d, want %d", got, i+1)
		}
	}
	h.advance(time.Minute) // the window empties
	h.exit(p, errors.New("exit status 1"))
	h.spawned() // at once
}

// A worker that cannot be started counts as a crash and is retried.
func TestStartFailureIsRetried(t *testing.T) {
	h := newHarness(t, Config{Workers: 1})
	p := h.spawned()
	h.ready(p)
	h.failNext = true
	h.exit(p, errors.New("exit status 2")) // restart at once: fails; next after 100ms
	h.noSpawn("after a failed start")
	h.advance(100 * time.Millisecond)
	h.spawned()
	if !strings.Contains(h.logs.String(), `msg="start worker"`) {
		t.Error("the failed start was not logged")
	}
}

// A context already done when the master starts: no worker is started and
// run returns nil at once, as for a stop asked a moment later.
func TestDoneContextStartsNothing(t *testing.T) {
	started := 0
	s := sys{
		start: func(spawnSpec, func(), func(error, string)) (process, error) {
			started++
			return nil, errors.New("exec: no such file")
		},
		now:       time.Now,
		afterFunc: func(time.Duration, func()) func() bool { return func() bool { return true } },
		wait:      func() {},
	}
	cfg := Config{Workers: 2, Exe: "worker", Args: []string{}, Env: []string{}}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	l := newLoop(cfg, s, []*os.File{os.Stdin, os.Stdin}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- l.run(ctx, nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run with a done context = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run with a done context did not return")
	}
	if started != 0 {
		t.Errorf("run with a done context started %d workers, want 0", started)
	}
}

// When the stop begins, the master closes its copies of the sockets it
// bound, at once: a new connection is refused instead of waiting until the
// drain ends.
func TestStopClosesTheSocketsItBound(t *testing.T) {
	h := newHarnessWith(t, Config{Workers: 2, StopTimeout: time.Hour}, func(l *loop) { l.ownSockets = true })
	h.startAll()
	if closed := closedFiles(h.l.sockets); closed != 0 {
		t.Fatalf("%d sockets closed before the stop", closed)
	}
	h.stop()
	if closed, n := closedFiles(h.l.sockets), len(h.l.sockets); closed != n || n < 2 {
		t.Errorf("%d of %d sockets closed once the stop began, want all (every slot's, spare ones too)", closed, n)
	}
}

// Sockets given to the master (Config.Files, systemd's socket activation)
// stay open during the stop: their queue is their owner's, and waits for
// the next master.
func TestStopKeepsGivenSockets(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, StopTimeout: time.Hour})
	h.startAll()
	h.stop()
	if closed := closedFiles(h.l.sockets); closed != 0 {
		t.Errorf("%d given sockets closed at the stop, want 0", closed)
	}
}

func closedFiles(fs []*os.File) int {
	n := 0
	for _, f := range fs {
		if _, err := f.Stat(); errors.Is(err, os.ErrClosed) {
			n++
		}
	}
	return n
}

// Force closed without a stop (a caller's own second signal, seen first):
// it stops the master too, every worker killed and none restarted.
func TestForceAloneStops(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, StopTimeout: time.Hour})
	ps := h.startAll()
	close(h.force)
	for _, p := range ps {
		for !has(p.signals(), sigkill) {
			h.sync()
		}
	}
	for _, p := range ps {
		h.exit(p, errors.New("signal: killed"))
	}
	h.noSpawn("after a forced stop")
	if err := h.result(); !errors.Is(err, ErrForced) {
		t.Errorf("Run = %v, want ErrForced", err)
	}
}
