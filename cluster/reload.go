package cluster

import "time"

// reloadState is a rolling reload under way: slot by slot, a new worker is
// started; once it is ready it becomes its slot's current worker, the old
// one is sent SIGTERM, and the next slot begins once the old one has exited.
// At no time does a slot lack a ready worker, so no connection waits.
type reloadState struct {
	start time.Time
	next  int    // index of the slot being replaced
	fresh *child // the new worker of that slot, until it is ready
	old   *child // the worker it replaced, until it exits
}

// requestReload starts a rolling reload, or, if one is under way, asks for
// one more after it: any number of requests during a reload make one more
// reload, which picks up whatever changed meanwhile.
func (l *loop) requestReload(why string) {
	if l.stopping {
		return
	}
	l.log.Info(why)
	if l.roll.s != nil {
		l.log.Info("a worker's replacement is under way; the reload follows it")
		l.pending = true
		return
	}
	if l.reload != nil {
		if !l.pending {
			l.log.Info("rolling reload already under way; one more will follow it")
		}
		l.pending = true
		return
	}
	l.reload = &reloadState{start: l.sys.now()}
	l.log.Info("rolling reload started", "workers", len(l.slots))
	l.emit(Event{Kind: EventReloadStarted})
	l.reloadStep()
}

// reloadStep starts the new worker of the next slot, or ends the reload.
func (l *loop) reloadStep() {
	r := l.reload
	if r.next == len(l.slots) {
		l.reload = nil
		l.stats.Reloads++
		l.log.Info("rolling reload finished", "took", l.sys.now().Sub(r.start).Round(time.Millisecond))
		l.emit(Event{Kind: EventReloaded})
		l.followUp()
		return
	}
	s := l.slots[r.next]
	c, err := l.spawn(s)
	if err != nil {
		l.reload = nil
		l.log.Error("rolling reload aborted", "worker", s.id, "err", err)
		l.emit(Event{Kind: EventReloadFailed, Slot: s.id, Err: err})
		l.followUp()
		return
	}
	r.fresh = c // its ready timeout (spawn) aborts the reload
}

// promote makes a reload's new worker, now ready, its slot's current one,
// and stops the old one.
func (l *loop) promote(c *child) {
	r := l.reload
	r.fresh = nil
	s := c.slot
	prev := s.cur
	s.cur = c
	l.log.Info("worker replaced", "worker", s.id, "old_pid", pidOf(prev), "new_pid", c.pid)
	if prev == nil {
		// The slot had no worker (it was waiting out a restart delay).
		l.stopTimer(&s.restart)
		r.next++
		l.reloadStep()
		return
	}
	prev.replaced = true
	r.old = prev
	l.terminate(prev) // the next slot begins once it has exited (onExit)
}

// abortReload ends a reload whose new worker failed: the old workers keep
// serving, the slots after it are left alone.
func (l *loop) abortReload(c *child, why string) {
	l.reload = nil
	l.log.Error("rolling reload aborted: new worker not ready", "worker", c.slot.id, "worker_pid", c.pid, "why", why, "timeout", l.cfg.ReadyTimeout)
	l.emit(Event{Kind: EventReloadFailed, Slot: c.slot.id, Pid: c.pid, Err: errorString(why)})
	l.followUp()
}

// followUp runs the reload asked for while the last one ran.
func (l *loop) followUp() {
	if l.pending {
		l.pending = false
		l.requestReload("running the reload asked for during the last one")
	}
}

func pidOf(c *child) int {
	if c == nil {
		return 0
	}
	return c.pid
}

type errorString string

func (e errorString) Error() string { return string(e) }
