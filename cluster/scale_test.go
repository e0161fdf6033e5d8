package cluster

import (
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// Scale 2 -> 4 -> 1 -> 2: an added slot's socket starts listening and is
// adopted by a ready worker until its own worker is ready; a removed
// slot's socket is adopted for good before its worker is told to drain,
// and is never closed; adding again reuses it.
func TestScaleUpDownUp(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, MaxWorkers: 4})
	m := &Master{l: h.l}
	ps := h.startAll()
	if err := m.Scale(4); err != nil {
		t.Fatal(err)
	}
	n3, n4 := h.spawned(), h.spawned()
	if n3.slot != 3 || n4.slot != 4 {
		t.Fatalf("new workers for slots %d, %d; want 3, 4", n3.slot, n4.slot)
	}
	if got, want := h.listened, []*os.File{h.l.sockets[2], h.l.sockets[3]}; !slices.Equal(got, want) {
		t.Errorf("sockets made to listen: %v, want slots 3 and 4's", got)
	}
	told := append(ps[0].deltas(), ps[1].deltas()...)
	if !slices.Contains(told, "adopt 3") || !slices.Contains(told, "adopt 4") {
		t.Errorf("workers told %v before the new ones were ready, want adopt 3 and adopt 4", told)
	}
	h.ready(n3)
	h.ready(n4)
	told = append(ps[0].deltas(), ps[1].deltas()...)
	if !slices.Contains(told, "release 3") || !slices.Contains(told, "release 4") {
		t.Errorf("workers told %v once the new ones were ready, want release 3 and 4", told)
	}
	if st := m.Stats(); st.Workers != 4 || st.Live != 4 {
		t.Errorf("stats %+v, want 4 workers live", st)
	}

	if err := m.Scale(1); err != nil {
		t.Fatal(err)
	}
	settle(h, h.l.asks)
	for _, p := range []*fakeProc{ps[1], n3, n4} {
		if !slices.Equal(p.signals(), []os.Signal{sigterm}) {
			t.Errorf("removed worker %d got %v, want SIGTERM", p.pid, p.signals())
		}
	}
	for _, k := range []string{"adopt 2", "adopt 3", "adopt 4"} {
		if !slices.Contains(ps[0].deltas(), k) {
			t.Errorf("worker 1 told %v, want %s", ps[0].deltas(), k)
		}
	}
	for _, p := range []*fakeProc{ps[1], n3, n4} {
		h.exit(p, nil)
		if e := h.waitEvent(EventExited); e.Reason != ExitScaledDown {
			t.Errorf("exit %+v, want reason scaled down", e)
		}
	}
	h.noSpawn("after scaling down")
	if slices.Contains(ps[0].deltas(), "release 2") {
		t.Errorf("worker 1 released a retired slot: %v", ps[0].deltas())
	}
	if st := m.Stats(); st.Workers != 1 || st.Live != 1 {
		t.Errorf("stats %+v, want 1 worker live", st)
	}

	before := len(ps[0].deltas())
	if err := m.Scale(2); err != nil {
		t.Fatal(err)
	}
	n2 := h.spawned()
	if n2.slot != 2 || len(h.listened) != 2 {
		t.Fatalf("new worker for slot %d after %d listens; want slot 2, its socket listening already", n2.slot, len(h.listened))
	}
	h.ready(n2)
	if got := slotLines(ps[0].deltas()[before:]); !slices.Equal(got, []string{"release 2"}) {
		t.Errorf("worker 1 told %v once slot 2's worker was ready, want release 2 (and keep 3, 4)", got)
	}
	if err := m.Scale(5); !errors.Is(err, ErrScale) {
		t.Errorf("Scale(5) with MaxWorkers 4 = %v, want ErrScale", err)
	}
	if err := m.Scale(0); !errors.Is(err, ErrScale) {
		t.Errorf("Scale(0) = %v, want ErrScale", err)
	}
}

// A retired slot whose adopter dies is adopted by another worker.
func TestRetiredSlotKeepsAnAdopter(t *testing.T) {
	h := newHarness(t, Config{Workers: 3, MaxWorkers: 3})
	m := &Master{l: h.l}
	ps := h.startAll()
	_ = m.Scale(2)
	settle(h, h.l.asks)
	h.exit(ps[2], nil)
	var adopter *fakeProc
	for _, p := range ps[:2] {
		if slices.Contains(p.deltas(), "adopt 3") {
			adopter = p
		}
	}
	if adopter == nil {
		t.Fatal("nobody adopted slot 3")
	}
	other := ps[0]
	if adopter == ps[0] {
		other = ps[1]
	}
	h.exit(adopter, errors.New("signal: killed"))
	if !slices.Contains(other.deltas(), "adopt 3") {
		t.Errorf("worker %d told %v after the adopter died, want adopt 3", other.pid, other.deltas())
	}
}

// SIGTTIN adds a worker, SIGTTOU removes one; a change asked for during a
// rolling reload waits for its end.
func TestScaleSignalsAndReload(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	h := newHarnessWith(t, Config{Workers: 2, MaxWorkers: 3}, func(l *loop) { l.ttinout = sigs })
	ps := h.startAll()
	h.l.send(evReload{})
	h.waitEvent(EventReloadStarted)
	fresh := h.spawned()
	sigs <- syscall.SIGTTIN
	settle(h, sigs)
	h.noSpawn("a scale during a reload")
	h.ready(fresh)
	h.exit(ps[0], nil)
	fresh2 := h.spawned()
	h.ready(fresh2)
	h.exit(ps[1], nil)
	h.waitEvent(EventReloaded)
	n := h.spawned()
	if n.slot != 3 {
		t.Fatalf("SIGTTIN started slot %d, want 3", n.slot)
	}
	h.ready(n)
	sigs <- syscall.SIGTTIN // beyond MaxWorkers: ignored
	settle(h, sigs)
	h.noSpawn("SIGTTIN at MaxWorkers")
	sigs <- syscall.SIGTTOU
	settle(h, sigs)
	if !has(n.signals(), sigterm) {
		t.Errorf("SIGTTOU: worker 3 got %v, want SIGTERM", n.signals())
	}
	if st := h.l.snap.Load().stats; st.Workers != 2 {
		t.Errorf("stats after SIGTTOU: %d workers, want 2", st.Workers)
	}
}

// slotLines are the adopt and release lines of told.
func slotLines(told []string) []string {
	var out []string
	for _, l := range told {
		if strings.HasPrefix(l, "adopt ") || strings.HasPrefix(l, "release ") {
			out = append(out, l)
		}
	}
	return out
}

// Workers learn the count when it changes, and a new worker once ready.
func TestWorkersAreToldTheCount(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, MaxWorkers: 3})
	m := &Master{l: h.l}
	ps := h.startAll()
	for _, p := range ps {
		if slices.Contains(p.deltas(), "workers 2") {
			t.Errorf("worker %d told the count it started with: %v", p.pid, p.deltas())
		}
	}
	_ = m.Scale(3)
	n := h.spawned()
	h.ready(n)
	for _, p := range append(ps, n) {
		if !slices.Contains(p.deltas(), "workers 3") {
			t.Errorf("worker %d told %v, want workers 3", p.pid, p.deltas())
		}
	}
}
