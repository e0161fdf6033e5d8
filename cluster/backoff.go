package cluster

import (
	"errors"
	"fmt"
	"time"
)

// ErrNeverReady is wrapped by Run's error when a slot gave up: none of its
// workers was ever ready, and Config.MaxFailedStarts starts in a row failed
// (the worker could not be started, exited before it was ready, or was not
// ready within ReadyTimeout). Run stopped every worker first. It is what a
// broken deploy looks like: the error says which worker and why.
var ErrNeverReady = errors.New("cluster: a worker was never ready")

// crash records a crash of slot s (its current worker exited, or could not
// be started) and schedules its restart after a delay that grows with the
// crashes of that slot in the last CrashWindow.
func (l *loop) crash(s *slot) {
	now := l.sys.now()
	s.crashes = recordCrash(s.crashes, now, l.cfg.CrashWindow)
	delay := backoff(len(s.crashes), l.cfg.MaxBackoff)
	l.log.Warn("restarting worker", "worker", s.id, "delay", delay, "crashes_in_window", len(s.crashes), "window", l.cfg.CrashWindow)
	l.sd.restarting(l, s, delay)
	if delay == 0 {
		l.fill(s, true)
		return
	}
	l.stopTimer(&s.restart)
	s.restart = l.after(delay, func(t *timer) event { return evRestart{s, t} })
}

// failedStart counts a failed start of slot s (its worker could not be
// started, exited before it was ready, or was not ready in time). Once a
// slot none of whose workers was ever ready has failed MaxFailedStarts
// times, the master gives up: it stops and Run returns an error wrapping
// ErrNeverReady. It reports whether it gave up.
func (l *loop) failedStart(s *slot, why string) bool {
	if s.served {
		return false
	}
	s.failed++
	s.why = why
	if l.cfg.MaxFailedStarts < 0 || s.failed < l.cfg.MaxFailedStarts {
		return false
	}
	l.err = fmt.Errorf("%w: worker %d failed %d starts in a row (last: %s)", ErrNeverReady, s.id, s.failed, why)
	l.log.Error("giving up: a worker was never ready", "worker", s.id, "failed_starts", s.failed, "last", why)
	l.stop()
	return true
}

// recordCrash appends now to crashes and drops those older than window, so
// that only recent crashes count: rare crashes over weeks never add up.
func recordCrash(crashes []time.Time, now time.Time, window time.Duration) []time.Time {
	kept := crashes[:0]
	for _, t := range crashes {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	return append(kept, now)
}

// backoff is the restart delay after the k-th crash in the window: 0 for
// the first, then 100ms doubling, capped at limit.
func backoff(k int, limit time.Duration) time.Duration {
	if k <= 1 {
		return 0
	}
	d := 100 * time.Millisecond
	for i := 2; i < k && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
