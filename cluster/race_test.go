//go:build race

package cluster

// raceEnabled: the race detector slows the simulation about tenfold.
const raceEnabled = true
