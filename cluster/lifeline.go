package cluster

import (
	"slices"
	"strconv"
	"strings"
)

// The lifeline (fd 5) carries the master's commands to a worker, one line
// each. There is one, the worker's whole state: "adopted K1 K2 ..." is the
// complete set of other slots the worker accepts for now ("adopted" alone:
// none), then "workers=N" once the cluster's count differs from
// Config.Workers (Scale; Worker.Workers), then "stopping" once the cluster
// stops (Worker.Stopping). Each line is the whole state, never a change to
// the last one, so a line may replace an earlier one not yet written (the
// master keeps only the latest for a worker that reads slowly) and none is
// ever lost in a way that leaves a worker accepting for a slot it was told
// to release.
const (
	adoptedVerb  = "adopted"
	lineStopping = "stopping" // the last field of a stopping cluster's lines
	workersField = "workers=" // the cluster's count of workers, when said
)

// lifelineState is what one lifeline line says.
type lifelineState struct {
	slots    []int // the other slots the worker accepts for, sorted
	workers  int   // the cluster's count of workers; 0: not said
	stopping bool  // the cluster stops
}

func (st lifelineState) line() string {
	var b strings.Builder
	b.WriteString(adoptedVerb)
	for _, k := range slices.Sorted(slices.Values(st.slots)) {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(k))
	}
	if st.workers > 0 {
		b.WriteString(" " + workersField + strconv.Itoa(st.workers))
	}
	if st.stopping {
		b.WriteString(" " + lineStopping)
	}
	return b.String()
}

// adoptionLine is the lifeline line for the set slots.
func adoptionLine(slots []int) string { return lifelineState{slots: slots}.line() }

// stateLine is the lifeline line for the set slots, and the cluster's stop.
func stateLine(slots []int, stopping bool) string {
	return lifelineState{slots: slots, stopping: stopping}.line()
}

// lineSaysStopping reports whether a lifeline line says the cluster stops.
func lineSaysStopping(line string) bool {
	st, ok := parseState(line)
	return ok && st.stopping
}

// parseLifeline reads one lifeline line's set of slots, each in
// 1..maxAdoptSlots, sorted and without repeats. ok is false for anything
// else (the line is ignored).
func parseLifeline(line string) (slots []int, ok bool) {
	st, ok := parseState(line)
	return st.slots, ok
}

// parseState reads one lifeline line; ok is false for anything but a line
// of the form above (the line is ignored).
func parseState(line string) (st lifelineState, ok bool) {
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != adoptedVerb || len(fields) > 3+maxAdoptSlots {
		return lifelineState{}, false
	}
	fields = fields[1:]
	if n := len(fields); n > 0 && fields[n-1] == lineStopping {
		st.stopping, fields = true, fields[:n-1]
	}
	if n := len(fields); n > 0 && strings.HasPrefix(fields[n-1], workersField) {
		v := strings.TrimPrefix(fields[n-1], workersField)
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 || k > maxAdoptSlots || strconv.Itoa(k) != v {
			return lifelineState{}, false
		}
		st.workers, fields = k, fields[:n-1]
	}
	if len(fields) > maxAdoptSlots {
		return lifelineState{}, false
	}
	for _, f := range fields {
		k, err := strconv.Atoi(f)
		if err != nil || k < 1 || k > maxAdoptSlots || strconv.Itoa(k) != f {
			return lifelineState{}, false
		}
		st.slots = append(st.slots, k)
	}
	slices.Sort(st.slots)
	st.slots = slices.Compact(st.slots)
	return st, true
}

// tellAdoptions tells every worker whose state (its set of adopted slots,
// the cluster's count of workers, whether the cluster stops) changed since
// it was last told its whole state.
func (l *loop) tellAdoptions() {
	sets := map[*child][]int{}
	for _, s := range l.adoptionSlots() { // retired slots' sockets too (scale.go)
		if a := s.adopter; a != nil {
			sets[a] = append(sets[a], s.id)
		}
	}
	for _, c := range l.sorted() {
		st := lifelineState{slots: sets[c], stopping: c.toldStop}
		if len(l.slots) != l.cfg.Workers || c.toldWorkers {
			st.workers = len(l.slots)
			c.toldWorkers = true
		}
		line := st.line()
		if c.told == "" && len(st.slots) == 0 && st.workers == 0 && !st.stopping || c.told == line || c.gone {
			continue // a new worker adopts nothing until told
		}
		c.told = line
		c.proc.Tell(line)
	}
}
