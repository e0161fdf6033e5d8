package cluster

// EventKind names what happened in the master.
type EventKind int

// The events of Config.OnEvent.
const (
	EventSpawned       EventKind = iota + 1 // a worker process started (Slot, Pid)
	EventReady                              // a worker reported ready (Slot, Pid)
	EventServing                            // every slot has a ready worker, for the first time
	EventExited                             // a worker exited (Slot, Pid, Err: its exit status)
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
	// Reason is why a worker exited (EventExited): "crashed", "stopped"
	// (the master stops), "replaced" (a reload or RestartWorker),
	// "recycled" (MaxRequests, MaxMemory), "unresponsive" (missed
	// HealthMisses checks; killed), "scaled down" (Scale), "reload
	// aborted".
	Reason string
}
