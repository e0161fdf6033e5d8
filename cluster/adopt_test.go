package cluster

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// When a slot's worker dies, a ready worker of another slot adopts the
// slot; once the slot's own worker is ready again, it releases it.
func TestAdoptOnDeathReleaseOnReady(t *testing.T) {
	h := newHarness(t, Config{Workers: 3, MaxBackoff: time.Second})
	ps := h.startAll()
	h.exit(ps[0], errors.New("signal: killed"))
	h.exit(h.spawned(), errors.New("exit status 1")) // the restart dies too: slot 1 now waits 100ms
	adopters := 0
	for _, p := range ps[1:] {
		if slices.Contains(p.adopts(), 1) {
			adopters++
		}
	}
	if adopters != 1 {
		t.Fatalf("%d workers adopt slot 1, want 1 (told: %v, %v)", adopters, ps[1].told(), ps[2].told())
	}
	if st := h.l.snap.Load().stats; st.Adopted != 1 {
		t.Errorf("stats.Adopted = %d, want 1", st.Adopted)
	}
	h.advance(100 * time.Millisecond)
	n := h.spawned()
	h.noSpawn("one restart")
	if ps[1].adopts() == nil && ps[2].adopts() == nil {
		t.Errorf("slot 1 released before its worker was ready")
	}
	h.ready(n)
	for _, p := range ps[1:] {
		if got := p.adopts(); len(got) != 0 {
			t.Errorf("worker %d adopts %v once slot 1's worker is ready, want none", p.pid, got)
		}
	}
	if n := h.l.snap.Load().stats.Adopted; n != 0 {
		t.Errorf("after slot 1 is ready: %d adopted, want 0", n)
	}
}

// With one shared socket there is nothing to adopt.
func TestSharedSocketNeverAdopts(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, SharedSocket: true})
	ps := h.startAll()
	h.exit(ps[0], errors.New("signal: killed"))
	if got := ps[1].told(); len(got) != 0 {
		t.Errorf("told %v with a shared socket", got)
	}
}

// Orphaned slots go to the least loaded ready workers: two slots down in a
// cluster of four are adopted by two different workers.
func TestAdoptersAreTheLeastLoaded(t *testing.T) {
	h := newHarness(t, Config{Workers: 4, MaxBackoff: time.Second})
	ps := h.startAll()
	for _, p := range ps[:2] {
		h.exit(p, errTest)
		h.exit(h.spawned(), errTest) // its restart dies too: the slot waits
	}
	for _, p := range ps[2:] {
		if got := p.adopts(); len(got) != 1 {
			t.Errorf("worker %d adopts %v, want one slot each", p.pid, got)
		}
	}
}
