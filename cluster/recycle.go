package cluster

import (
	"math/rand/v2"
	"slices"
	"time"
)

// One slot's worker replaced the way a rolling reload replaces every slot's:
// a new worker starts, and once it is ready it becomes the slot's worker and
// the old one gets SIGTERM and drains. Master.RestartWorker asks for it
// (Node's worker.kill() and fork, without the gap), and so does recycling:
// a worker that has served Config.MaxRequests requests (plus up to
// MaxRequestsJitter, drawn per worker, so that workers started together do
// not all go together), or whose resident memory, read by the master from
// /proc, is above Config.MaxMemory (Gunicorn's max_requests and
// max_requests_jitter, PM2's max_memory_restart). Replacements run one at a
// time, never during a rolling reload, and queue meanwhile.

// recycleEvery is how often the master looks at its workers' request
// counts and memory.
const recycleEvery = time.Second

// rollState is the replacement under way, if any, and those queued.
type rollState struct {
	s     *slot      // the slot being replaced; nil if none
	why   ExitReason // the old worker's exit reason: ExitReplaced, ExitRecycled
	fresh *child     // the new worker, until it is ready
	old   *child     // the worker it replaced, until it exits
	queue []rollReq

	gen   int    // identity of the recycle tick armed last
	timer *timer // stops the pending recycle tick
}

type rollReq struct {
	slot int
	why  ExitReason
}

type (
	evRestartWorker struct{ slot int } // Master.RestartWorker
	evRecycleTick   struct{ gen int }
)

// queueRoll asks for slot id's worker to be replaced, once.
func (l *loop) queueRoll(id int, why ExitReason) {
	if l.stopping || (l.roll.s != nil && l.roll.s.id == id) ||
		slices.ContainsFunc(l.roll.queue, func(r rollReq) bool { return r.slot == id }) {
		return
	}
	l.roll.queue = append(l.roll.queue, rollReq{id, why})
}

// startRoll starts the next queued replacement; the caller made sure that
// no reload nor other replacement runs.
func (l *loop) startRoll() {
	for l.roll.s == nil && len(l.roll.queue) > 0 {
		req := l.roll.queue[0]
		l.roll.queue = l.roll.queue[1:]
		s := l.activeSlot(req.slot)
		if s == nil {
			continue // scaled down meanwhile
		}
		c, err := l.spawn(s)
		if err != nil {
			l.log.Error("replace worker", "worker", s.id, "err", err)
			continue
		}
		l.log.Info("replacing worker", "worker", s.id, "old_pid", pidOf(s.cur), "new_pid", c.pid, "reason", req.why)
		l.roll.s, l.roll.why, l.roll.fresh = s, req.why, c
	}
}

// rollReady: a worker reported ready; if it is a replacement's new worker,
// it takes its slot and the old one drains.
func (l *loop) rollReady(c *child) {
	r := &l.roll
	if r.fresh != c {
		return
	}
	r.fresh = nil
	s := c.slot
	prev := s.cur
	s.cur = c
	l.log.Info("worker replaced", "worker", s.id, "old_pid", pidOf(prev), "new_pid", c.pid, "reason", r.why)
	if prev == nil {
		l.stopTimer(&s.restart) // it was waiting out a restart delay
		r.s = nil
		return
	}
	prev.replaced = true
	prev.why = r.why
	r.old = prev
	l.terminate(prev) // the replacement ends once it has exited
}

// rollExit: a worker exited; a replacement's new worker that exits before
// it is ready gives the replacement up, its old one ends it.
func (l *loop) rollExit(c *child) {
	r := &l.roll
	switch c {
	case r.fresh:
		l.log.Error("worker replacement given up: the new worker exited before it was ready", "worker", c.slot.id, "worker_pid", c.pid)
		r.s, r.fresh = nil, nil
	case r.old:
		r.s, r.old = nil, nil
	}
}

// rollNotReady: c was not ready within ReadyTimeout (onReadyTimeout
// stops it); if it is a replacement's new worker, the replacement is given
// up and the old worker serves on.
func (l *loop) rollNotReady(c *child) {
	if l.roll.fresh != c {
		return
	}
	l.log.Error("worker replacement given up: the new worker was not ready in time", "worker", c.slot.id, "worker_pid", c.pid, "timeout", l.cfg.ReadyTimeout)
	l.roll.s, l.roll.fresh = nil, nil
}

func (l *loop) onRestartWorker(id int) {
	if l.activeSlot(id) == nil {
		l.log.Warn("restart of a worker that does not exist", "worker", id, "workers", len(l.slots))
		return
	}
	l.log.Info("restart of one worker requested", "worker", id)
	l.queueRoll(id, ExitReplaced)
}

// armRecycle sets the next look at the workers' requests and memory.
func (l *loop) armRecycle() {
	if (l.cfg.MaxRequests <= 0 && l.cfg.MaxMemory <= 0) || l.stopping {
		return
	}
	l.stopTimer(&l.roll.timer)
	l.roll.gen++
	gen := l.roll.gen
	l.roll.timer = l.after(recycleEvery, func(*timer) event { return evRecycleTick{gen} })
}

// onRecycleTick queues the replacement of every current worker past its
// request limit or above MaxMemory.
func (l *loop) onRecycleTick(ev evRecycleTick) {
	if ev.gen != l.roll.gen || l.stopping {
		return
	}
	l.roll.timer = nil
	for _, c := range l.sorted() {
		if !c.ready || c.stopped || c.gone || c != c.slot.cur {
			continue
		}
		if n := l.cfg.MaxRequests; n > 0 && l.table != nil && c.entry >= 0 {
			if c.limit == 0 {
				c.limit = int64(n) + rand.Int64N(int64(max(l.cfg.MaxRequestsJitter, 0))+1)
			}
			if served := l.table.requests(c.entry); served >= c.limit {
				l.log.Info("worker served its requests; recycling it", "worker", c.slot.id, "worker_pid", c.pid, "requests", served, "limit", c.limit)
				l.queueRoll(c.slot.id, ExitRecycled)
				continue
			}
		}
		if l.cfg.MaxMemory > 0 && l.sys.rss != nil {
			if rss, err := l.sys.rss(c.pid); err == nil && rss > l.cfg.MaxMemory {
				l.log.Info("worker above the memory limit; recycling it", "worker", c.slot.id, "worker_pid", c.pid, "rss", rss, "limit", l.cfg.MaxMemory)
				l.queueRoll(c.slot.id, ExitRecycled)
			}
		}
	}
	l.armRecycle()
}
