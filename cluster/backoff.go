package cluster

import "time"

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
	s.restart = l.after(delay, evRestart{s})
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
