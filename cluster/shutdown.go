package cluster

import (
	"context"
	"sync"
	"time"
)

// The master's stop in two steps, for balancers that health-check:
//
//  1. every worker is told the cluster is stopping (its lifeline state says
//     "stopping": Worker.Stopping is closed) and serves on as before, so
//     that a readiness endpoint answering "not ready" takes the cluster out
//     of a balancer's rotation while requests still succeed;
//  2. Config.ShutdownDelay later, each worker gets SIGTERM and drains as it
//     would without the delay.
//
// A rolling reload's old worker skips step 1: its slot's socket stays open
// and another worker serves it, so the cluster stays ready.

// evShutdownDelay: the master's ShutdownDelay is over; its workers drain now.
type evShutdownDelay struct{}

// stopWorkers tells every worker the cluster stops, then sends them SIGTERM
// at once, or after Config.ShutdownDelay.
func (l *loop) stopWorkers() {
	for _, c := range l.sorted() {
		if !c.stopped && !c.gone {
			c.toldStop = true
		}
	}
	l.tellAdoptions()
	if l.cfg.ShutdownDelay <= 0 || len(l.children) == 0 {
		l.terminateAll()
		return
	}
	l.log.Info("workers serve on, not ready, before they drain", "shutdown_delay", l.cfg.ShutdownDelay)
	l.after(l.cfg.ShutdownDelay, func(*timer) event { return evShutdownDelay{} })
}

// terminateAll sends SIGTERM to every worker not yet told to stop.
func (l *loop) terminateAll() {
	for _, c := range l.sorted() {
		l.terminate(c)
	}
}

// stopSignal is a channel closed once, made on first use.
type stopSignal struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

func (s *stopSignal) c() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.ch
}

func (s *stopSignal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	select {
	case <-s.ch:
	default:
		close(s.ch)
	}
}

// init makes the channel; s.mu is held.
func (s *stopSignal) init() {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
}

// Stopping is closed once the cluster stops taking traffic: the master
// began its stop (its workers serve on for Config.ShutdownDelay, then
// drain), or the master is gone. A worker's readiness endpoint should
// answer "not ready" from then on. A rolling reload does not close it: the
// slot's socket stays open and the new worker serves it.
func (w *Worker) Stopping() <-chan struct{} { return w.stopping.c() }

// delayStop is the in-process worker's step 1 (no master: the stop signal
// reaches this process): the returned context is done ShutdownDelay after
// ctx, or at once when force is closed; Stopping is closed when ctx is
// done. cancel releases it.
func (w *Worker) delayStop(ctx context.Context, delay time.Duration, force <-chan struct{}) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
		case <-dctx.Done():
			return
		}
		w.stopping.fire()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-force:
		case <-dctx.Done():
		}
		cancel()
	}()
	return dctx, func() { cancel(); <-done }
}
