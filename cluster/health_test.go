package cluster

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeChecks answers the master's health checks as the test says: a
// worker whose pid is stuck never answers (its check ends when the master
// gives it up); the others answer at once.
type fakeChecks struct {
	mu    sync.Mutex // guards stuck, calls
	stuck map[int]bool
	calls map[int]int
}

func (f *fakeChecks) check(ctx context.Context, w WorkerInfo) error {
	f.mu.Lock()
	f.calls[w.Pid]++
	stuck := f.stuck[w.Pid]
	f.mu.Unlock()
	if stuck {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fakeChecks) set(pid int, stuck bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stuck[pid] = stuck
}

func newChecks() *fakeChecks { return &fakeChecks{stuck: map[int]bool{}, calls: map[int]int{}} }

// tick advances the clock by one health interval and waits until every
// check that answers has been handled by the loop.
func (h *harness) tick(d time.Duration, f *fakeChecks) {
	h.t.Helper()
	h.advance(d)
	deadline := time.Now().Add(5 * time.Second)
	for {
		settled := true
		h.inspect(func(l *loop) {
			for c := range l.children {
				f.mu.Lock()
				stuck := f.stuck[c.pid]
				f.mu.Unlock()
				if c.health.seq != 0 && !stuck {
					settled = false
				}
			}
		})
		if settled {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("health checks did not settle")
		}
		time.Sleep(time.Millisecond)
	}
}

// A worker that stops answering is killed at its HealthMisses-th miss in a
// row, not before: its slot is adopted by another worker at once, a new
// worker starts for it, and its exit says "unresponsive".
func TestUnresponsiveWorkerIsKilledAndReplaced(t *testing.T) {
	f := newChecks()
	h := newHarness(t, Config{Workers: 2, HealthInterval: time.Second, HealthMisses: 3, HealthCheck: f.check})
	ps := h.startAll()
	h.tick(time.Second, f) // every worker answers
	f.set(ps[1].pid, true)
	h.tick(time.Second, f) // the check started now never answers
	for i := 1; i <= 2; i++ {
		h.tick(time.Second, f)
		if got := ps[1].signals(); len(got) != 0 {
			t.Fatalf("worker signalled %v after %d misses, want nothing before 3", got, i)
		}
	}
	h.noSpawn("before the third miss")
	h.tick(time.Second, f) // the third miss
	if got := ps[1].signals(); !slices.Equal(got, []os.Signal{sigkill}) {
		t.Fatalf("unresponsive worker got %v, want SIGKILL only", got)
	}
	if !slices.Contains(ps[0].deltas(), "adopt 2") {
		t.Errorf("worker 1 was told %v, want adopt 2 at once", ps[0].deltas())
	}
	n := h.spawned()
	if n.slot != 2 {
		t.Fatalf("new worker for slot %d, want 2", n.slot)
	}
	h.exit(ps[1], errors.New("signal: killed"))
	e := h.waitEvent(EventExited)
	if e.Pid != ps[1].pid || e.Reason != ExitUnresponsive {
		t.Errorf("exit event %+v, want pid %d with reason unresponsive", e, ps[1].pid)
	}
	h.ready(n)
	if !slices.Contains(ps[0].deltas(), "release 2") {
		t.Errorf("worker 1 was told %v, want release 2 once the new worker is ready", ps[0].deltas())
	}
	// The new worker is checked too, and nothing else is killed.
	before := f.calls[n.pid]
	for range 5 {
		h.tick(time.Second, f)
	}
	if has(ps[0].signals(), sigkill) || has(n.signals(), sigkill) {
		t.Errorf("healthy workers killed: %v, %v", ps[0].signals(), n.signals())
	}
	f.mu.Lock()
	after := f.calls[n.pid]
	f.mu.Unlock()
	if after-before != 5 {
		t.Errorf("new worker checked %d times in 5 intervals, want 5", after-before)
	}
}

// Misses count in a row only: a worker that misses some checks and then
// answers (busy for a while) is never killed.
func TestMissesCountInARow(t *testing.T) {
	f := newChecks()
	h := newHarness(t, Config{Workers: 2, HealthInterval: time.Second, HealthMisses: 3, HealthCheck: f.check})
	ps := h.startAll()
	for range 4 {
		f.set(ps[0].pid, true)
		h.tick(time.Second, f) // a check that will not answer
		h.tick(time.Second, f) // miss 1, and another
		f.set(ps[0].pid, false)
		h.tick(time.Second, f) // miss 2; the next check answers
		h.tick(time.Second, f)
	}
	if got := ps[0].signals(); len(got) != 0 {
		t.Errorf("a worker that answers every third check got %v, want nothing", got)
	}
	h.noSpawn("no worker is unresponsive")
}

// Workers being stopped or replaced are not checked, and the master's stop
// ends the checks in flight.
func TestNoChecksForStoppedWorkers(t *testing.T) {
	f := newChecks()
	h := newHarness(t, Config{Workers: 2, HealthInterval: time.Second, HealthMisses: 1, HealthCheck: f.check})
	ps := h.startAll()
	f.set(ps[0].pid, true)
	f.set(ps[1].pid, true)
	h.tick(time.Second, f)
	h.stop()
	h.advance(5 * time.Second)
	for _, p := range ps {
		if has(p.signals(), sigkill) {
			t.Errorf("worker %d killed as unresponsive while stopping: %v", p.pid, p.signals())
		}
	}
}

// The default check, "OPTIONS *" on a private socket, counts any HTTP
// answer, and needs a private socket.
func TestHealthNeedsPrivateOrCheck(t *testing.T) {
	cfg := Config{Workers: 2, HealthInterval: time.Second, Exe: "x", Args: []string{}, Env: []string{}}
	if err := cfg.setDefaults(); err == nil {
		t.Errorf("HealthInterval without PrivateSockets nor HealthCheck: no error")
	}
	if err := checkPrivate(context.Background(), WorkerInfo{}); !errors.Is(err, errNoPrivate) {
		t.Errorf("checkPrivate without a socket = %v, want errNoPrivate", err)
	}
}
