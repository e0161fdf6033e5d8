package cluster

import (
	"os"
	"sync"
	"testing"
)

// twoMappings makes a table and maps it a second time from its file, as a
// worker process does: writes through one mapping must show in the other.
// The first live entries are marked live, as the master does for ready
// workers.
func twoMappings(t *testing.T, live, entries int) (master, worker *connTable) {
	t.Helper()
	master, err := createTable(entries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.close() })
	worker, err = openTable(master.file, entries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { worker.close() })
	for i := range live {
		master.setLive(i, true)
	}
	return master, worker
}

func TestCountsAreShared(t *testing.T) {
	master, worker := twoMappings(t, 2, 4)
	if _, live := worker.total(); live != 2 {
		t.Fatalf("live entries through the second mapping = %d, want 2", live)
	}
	m, err := worker.member(3)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		m.Opened()
	}
	m.Left()
	if got := master.count(3); got != 4 {
		t.Fatalf("master sees entry 3 = %d, want 4", got)
	}
	if got, _ := master.total(); got != 4 {
		t.Fatalf("Total() = %d, want 4", got)
	}
	master.reset(3)
	if got := worker.count(3); got != 0 {
		t.Fatalf("after Reset the worker sees %d, want 0", got)
	}
}

func TestTryShedKeepsAFairShare(t *testing.T) {
	_, tb := twoMappings(t, 2, 6)
	a, _ := tb.member(0)
	b, _ := tb.member(1)
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
	if total, _ := tb.total(); shed != 9 || tb.count(0) != 28 || total != 55 {
		t.Fatalf("shed %d, a holds %d of %d; want 9 shed, 28 of 55", shed, tb.count(0), total)
	}
	// Even counts: nobody sheds, however often asked.
	for range 100 {
		if a.TryShed() || b.TryShed() {
			t.Fatalf("shed at %d/%d", tb.count(0), tb.count(1))
		}
		b.Opened()
		a.Opened()
	}
}

func TestTryShedConcurrentCallersNeverOvershoot(t *testing.T) {
	_, tb := twoMappings(t, 2, 4)
	a, _ := tb.member(0)
	b, _ := tb.member(1)
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
	if got := tb.count(0); got != 1 {
		t.Fatalf("alone in a 2-worker table, a sheds down to 1 connection; holds %d", got)
	}
}

// While a slot's worker is down (not live), the worker that accepts for it
// is the only live one and holds every connection: it must not shed them.
func TestTryShedCountsOnlyLiveWorkers(t *testing.T) {
	master, tb := twoMappings(t, 2, 4)
	a, _ := tb.member(0)
	for range 10 {
		a.Opened()
	}
	if !a.TryShed() {
		t.Fatal("10 of 10 connections with 2 live workers: want a shed")
	}
	a.Opened()
	master.setLive(1, false)
	if a.TryShed() {
		t.Fatal("the only live worker was asked to shed")
	}
	// A killed worker's entry, reset by the master, counts for nothing.
	b, _ := tb.member(1)
	for range 7 {
		b.Opened()
	}
	master.reset(1)
	if got, live := tb.total(); got != 10 || live != 1 {
		t.Fatalf("after Reset: %d open, %d live; want 10, 1", got, live)
	}
}

func TestBadSizes(t *testing.T) {
	for _, n := range []int{0, -1, maxEntries + 1} {
		if _, err := createTable(n); err == nil {
			t.Errorf("createTable(%d): no error", n)
		}
	}
	_, tb := twoMappings(t, 1, 2)
	if _, err := tb.member(2); err == nil {
		t.Error("Member(2) of a 2-entry table: no error")
	}
}

// A file that is not a table (here a zeroed file of a table's size) is
// refused.
func TestOpenRefusesOtherFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(tableSize); err != nil {
		t.Fatal(err)
	}
	if tb, err := openTable(f, 4); err == nil {
		tb.close()
		t.Fatal("openTable of a zeroed file: no error")
	}
}
