// Package admission bounds how many CPU-heavy requests compute at once and
// how many may wait for a turn. Beyond that, callers get ErrBusy at once, so a
// burst of heavy requests becomes fast 503s instead of an ever-growing queue.
package admission

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrBusy means every compute slot is taken and the wait queue is full.
var ErrBusy = errors.New("all compute slots busy and the wait queue is full")

// Limiter is a semaphore of compute slots with a bounded wait queue.
type Limiter struct {
	slots   chan struct{} // a token per busy slot
	queue   chan struct{} // a token per waiting caller
	waiting atomic.Int64
}

// New returns a Limiter with slots compute slots (at least 1) and room for
// queue waiting callers (0 means none wait: busy is answered at once).
func New(slots, queue int) *Limiter {
	return &Limiter{slots: make(chan struct{}, max(slots, 1)), queue: make(chan struct{}, max(queue, 0))}
}

// Acquire takes a compute slot, waiting in the queue if there is room. It
// returns ErrBusy when the queue is full, or ctx.Err() if ctx ends first. The
// returned release must be called exactly once.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	default:
	}
	select {
	case l.queue <- struct{}{}:
	default:
		return nil, ErrBusy
	}
	l.waiting.Add(1)
	defer func() {
		l.waiting.Add(-1)
		<-l.queue
	}()
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *Limiter) release() { <-l.slots }

// Busy is the number of slots in use.
func (l *Limiter) Busy() int { return len(l.slots) }

// Waiting is the number of callers waiting for a slot.
func (l *Limiter) Waiting() int { return int(l.waiting.Load()) }

// Slots is the number of compute slots.
func (l *Limiter) Slots() int { return cap(l.slots) }
