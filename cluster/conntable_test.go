package cluster

import (
	"testing"
)

// The master marks a worker's table entry live once it is ready and
// current, and not live once it is being replaced or stopped: only live
// workers make up the fair share.
func TestTableLiveFollowsReadyAndCurrent(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	live := func(p *fakeProc) (v bool) {
		h.inspect(func(l *loop) {
			for c := range l.children {
				if c.pid == p.pid {
					v = l.table.word(1+c.entry, wordLive).Load() == 1
				}
			}
		})
		return v
	}
	p1, p2 := h.spawned(), h.spawned()
	if live(p1) || live(p2) {
		t.Fatal("a worker not yet ready is live in the table")
	}
	h.ready(p1)
	h.ready(p2)
	if !live(p1) || !live(p2) {
		t.Fatalf("ready workers live: %v, %v; want both", live(p1), live(p2))
	}
	h.m.Reload()
	n := h.spawned()
	h.ready(n)
	if live(p1) || !live(n) {
		t.Errorf("after slot 1's replacement is ready: old live %v, new live %v; want false, true", live(p1), live(n))
	}
}
