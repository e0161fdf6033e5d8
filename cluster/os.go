package cluster

import (
	"os"
	"sync"
	"time"
)

// sys is the operating system as the master sees it: starting a worker
// process, and the clock. The master's loop calls nothing else of the OS
// once its sockets are bound, so that unit tests replace sys with fake
// children and a fake clock and drive every path of the loop with no real
// process and no sleep.
type sys struct {
	// start starts a worker process described by spec. Once it is
	// running, start calls onReady when the worker reports ready (at most
	// once), then onExit when it has exited (exactly once), each from a
	// goroutine of its own, never both at the same time and never ready
	// after exit. onExit gets the exit status and the worker's last words
	// (report.go).
	start func(spec spawnSpec, onReady func(), onExit func(err error, lastWords string)) (process, error)
	// startMaster starts a new master for an upgrade (upgrade.go), with
	// the same promises as start: onReady when it reports every slot
	// ready, onExit when it has exited, unless it was handed over.
	startMaster func(spec masterSpec, onReady func(), onExit func(error)) (masterProcess, error)
	// listenPrivate makes a private listening socket for one worker and
	// returns it with the address the master dials it at; nil sys has none.
	listenPrivate func(slot int) (*os.File, string, error)
	// cpus is how many CPUs the program may use (runtime.GOMAXPROCS(0)
	// in the master); 0: unknown, the workers' GOMAXPROCS is left alone.
	cpus int
	now  func() time.Time
	// afterFunc calls f in its own goroutine after d, unless stop is
	// called first (stop reports whether it stopped f).
	afterFunc func(d time.Duration, f func()) (stop func() bool)
	// wait waits for every goroutine start made (after every process has
	// exited).
	wait func()
	// listen makes a bound socket listen (a slot added by Scale).
	listen func(sock *os.File) error
	// listening reports whether a socket listens already (one handed over
	// by an upgrade: a slot its old master retired); nil: none does.
	listening func(sock *os.File) bool
	// rss is the resident memory of process pid in bytes; nil: unknown.
	rss func(pid int) (int64, error)
}

// spawnSpec is what a worker process starts with, besides the base
// environment and the ready and lifeline pipes the sys adds.
type spawnSpec struct {
	Slot  int
	Env   []string   // added to the base environment
	Files []*os.File // Files[0] becomes fd 3; Files[1:] become fds 6 onwards
}

// process is a started worker process.
type process interface {
	Pid() int
	Signal(os.Signal) error
	// Tell sends one line on the worker's lifeline: its whole adoption
	// state (lifeline.go). It never blocks; a line not yet written when
	// the next is told is replaced by it, and the latest is always sent.
	Tell(line string)
}

// fdOf is the descriptor number the worker sees Files[i] at.
func fdOf(i int) int {
	if i == 0 {
		return fdListener
	}
	return fdLifeline + i
}

// realClock is the wall clock half of sys.
func realClock(s *sys) {
	s.now = time.Now
	s.afterFunc = func(d time.Duration, f func()) func() bool {
		return time.AfterFunc(d, f).Stop
	}
}

// goroutines owns the goroutines a real sys starts for its children.
type goroutines struct{ wg sync.WaitGroup }
