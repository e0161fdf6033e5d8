package cluster

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var errTest = errors.New("exit status 1")

func TestLifelineLines(t *testing.T) {
	for _, tc := range []struct {
		in    string
		slots []int
		ok    bool
	}{
		{"adopted", nil, true},
		{"adopted 3 1 3", []int{1, 3}, true},
		{"adopted 64", []int{64}, true},
		{"adopted 65", nil, false},
		{"adopted 0", nil, false},
		{"adopted +1", nil, false},
		{"adopted 01", nil, false},
		{"adopt 1", nil, false},
		{"release 1", nil, false},
		{"", nil, false},
	} {
		got, ok := parseLifeline(tc.in)
		if ok != tc.ok || !slices.Equal(got, tc.slots) {
			t.Errorf("parseLifeline(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.slots, tc.ok)
		}
	}
	if got := adoptionLine([]int{3, 1}); got != "adopted 1 3" {
		t.Errorf("adoptionLine(3, 1) = %q", got)
	}
}

// FuzzLifeline: any line a worker reads on its lifeline is either ignored
// or a set of valid slots, sorted, without repeats, that reads back the
// same once written by the master.
func FuzzLifeline(f *testing.F) {
	f.Add("adopted 1 2 3")
	f.Add("adopted")
	f.Add("adopted 9999999999999999999999")
	f.Add("adopt 2")
	f.Fuzz(func(t *testing.T, line string) {
		slots, ok := parseLifeline(line)
		if !ok {
			return
		}
		if len(slots) > maxAdoptSlots || !slices.IsSorted(slots) || len(slices.Compact(slices.Clone(slots))) != len(slots) {
			t.Fatalf("parseLifeline(%q) = %v", line, slots)
		}
		for _, k := range slots {
			if k < 1 || k > maxAdoptSlots {
				t.Fatalf("parseLifeline(%q): slot %d out of range", line, k)
			}
		}
		again, ok := parseLifeline(adoptionLine(slots))
		if !ok || !slices.Equal(again, slots) {
			t.Fatalf("%v written and read back as %v", slots, again)
		}
	})
}

// Every line the master tells a worker is its whole adoption state: the
// last line each worker was told is exactly the set of slots it adopts,
// whatever happened before.
func TestLifelineToldIsTheWholeState(t *testing.T) {
	h := newHarness(t, Config{Workers: 4, MaxBackoff: 10 * time.Second})
	ps := h.startAll()
	h.exit(ps[0], errTest)
	h.exit(h.spawned(), errTest) // slot 1 waits: adopted
	h.exit(ps[1], errTest)
	h.exit(h.spawned(), errTest) // slot 2 waits: adopted
	h.inspect(func(l *loop) {
		for _, s := range l.slots {
			if c := s.cur; c != nil && c.ready {
				var want []string
				for _, o := range l.slots {
					if o.adopter == c {
						want = append(want, strconv.Itoa(o.id))
					}
				}
				last := c.proc.(*fakeProc).told()
				got := ""
				if len(last) > 0 {
					got = last[len(last)-1]
				}
				if got != strings.TrimSpace("adopted "+strings.Join(want, " ")) && (len(want) > 0 || got != "") {
					t.Errorf("worker %d last told %q, adopts %v", c.pid, got, want)
				}
			}
		}
	})
}
