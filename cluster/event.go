package cluster

// EventKind names what happened in the master.
type EventKind int

// The events of Config.OnEvent.
const (
	EventSpawned       EventKind = iota + 1 // a worker process started (Slot, Pid)
	EventReady                              // a worker reported ready (Slot, Pid)
	EventServing                            // every slot has a ready worker, for the first time
	EventExited                             // a worker exited (Slot, Pid, Err: its exit status, Reason, LastWords)
	EventAdopted                            // a worker (Pid) accepts for slot Slot, whose worker is down
	EventReleased                           // that worker stopped accepting for Slot
	EventReloadStarted                      // a rolling reload began
	EventReloaded                           // a rolling reload finished: every slot has a new worker
	EventReloadFailed                       // a rolling reload stopped at Slot (Err); the old workers serve on
	EventStopping                           // the master is stopping its workers
)

var eventNames = [...]string{"", "spawned", "ready", "serving", "exited", "adopted", "released",
	"reload-started", "reloaded", "reload-failed", "stopping"}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one thing that happened in the master, for metrics and
// notifications (Config.OnEvent).
type Event struct {
	Kind EventKind
	Slot int   // the worker's slot, when the event is about one
	Pid  int   // the worker's process id, when the event is about one
	Err  error // EventExited: the exit status (nil: 0); EventReloadFailed: why
	// Reason is why the worker exited (EventExited).
	Reason ExitReason
	// LastWords is what the worker said before it exited (EventExited):
	// the error its function returned to Run, or its panic; "" if nothing.
	LastWords string
}

// ExitReason says why a worker exited.
type ExitReason int

// The reasons of EventExited. Only ExitCrashed and ExitNotReady count for
// the restart backoff (and, before a slot was ever served, as failed
// starts); a worker the master stopped or that was stopped from outside is
// no crash.
const (
	ExitCrashed  ExitReason = iota + 1 // it exited by itself, or died of a signal (Err says which)
	ExitStopped                        // the master stopped it (SIGTERM): the master's stop, an aborted reload
	ExitReplaced                       // a rolling reload replaced it
	ExitNotReady                       // not ready within ReadyTimeout, the master stopped it
	ExitKilled                         // the master killed it (SIGKILL): past StopTimeout, or a forced stop
	// ExitSignaled: stopped by a signal from outside the cluster
	// (SIGTERM, SIGINT or SIGHUP from an operator, `systemctl kill`, a
	// worker's "stopped by signal" last words): its slot restarts at once.
	ExitSignaled
	ExitRecycled     // replaced for MaxRequests or MaxMemory, the way a reload replaces
	ExitUnresponsive // missed HealthMisses health checks in a row; killed and replaced
	ExitScaledDown   // its slot was removed (Master.Scale, SIGTTOU)
)

var exitNames = [...]string{"", "crashed", "stopped", "replaced", "not ready in time", "killed", "stopped by signal",
	"recycled", "unresponsive", "scaled down"}

func (r ExitReason) String() string {
	if r > 0 && int(r) < len(exitNames) {
		return exitNames[r]
	}
	return "unknown"
}
