package cluster

import (
	"testing"
	"time"
)

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	const limit = 10 * time.Second
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, limit, limit}
	for k, w := range want {
		if got := backoff(k, limit); got != w {
			t.Errorf("backoff(%d) = %s, want %s", k, got, w)
		}
	}
	// Many crashes: still the cap, no overflow into a negative or zero delay.
	for _, k := range []int{50, 64, 1000, 1 << 30} {
		if got := backoff(k, limit); got != limit {
			t.Errorf("backoff(%d) = %s, want the cap %s", k, got, limit)
		}
	}
	if got := backoff(5, 150*time.Millisecond); got != 150*time.Millisecond {
		t.Errorf("backoff(5, 150ms) = %s, want 150ms", got)
	}
}

func TestRecordCrashIsWindowed(t *testing.T) {
	const window = time.Minute
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c []time.Time
	c = recordCrash(c, t0, window)
	c = recordCrash(c, t0.Add(30*time.Second), window)
	if len(c) != 2 {
		t.Fatalf("2 crashes within a minute: count %d, want 2", len(c))
	}
	c = recordCrash(c, t0.Add(61*time.Second), window)
	if len(c) != 2 {
		t.Fatalf("after the first crash left the window: count %d, want 2", len(c))
	}
	if got := backoff(len(c), 10*time.Second); got != 100*time.Millisecond {
		t.Errorf("delay = %s, want 100ms", got)
	}
}

// A long-lived master with a rare crash (one every 2 minutes, for weeks)
// restarts at once every time: the count never builds up.
func TestRecordCrashRareCrashesNeverAddUp(t *testing.T) {
	const window = time.Minute
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c []time.Time
	for i := range 30 * 24 * 30 { // a month
		c = recordCrash(c, now, window)
		if len(c) != 1 || backoff(len(c), 10*time.Second) != 0 {
			t.Fatalf("crash %d, 2 minutes after the previous: count %d, want 1 (no delay)", i, len(c))
		}
		now = now.Add(2 * time.Minute)
	}
}

// A crash loop (a crash every 10ms) reaches the cap and stays there; once
// it stops for longer than the window, the next crash restarts at once.
func TestRecordCrashLoopThenQuiet(t *testing.T) {
	const window, limit = time.Minute, 10 * time.Second
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c []time.Time
	var last time.Duration
	for range 100 {
		c = recordCrash(c, now, window)
		d := backoff(len(c), limit)
		if d < last {
			t.Fatalf("delay went down from %s to %s during a crash loop", last, d)
		}
		last = d
		now = now.Add(10 * time.Millisecond)
	}
	if last != limit {
		t.Fatalf("delay after 100 quick crashes = %s, want the cap %s", last, limit)
	}
	c = recordCrash(c, now.Add(window+time.Second), window)
	if got := backoff(len(c), limit); got != 0 {
		t.Errorf("first crash after a quiet window: delay %s, want 0", got)
	}
}
