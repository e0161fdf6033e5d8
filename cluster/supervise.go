package cluster

import (
	"context"
)

// The loop's supervision beyond exits (health checks, replacements one at a
// time, scaling) plugs into loop.go at these few points.

func (l *loop) startSupervision() {
	l.health.ctx, l.health.cancel = context.WithCancel(context.Background())
	l.armHealth()
	l.armRecycle()
}

// stopSupervision: the master stops; no more checks, replacements or
// scaling.
func (l *loop) stopSupervision() {
	l.stopHealth()
	l.stopTimer(&l.roll.timer)
	l.roll.queue = nil
	l.scale.want = 0
}

// endSupervision waits for the checks in flight; run calls it once done is
// closed, so that none of them waits for the loop.
func (l *loop) endSupervision() {
	if l.health.cancel != nil {
		l.health.cancel()
	}
	l.health.wg.Wait()
	l.msgs.wg.Wait()
}

// readySupervision: c reported ready. A replacement's new worker takes its
// slot; a worker learns the count of workers when Scale changed it.
func (l *loop) readySupervision(c *child) {
	l.rollReady(c)
	l.tellAdoptions() // the count of workers is part of every worker's state
}

// exitSupervision: c exited. A replacement waiting for it goes on; its
// message channel closes.
func (l *loop) exitSupervision(c *child) {
	l.rollExit(c)
	closeMessages(c)
}

func (l *loop) handleSupervision(ev event) {
	switch ev := ev.(type) {
	case evHealthTick:
		l.onHealthTick(ev)
	case evHealthResult:
		l.onHealthResult(ev)
	case evRecycleTick:
		l.onRecycleTick(ev)
	case evRestartWorker:
		l.onRestartWorker(ev.slot)
	case evScale:
		l.onScale(ev.n)
	}
}

// schedule runs after every event: once no rolling reload nor replacement
// runs, it starts what waits for that, in order: a reload asked for during
// a replacement, a change of the number of workers, the next replacement.
func (l *loop) schedule() {
	if l.stopping || l.reload != nil || l.roll.s != nil {
		return
	}
	if l.pending {
		l.pending = false
		l.requestReload("running the reload asked for during a worker's replacement")
		return
	}
	l.applyScale()
	l.startRoll()
}
