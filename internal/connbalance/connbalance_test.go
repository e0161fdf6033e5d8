package connbalance

import (
	"sync"
	"testing"
)

// twoMappings makes a table and maps it a second time from its file, as a
// worker process does: writes through one mapping must show in the other.
func twoMappings(t *testing.T, workers, entries int) (master, worker *Table) {
	t.Helper()
	master, f, err := Create(workers, entries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); f.Close() })
	worker, err = Open(f, entries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { worker.Close() })
	return master, worker
}

func TestCountsAreShared(t *testing.T) {
	master, worker := twoMappings(t, 2, 4)
	if got := worker.Workers(); got != 2 {
		t.Fatalf("Workers() through the second mapping = %d, want 2", got)
	}
	m, err := worker.Member(3)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		m.Opened()
	}
	m.Left()
	if got := master.Count(3); got != 4 {
		t.Fatalf("master sees entry 3 = %d, want 4", got)
	}
	if got := master.Total(); got != 4 {
		t.Fatalf("Total() = %d, want 4", got)
	}
	master.Reset(3)
	if got := worker.Count(3); got != 0 {
		t.Fatalf("after Reset the worker sees %d, want 0", got)
	}
}

func TestTryShedKeepsAFairShare(t *testing.T) {
	_, tb := twoMappings(t, 2, 6)
	a, _ := tb.Member(0)
	b, _ := tb.Member(1)
	for range 37 {
		a.Opened()
	}
	for range 27 {
		b.Opened()
	}
	if b.TryShed() {
		t.Fatal("the worker under its share (27 of 64) was asked to shed")
	}
	shed := 0
	for a.TryShed() {
		shed++
	}
	// A shed connection counts as gone at once (its client has yet to
	// reconnect), so the total falls with it: a sheds until it holds no
	// more than ceil((a+27)/2), that is 28; the 9 clients then reconnect
	// and the kernel spreads them again.
	if shed != 9 || tb.Count(0) != 28 || tb.Total() != 55 {
		t.Fatalf("shed %d, a holds %d of %d; want 9 shed, 28 of 55", shed, tb.Count(0), tb.Total())
	}
	// Even counts: nobody sheds, however often asked.
	for range 100 {
		if a.TryShed() || b.TryShed() {
			t.Fatalf("shed at %d/%d", tb.Count(0), tb.Count(1))
		}
		b.Opened()
		a.Opened()
	}
}

func TestTryShedConcurrentCallersNeverOvershoot(t *testing.T) {
	_, tb := twoMappings(t, 2, 4)
	a, _ := tb.Member(0)
	b, _ := tb.Member(1)
	for range 100 {
		a.Opened()
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				a.TryShed()
			}
		})
	}
	wg.Wait()
	_ = b
	// ceil(a/2) >= a holds only for a <= 1.
	if got := tb.Count(0); got != 1 {
		t.Fatalf("alone in a 2-worker table, a sheds down to 1 connection; holds %d", got)
	}
}

func TestBadSizes(t *testing.T) {
	for _, c := range []struct{ workers, entries int }{{0, 4}, {2, 0}, {2, MaxEntries + 1}} {
		if _, _, err := Create(c.workers, c.entries); err == nil {
			t.Errorf("Create(%d, %d): no error", c.workers, c.entries)
		}
	}
	_, tb := twoMappings(t, 1, 2)
	if _, err := tb.Member(2); err == nil {
		t.Error("Member(2) of a 2-entry table: no error")
	}
}
