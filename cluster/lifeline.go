package cluster

import (
	"slices"
	"strconv"
	"strings"
)

// The lifeline (fd 5) carries the master's commands to a worker, one line
// each. There is one: "adopted K1 K2 ..." is the complete set of other
// slots the worker accepts for now ("adopted" alone: none), followed by
// "stopping" once the cluster stops (Worker.Stopping). Each line is
// the whole state, never a change to the last one, so a line may replace
// an earlier one not yet written (the master keeps only the latest for a
// worker that reads slowly) and none is ever lost in a way that leaves a
// worker accepting for a slot it was told to release.
const (
	adoptedVerb  = "adopted"
	lineStopping = "stopping" // the last field of a stopping cluster's lines
)

// adoptionLine is the lifeline line for the set slots.
func adoptionLine(slots []int) string { return stateLine(slots, false) }

// stateLine is the lifeline line for the set slots, and the cluster's stop.
func stateLine(slots []int, stopping bool) string {
	var b strings.Builder
	b.WriteString(adoptedVerb)
	for _, k := range slices.Sorted(slices.Values(slots)) {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(k))
	}
	if stopping {
		b.WriteString(" " + lineStopping)
	}
	return b.String()
}

// lineSaysStopping reports whether a lifeline line says the cluster stops.
func lineSaysStopping(line string) bool {
	fields := strings.Fields(line)
	return len(fields) > 1 && fields[0] == adoptedVerb && fields[len(fields)-1] == lineStopping
}

// parseLifeline reads one lifeline line: the set of slots, each in
// 1..maxAdoptSlots, sorted and without repeats. ok is false for anything
// else (the line is ignored).
func parseLifeline(line string) (slots []int, ok bool) {
	fields := strings.Fields(line)
	if len(fields) > 1 && fields[len(fields)-1] == lineStopping {
		fields = fields[:len(fields)-1]
	}
	if len(fields) == 0 || fields[0] != adoptedVerb || len(fields) > 1+maxAdoptSlots {
		return nil, false
	}
	for _, f := range fields[1:] {
		k, err := strconv.Atoi(f)
		if err != nil || k < 1 || k > maxAdoptSlots || strconv.Itoa(k) != f {
			return nil, false
		}
		slots = append(slots, k)
	}
	slices.Sort(slots)
	return slices.Compact(slots), true
}

// tellAdoptions tells every worker whose set of adopted slots (or whether
// it was told the cluster stops) changed since it was last told its whole
// state.
func (l *loop) tellAdoptions() {
	sets := map[*child][]int{}
	for _, s := range l.slots {
		if a := s.adopter; a != nil {
			sets[a] = append(sets[a], s.id)
		}
	}
	for _, c := range l.sorted() {
		line := stateLine(sets[c], c.toldStop)
		if c.told == "" && len(sets[c]) == 0 && !c.toldStop || c.told == line || c.gone {
			continue // a new worker adopts nothing until told
		}
		c.told = line
		c.proc.Tell(line)
	}
}
