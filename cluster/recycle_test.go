package cluster

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// RestartWorker replaces that slot's worker only, the way a reload does:
// the new one is ready before the old one is told to stop. Two requests
// run one after the other.
func TestRestartWorkerOneSlotAtATime(t *testing.T) {
	h := newHarness(t, Config{Workers: 3})
	m := &Master{l: h.l}
	ps := h.startAll()
	if err := m.RestartWorker(2); err != nil {
		t.Fatal(err)
	}
	if err := m.RestartWorker(3); err != nil {
		t.Fatal(err)
	}
	n2 := h.replaceOne(ps[1])
	e := h.waitEvent(EventExited)
	if e.Pid != ps[1].pid || e.Reason != ExitReplaced {
		t.Errorf("exit %+v, want worker %d replaced", e, ps[1].pid)
	}
	n3 := h.replaceOne(ps[2])
	h.noSpawn("after both restarts")
	if len(ps[0].signals()) != 0 {
		t.Errorf("worker 1 signalled %v, want untouched", ps[0].signals())
	}
	for _, w := range h.l.snap.Load().workers {
		if w.Slot > 1 && w.Pid != n2.pid && w.Pid != n3.pid {
			t.Errorf("slot %d still has worker %d", w.Slot, w.Pid)
		}
	}
	if err := m.RestartWorker(4); !errors.Is(err, ErrNoWorker) {
		t.Errorf("RestartWorker(4) of 3 = %v, want ErrNoWorker", err)
	}
}

// A reload asked for while one worker is being replaced runs after it,
// not beside it (two new workers for one slot).
func TestReloadWaitsForAReplacement(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	m := &Master{l: h.l}
	ps := h.startAll()
	_ = m.RestartWorker(1)
	n := h.spawned()
	h.l.send(evReload{})
	h.sync() // the reload channel is unbuffered: the loop has taken it
	h.noSpawn("reload during a replacement")
	h.ready(n)
	h.exit(ps[0], nil)
	h.waitEvent(EventReloadStarted)
	if p := h.spawned(); p.slot != 1 {
		t.Errorf("reload started with slot %d, want 1", p.slot)
	}
}

// A replacement whose new worker is not ready within ReadyTimeout is given
// up: the old worker serves on.
func TestReplacementNotReadyIsGivenUp(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, ReadyTimeout: 5 * time.Second})
	m := &Master{l: h.l}
	ps := h.startAll()
	_ = m.RestartWorker(1)
	n := h.spawned()
	h.advance(5 * time.Second)
	if !has(n.signals(), sigterm) || len(ps[0].signals()) != 0 {
		t.Errorf("new worker got %v, old %v; want SIGTERM to the new one only", n.signals(), ps[0].signals())
	}
	h.exit(n, nil)
	_ = m.RestartWorker(2)
	if p := h.spawned(); p.slot != 2 {
		t.Errorf("next replacement is of slot %d, want 2", p.slot)
	}
}

// A worker whose memory is above MaxMemory is recycled (reason
// "recycled"); the others are not.
func TestMaxMemoryRecycles(t *testing.T) {
	var mu sync.Mutex // guards rss
	rss := map[int]int64{}
	h := newHarnessWith(t, Config{Workers: 2, MaxMemory: 100 << 20}, func(l *loop) {
		l.sys.rss = func(pid int) (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			return rss[pid], nil
		}
	})
	ps := h.startAll()
	mu.Lock()
	rss[ps[0].pid], rss[ps[1].pid] = 50<<20, 100<<20
	mu.Unlock()
	h.advance(recycleEvery)
	h.noSpawn("every worker at or under the limit")
	mu.Lock()
	rss[ps[1].pid] = 101 << 20
	mu.Unlock()
	h.advance(recycleEvery)
	h.replaceOne(ps[1])
	if e := h.waitEvent(EventExited); e.Reason != ExitRecycled {
		t.Errorf("exit reason %q, want recycled", e.Reason)
	}
	h.advance(3 * recycleEvery)
	h.noSpawn("the new worker is small")
}

// After MaxRequests (+ its jitter) requests counted in the table, a worker
// is recycled, one at a time; its limit lies within the jitter.
func TestMaxRequestsRecycles(t *testing.T) {
	h := newHarnessWith(t, Config{Workers: 2, MaxRequests: 1000, MaxRequestsJitter: 50}, func(l *loop) {
		tb, err := createTable(8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tb.close() })
		l.table, l.entries = tb, make([]bool, 8)
	})
	ps := h.startAll()
	h.advance(recycleEvery)
	var limits []int64
	h.inspect(func(l *loop) {
		for _, c := range l.sorted() {
			limits = append(limits, c.limit)
		}
	})
	for _, n := range limits {
		if n < 1000 || n > 1050 {
			t.Fatalf("request limits %v, want 1000 to 1050", limits)
		}
	}
	var entry int
	h.inspect(func(l *loop) {
		for c := range l.children {
			if c.pid == ps[0].pid {
				entry = c.entry
			}
		}
	})
	h.l.table.word(1+entry, wordReqs).Store(limits[0] - 1)
	h.advance(recycleEvery)
	h.noSpawn("one request short of the limit")
	m, _ := h.l.table.member(entry)
	m.served()
	h.advance(recycleEvery)
	n := h.replaceOne(ps[0])
	if e := h.waitEvent(EventExited); e.Reason != ExitRecycled || e.Pid != ps[0].pid {
		t.Errorf("exit %+v, want worker %d recycled", e, ps[0].pid)
	}
	var fresh int64 = -1
	h.inspect(func(l *loop) {
		for c := range l.children {
			if c.pid == n.pid {
				fresh = l.table.requests(c.entry)
			}
		}
	})
	if fresh != 0 {
		t.Errorf("new worker's count starts at %d, want 0", fresh)
	}
}
