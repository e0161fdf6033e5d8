package cluster

import "runtime"

// The limits of the master, each said where it applies (warnLimits, at
// start) and in the package doc:
//
//   - adoption needs every slot's socket in every worker: with more than
//     maxAdoptSlots (64) slots there is none, and an orphaned slot's
//     connections wait for its own worker;
//   - the connection table has min(maxEntries (63), 4×Workers) entries: a
//     worker started when none is free gets no balancing; with 63 or more
//     workers, a reload's new worker (or more) finds none;
//   - many more workers than CPUs only add context switches and memory.

// cpusPerWorkerLimit: more than this many workers per CPU is warned of.
const cpusPerWorkerLimit = 4

// warnLimits logs a warning for each limit this master's configuration
// runs into.
func (l *loop) warnLimits() {
	n := len(l.slots)
	if len(l.sockets) > maxAdoptSlots {
		l.log.Warn("more slots than can be adopted: a slot whose worker is down waits for it", "workers", n, "adoption_limit", maxAdoptSlots)
	}
	if l.table != nil && l.table.entries <= n {
		l.log.Warn("connection table too small for every worker and a reload's replacement: some workers get no balancing",
			"workers", n, "entries", l.table.entries)
	}
	if cpus := runtime.NumCPU(); n > cpusPerWorkerLimit*cpus {
		l.log.Warn("many more workers than CPUs", "workers", n, "cpus", cpus)
	}
}
