package cluster

import (
	"errors"
	"fmt"
)

// A rolling reload asked for by a control command (Reload, from another
// process) waits for its reload to end: a request that arrives while a
// reload runs waits for the one more reload that follows it, so the answer
// is always about a reload that started after the request.

// ErrReloadAborted is wrapped by Reload's error for a rolling reload that
// was given up (a new worker exited or was not ready in time); the old
// workers serve on.
var ErrReloadAborted = errors.New("rolling reload aborted")

// ErrNotMaster is wrapped by Reload's error when the process that answers
// on the master's control socket is not that master (another process, or
// another user's, took its name).
var ErrNotMaster = errors.New("not the cluster master")

// ErrMasterStopping is wrapped by Reload's error when the master began to
// stop before the reload could finish.
var ErrMasterStopping = errors.New("the master is stopping")

// evReloadWait asks the loop for a reload and for its outcome on reply
// (buffered: the loop never blocks on it).
type evReloadWait struct{ reply chan error }

// reloadWaits are the reload requests waiting for an outcome; owned by the
// loop's goroutine.
type reloadWaits struct {
	next []chan error // wait for the next reload to start, and end
	cur  []chan error // wait for the reload under way
}

func (w *reloadWaits) add(l *loop, ev evReloadWait) {
	if l.stopping {
		ev.reply <- ErrMasterStopping
		return
	}
	w.next = append(w.next, ev.reply)
	l.requestReload("reload requested by a control command")
}

// event answers the requests a reload's end concerns.
func (w *reloadWaits) event(e Event) {
	switch e.Kind {
	case EventReloadStarted:
		w.cur = append(w.cur, w.next...)
		w.next = nil
	case EventReloaded:
		w.answer(&w.cur, nil)
	case EventReloadFailed:
		w.answer(&w.cur, fmt.Errorf("%w at worker %d: %v; the old workers serve on", ErrReloadAborted, e.Slot, e.Err))
	case EventStopping:
		w.answer(&w.cur, ErrMasterStopping)
		w.answer(&w.next, ErrMasterStopping)
	}
}

func (w *reloadWaits) answer(list *[]chan error, err error) {
	for _, c := range *list {
		c <- err
	}
	*list = nil
}
