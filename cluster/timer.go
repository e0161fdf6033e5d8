package cluster

import "time"

// timer is a pending timer of the loop: a slot's restart delay, a worker's
// ready timeout or stop timeout. The event it sends carries it, so that an
// event whose timer the loop has since stopped or replaced (it had fired,
// and its event was on its way to the loop) is recognised and dropped: a
// stale restart never cuts a later backoff short.
type timer struct{ stop func() bool }

// after sends ev(t) to the loop after d, unless t is stopped first.
func (l *loop) after(d time.Duration, ev func(t *timer) event) *timer {
	t := &timer{}
	t.stop = l.sys.afterFunc(d, func() { l.send(ev(t)) })
	return t
}

// stopTimer stops *t, if set, and clears it: an event it already sent is
// then stale.
func (l *loop) stopTimer(t **timer) {
	if *t != nil {
		(*t).stop()
		*t = nil
	}
}

// The timers' events.
type (
	evRestart struct {
		s *slot
		t *timer
	} // a slot's restart delay is over
	evReadyTimeout struct {
		c *child
		t *timer
	} // a new worker was not ready in time
	evStopTimeout struct {
		c *child
		t *timer
	} // a stopped worker did not exit in time
)

// onTimer handles a timer's event, unless it is stale.
func (l *loop) onTimer(ev event) {
	switch ev := ev.(type) {
	case evRestart:
		if ev.t != ev.s.restart {
			return
		}
		ev.s.restart = nil
		l.fill(ev.s, true)
	case evReadyTimeout:
		if ev.t != ev.c.readyBy {
			return
		}
		ev.c.readyBy = nil
		l.onReadyTimeout(ev.c)
	case evStopTimeout:
		if ev.t != ev.c.exitBy {
			return
		}
		ev.c.exitBy = nil
		l.onStopTimeout(ev.c)
	}
}
