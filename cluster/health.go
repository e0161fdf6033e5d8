package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
)

// Health checks find a worker that is alive but no longer answers (stuck
// in a deadlock, an endless loop without yielding, SIGSTOP): its process
// never exits, so without them the kernel would keep handing it its share
// of the connections forever. Every HealthInterval the master starts one
// check per ready worker that is not being stopped; a check that fails, or
// has not answered by the next tick, is a miss, and an answer resets the
// count. At HealthMisses misses in a row the worker is unresponsive:
// another worker adopts its slot at once, it gets SIGKILL (it cannot
// drain: it does not run), and its slot gets a new worker, as after a
// crash. A worker that stops answering at time t is killed before
// t + HealthInterval × (HealthMisses + 1).
//
// The default check is an HTTP "OPTIONS *" request on the worker's private
// socket (Config.PrivateSockets). net/http answers it itself, without calling the
// handler, through the same accept loop and connection goroutine as every
// request; so a worker whose handlers are busy (all its CPUs computing) is
// still healthy, and one whose accept loop or runtime is stuck is not.

// healthLoop is the checks' state, owned by the loop's goroutine.
type healthLoop struct {
	gen    int    // identity of the tick timer armed last; older ticks are dropped
	timer  *timer // stops the pending tick; nil if none
	seq    int    // the last check's identity
	ctx    context.Context
	cancel context.CancelFunc // ends every check in flight (the master stops)
	wg     sync.WaitGroup     // the checks in flight
}

// childHealth is one worker's checks.
type childHealth struct {
	seq    int                // the check in flight; 0 if none
	cancel context.CancelFunc // ends it
	misses int                // misses in a row
}

type (
	evHealthTick   struct{ gen int }
	evHealthResult struct {
		c   *child
		seq int
		err error
	}
)

// errNoPrivate: the default check has no private socket to reach.
var errNoPrivate = errors.New("cluster: worker has no private socket to check")

// armHealth sets the next tick.
func (l *loop) armHealth() {
	if l.cfg.HealthInterval <= 0 || l.stopping {
		return
	}
	l.stopTimer(&l.health.timer)
	l.health.gen++
	gen := l.health.gen
	l.health.timer = l.after(l.cfg.HealthInterval, func(*timer) event { return evHealthTick{gen} })
}

// onHealthTick counts a miss for every check still unanswered and starts
// the next round.
func (l *loop) onHealthTick(ev evHealthTick) {
	if ev.gen != l.health.gen || l.stopping {
		return // a tick that was stopped after it had fired
	}
	l.health.timer = nil
	for _, c := range l.sorted() {
		if !c.ready || c.stopped || c.gone {
			continue
		}
		if c.health.seq != 0 {
			c.health.cancel()
			c.health.seq = 0
			if l.missed(c, "no answer within the health interval") {
				continue
			}
		}
		l.check(c)
	}
	l.armHealth()
}

// check starts one check of c, in a goroutine of its own; its result comes
// back as an event.
func (l *loop) check(c *child) {
	l.health.seq++
	seq := l.health.seq
	ctx, cancel := context.WithCancel(l.health.ctx)
	c.health.seq, c.health.cancel = seq, cancel
	info := WorkerInfo{Slot: c.slot.id, Pid: c.pid, Ready: true, Current: c.slot.cur == c, PrivateAddr: c.private, Conns: -1, entry: c.entry}
	check := l.cfg.HealthCheck
	if check == nil {
		check = checkPrivate
	}
	l.health.wg.Go(func() {
		err := check(ctx, info)
		l.send(evHealthResult{c, seq, err})
	})
}

func (l *loop) onHealthResult(ev evHealthResult) {
	c := ev.c
	if c.health.seq != ev.seq {
		return // a check given up at a tick, or after the worker was stopped
	}
	c.health.cancel()
	c.health.seq = 0
	if c.gone || c.stopped {
		return
	}
	if ev.err == nil {
		if c.health.misses > 0 {
			l.log.Info("worker answers its health checks again", "worker", c.slot.id, "worker_pid", c.pid, "missed", c.health.misses)
		}
		c.health.misses = 0
		return
	}
	l.missed(c, ev.err.Error())
}

// missed counts a miss of c; at HealthMisses it kills c and reports true.
func (l *loop) missed(c *child, why string) bool {
	c.health.misses++
	l.log.Warn("worker missed a health check", "worker", c.slot.id, "worker_pid", c.pid,
		"missed", c.health.misses, "of", l.cfg.HealthMisses, "why", why)
	if c.health.misses < l.cfg.HealthMisses {
		return false
	}
	l.unresponsive(c)
	return true
}

// unresponsive replaces a worker that stopped answering: its slots go to
// other workers at once, it gets SIGKILL, and its slot a new worker (after
// the slot's crash backoff, like any failure).
func (l *loop) unresponsive(c *child) {
	l.log.Error("worker unresponsive; killing it", "worker", c.slot.id, "worker_pid", c.pid,
		"missed", c.health.misses, "interval", l.cfg.HealthInterval)
	c.why = ExitUnresponsive
	c.stopped = true // no longer usable: rebalance moves its slots
	l.setLive(c, false)
	l.stopTimer(&c.readyBy)
	l.stopTimer(&c.exitBy)
	c.killed = true
	_ = c.proc.Signal(os.Kill)
	s := c.slot
	orphaned := s.cur == c
	if orphaned {
		s.cur = nil
	}
	l.rebalance() // its slots' connections go to other workers now
	if orphaned {
		l.crash(s)
	}
}

// stopHealth ends the ticks and every check in flight (the master stops).
func (l *loop) stopHealth() {
	l.stopTimer(&l.health.timer)
	if l.health.cancel != nil {
		l.health.cancel()
	}
}

// checkPrivate is the default health check: "OPTIONS *" on the worker's
// private socket; any HTTP response is an answer.
func checkPrivate(ctx context.Context, w WorkerInfo) error {
	if w.PrivateAddr == "" {
		return errNoPrivate
	}
	tr := PrivateTransport(w.PrivateAddr)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, "http://worker", nil)
	if err != nil {
		return err
	}
	req.URL = &url.URL{Scheme: "http", Host: "worker", Opaque: "*"}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	return resp.Body.Close()
}
