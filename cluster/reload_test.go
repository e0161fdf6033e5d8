package cluster

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"
)

// reloadReady runs one reload's steps for slot worker p: the new worker
// starts, becomes ready, the old one gets SIGTERM and exits. It returns the
// new worker.
func (h *harness) replaceOne(old *fakeProc) *fakeProc {
	h.t.Helper()
	n := h.spawned()
	if n.slot != old.slot {
		h.t.Fatalf("reload started slot %d, want %d", n.slot, old.slot)
	}
	if len(old.signals()) != 0 {
		h.t.Fatalf("old worker %d signalled %v before its replacement was ready", old.pid, old.signals())
	}
	h.ready(n)
	if !slices.Equal(old.signals(), []os.Signal{sigterm}) {
		h.t.Fatalf("old worker %d got %v once its replacement was ready, want SIGTERM", old.pid, old.signals())
	}
	h.noSpawn("before the old worker of the slot has exited")
	h.exit(old, nil)
	return n
}

// A rolling reload goes slot by slot: each new worker is ready before the
// old one is told to stop, and the next slot starts once the old one has
// exited.
func TestRollingReloadSlotBySlot(t *testing.T) {
	h := newHarness(t, Config{Workers: 3})
	ps := h.startAll()
	h.m.Reload()
	h.waitEvent(EventReloadStarted)
	var now []*fakeProc
	for _, p := range ps {
		now = append(now, h.replaceOne(p))
	}
	h.waitEvent(EventReloaded)
	if st := h.l.snap.Load().stats; st.Reloads != 1 || st.Live != 3 || st.Restarts != 0 {
		t.Errorf("stats after a reload = %+v, want 1 reload, 3 live, no restarts", st)
	}
	for i, w := range h.l.snap.Load().workers {
		if w.Pid != now[i].pid || !w.Current || !w.Ready {
			t.Errorf("worker %d after the reload = %+v, want pid %d current and ready", i, w, now[i].pid)
		}
	}
	if n := h.logCount("reason=replaced"); n != 3 {
		t.Errorf("%d exits logged reason=replaced, want 3", n)
	}
	h.noSpawn("after the reload")
}

// A new worker that exits before it is ready aborts the reload: the old
// worker is left alone, the next slots are untouched.
func TestReloadAbortedWhenTheNewWorkerExits(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	ps := h.startAll()
	h.l.send(evReload{})
	n := h.spawned()
	h.exit(n, errors.New("exit status 1"))
	h.waitEvent(EventReloadFailed)
	h.noSpawn("after an aborted reload")
	for _, p := range ps {
		if len(p.signals()) != 0 {
			t.Errorf("old worker %d got %v in an aborted reload", p.pid, p.signals())
		}
	}
	if st := h.l.snap.Load().stats; st.Reloads != 0 || st.Restarts != 0 || st.Live != 2 {
		t.Errorf("stats = %+v, want no reload, no restart, 2 live", st)
	}
	// The next reload starts from the first slot again.
	h.l.send(evReload{})
	h.replaceOne(ps[0])
}

// A new worker that is not ready within ReadyTimeout is stopped (then
// killed past StopTimeout) and the reload aborted; the old worker serves on.
func TestReloadAbortedWhenTheNewWorkerIsNeverReady(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, ReadyTimeout: 15 * time.Second, StopTimeout: 5 * time.Second})
	ps := h.startAll()
	h.l.send(evReload{})
	n := h.spawned()
	h.advance(15*time.Second - time.Millisecond)
	if len(n.signals()) != 0 {
		t.Fatal("the new worker was stopped before the ready timeout")
	}
	h.advance(time.Millisecond)
	if !slices.Equal(n.signals(), []os.Signal{sigterm}) {
		t.Fatalf("new worker past the ready timeout got %v, want SIGTERM", n.signals())
	}
	h.waitEvent(EventReloadFailed)
	h.advance(5 * time.Second)
	if !has(n.signals(), sigkill) {
		t.Errorf("new worker past the stop timeout got %v, want SIGKILL", n.signals())
	}
	h.exit(n, errors.New("signal: killed"))
	h.noSpawn("after an aborted reload")
	for _, p := range ps {
		if len(p.signals()) != 0 {
			t.Errorf("old worker %d got %v", p.pid, p.signals())
		}
	}
	if err := h.l.err; err != nil {
		t.Errorf("an aborted reload set the master's error: %v", err)
	}
}

// Reload requests during a reload make exactly one more reload after it.
func TestReloadRequestsDuringAReloadCoalesce(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	ps := h.startAll()
	h.m.Reload()
	n1 := h.spawned()
	for range 3 {
		h.m.Reload()
		h.l.send(evReload{})
	}
	h.ready(n1)
	h.exit(ps[0], nil)
	n2 := h.replaceOne(ps[1])
	h.waitEvent(EventReloaded)
	// The second reload, at once.
	h.waitEvent(EventReloadStarted)
	h.replaceOne(n1)
	h.replaceOne(n2)
	h.waitEvent(EventReloaded)
	h.noSpawn("after the follow-up reload")
	if got := h.l.snap.Load().stats.Reloads; got != 2 {
		t.Errorf("reloads = %d, want 2", got)
	}
}

// A stop during a reload stops every worker, the new one too, and starts no
// more.
func TestStopDuringAReload(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	ps := h.startAll()
	h.l.send(evReload{})
	n := h.spawned()
	h.stop()
	for _, p := range append(ps, n) {
		if !slices.Equal(p.signals(), []os.Signal{sigterm}) {
			t.Errorf("worker %d got %v at stop, want SIGTERM", p.pid, p.signals())
		}
	}
	h.ready(n) // too late to matter
	for _, p := range append(ps, n) {
		h.exit(p, nil)
	}
	if err := h.result(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	select {
	case p := <-h.started:
		t.Errorf("worker %d started during the stop", p.pid)
	default:
	}
}

// A slot waiting out its restart delay gets its new worker from a reload.
func TestReloadFillsASlotInBackoff(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	ps := h.startAll()
	h.exit(ps[0], errors.New("exit status 1"))
	r := h.spawned()
	h.exit(r, errors.New("exit status 1")) // slot 1 waits 100ms
	h.l.send(evReload{})
	n := h.spawned()
	h.ready(n)
	h.inspect(func(l *loop) {
		if l.slots[0].restart != nil {
			t.Error("slot 1 has its reload's worker and still a restart pending")
		}
	})
	h.replaceOne(ps[1])
	h.waitEvent(EventReloaded)
	h.advance(time.Second)
	h.noSpawn("the restart the reload made moot")
}
