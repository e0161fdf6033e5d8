package supervisor

import (
	"bufio"
	"log/slog"
	"os"
	"testing"
	"time"
)

// fakeChild is a child whose lifeline the test reads.
type fakeChild struct {
	*child
	lines *bufio.Scanner
}

func newFakeChild(t *testing.T, s *slot, pid int) fakeChild {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	c := &child{slot: s, pid: pid, lifeline: w, isReady: true}
	return fakeChild{c, bufio.NewScanner(r)}
}

// next reads the next command written to the child's lifeline.
func (f fakeChild) next(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if f.lines.Scan() {
			got <- f.lines.Text()
		}
		close(got)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(2 * time.Second):
		t.Fatalf("worker %d (slot %d) got no command", f.pid, f.slot.id)
		return ""
	}
}

// nothing checks that no command is pending for the child (by writing a
// marker and reading it back first).
func (f fakeChild) nothing(t *testing.T) {
	t.Helper()
	if _, err := f.lifeline.Write([]byte("marker\n")); err != nil {
		t.Fatal(err)
	}
	if got := f.next(t); got != "marker" {
		t.Fatalf("worker %d (slot %d) got %q, want no command", f.pid, f.slot.id, got)
	}
}

func newFakeMaster(n int) *Master {
	m := &Master{log: slog.New(slog.DiscardHandler), sockets: make([]*os.File, n), children: map[*child]struct{}{}}
	for i := range n {
		m.slots = append(m.slots, &slot{id: i + 1, served: true})
	}
	return m
}

// A slot that loses its worker is adopted by the ready worker with the
// fewest adoptions; it is released when its own worker is ready again; an
// adopter that retires or dies hands the slot to another worker.
func TestRebalanceAdoptsAndReleases(t *testing.T) {
	m := newFakeMaster(3)
	w := make([]fakeChild, 3)
	for i, s := range m.slots {
		w[i] = newFakeChild(t, s, 100+i)
		s.cur = w[i].child
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rebalanceLocked()
	for _, c := range w {
		c.nothing(t) // all healthy: nothing to do
	}

	// Slot 1's worker dies: slot 2 (fewest adoptions, lowest slot) adopts it.
	w[0].gone = true
	m.slots[0].cur = nil
	m.rebalanceLocked()
	if got := w[1].next(t); got != "adopt 1" {
		t.Fatalf("slot 2's worker got %q, want adopt 1", got)
	}
	w[2].nothing(t)
	if st := m.slots[0].adopter; st != w[1].child {
		t.Fatalf("slot 1's adopter = %v, want slot 2's worker", st)
	}

	// Slot 3's worker dies too: slot 2 already adopts one, but it is the
	// only ready worker left.
	w[2].gone = true
	m.slots[2].cur = nil
	m.rebalanceLocked()
	if got := w[1].next(t); got != "adopt 3" {
		t.Fatalf("slot 2's worker got %q, want adopt 3", got)
	}

	// Slot 1 gets a worker again, not ready yet: still adopted.
	n1 := newFakeChild(t, m.slots[0], 200)
	n1.isReady = false
	m.slots[0].cur = n1.child
	m.rebalanceLocked()
	w[1].nothing(t)
	// Ready: released. Slot 3 keeps its adopter while that one is usable.
	n1.isReady = true
	m.rebalanceLocked()
	if got := w[1].next(t); got != "release 1" {
		t.Fatalf("slot 2's worker got %q, want release 1", got)
	}
	n1.nothing(t)

	// Slot 2's worker is told to stop, not replaced yet: slot 2 itself
	// and the slot 3 it adopted move to slot 1's worker (slots in order).
	w[1].retiring = true
	m.rebalanceLocked()
	if got := w[1].next(t); got != "release 3" {
		t.Fatalf("retiring adopter got %q, want release 3", got)
	}
	for _, want := range []string{"adopt 2", "adopt 3"} {
		if got := n1.next(t); got != want {
			t.Fatalf("slot 1's worker got %q, want %s", got, want)
		}
	}

	// Stopping: no more commands, whatever dies.
	m.stopping = true
	n1.retiring = true
	m.rebalanceLocked()
	n1.nothing(t)
}

// A slot that has never been served (startup) is not adopted, and with a
// shared socket there is nothing to adopt.
func TestRebalanceNotAtStartNorShared(t *testing.T) {
	m := newFakeMaster(2)
	a := newFakeChild(t, m.slots[0], 1)
	m.slots[0].cur = a.child
	m.slots[1].served = false // its first worker is still starting
	m.mu.Lock()
	m.rebalanceLocked()
	m.mu.Unlock()
	a.nothing(t)

	m.slots[1].served = true
	m.opts.SharedSocket = true
	m.mu.Lock()
	m.rebalanceLocked()
	m.mu.Unlock()
	a.nothing(t)
}
