package cluster

import (
	"errors"
	"os"
	"slices"
	"strings"
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

// A restart timer that had fired when a reload filled its slot delivers
// its event late, after the reload's worker crashed and a longer delay
// began: that late event is stale and restarts nothing before the delay.
func TestLateRestartTimerIsDropped(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, MaxBackoff: 10 * time.Second})
	ps := h.startAll()
	h.exit(ps[0], errors.New("exit status 1"))       // crash 1: restart at once
	h.exit(h.spawned(), errors.New("exit status 1")) // crash 2: restart in 100ms
	late := h.fireLate(100 * time.Millisecond)       // it fires; its event is on its way
	if len(late) != 1 {
		t.Fatalf("%d timers fired, want the restart's", len(late))
	}
	h.l.send(evReload{})
	n := h.spawned()                       // the reload's new worker for slot 1
	h.ready(n)                             // takes the slot, stops the restart timer (too late)
	h.spawned()                            // the reload goes on with slot 2
	h.exit(n, errors.New("exit status 1")) // crash 3: restart in 200ms
	late[0].f()                            // the stale event arrives
	h.noSpawn("a stale restart event, before the 200ms delay")
	h.advance(200*time.Millisecond - time.Millisecond)
	h.noSpawn("before the 200ms delay")
	h.advance(time.Millisecond)
	h.spawned()
}

// A slot's first worker that is never ready is stopped after ReadyTimeout
// (then killed past StopTimeout) and counts as a failed start: it is
// restarted after its backoff.
func TestNeverReadyAtStartIsStopped(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, ReadyTimeout: 15 * time.Second, StopTimeout: 5 * time.Second})
	p1, p2 := h.spawned(), h.spawned()
	h.ready(p2)
	h.advance(15*time.Second - time.Millisecond)
	if len(p1.signals()) != 0 {
		t.Fatal("the worker was stopped before the ready timeout")
	}
	h.advance(time.Millisecond)
	if !slices.Equal(p1.signals(), []os.Signal{sigterm}) {
		t.Fatalf("worker not ready within the ready timeout got %v, want SIGTERM", p1.signals())
	}
	h.advance(5 * time.Second)
	if !has(p1.signals(), sigkill) {
		t.Fatalf("worker past the stop timeout got %v, want SIGKILL", p1.signals())
	}
	h.exit(p1, errors.New("signal: killed"))
	if n := h.logCount("reason=\"not ready in time\""); n != 1 {
		t.Errorf("%d exits logged as not ready in time, want 1", n)
	}
	p := h.spawned() // the first failed start: at once
	h.ready(p)
	h.waitEvent(EventServing)
	if len(p2.signals()) != 0 {
		t.Errorf("the ready worker got %v", p2.signals())
	}
}

// A slot none of whose workers was ever ready gives up after
// MaxFailedStarts failed starts: every worker is stopped and Run returns an
// error wrapping ErrNeverReady that says which worker and why.
func TestNeverReadyGivesUp(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, MaxFailedStarts: 3, MaxBackoff: time.Second})
	p1, p2 := h.spawned(), h.spawned()
	h.ready(p2)
	h.exitSaying(p1, errors.New("exit status 1"), "listen tcp :99: permission denied")
	h.exitSaying(h.spawned(), errors.New("exit status 1"), "listen tcp :99: permission denied")
	h.advance(100 * time.Millisecond)
	p3 := h.spawned()
	if len(p2.signals()) != 0 {
		t.Fatal("the master stopped before the last failed start")
	}
	h.exitSaying(p3, errors.New("exit status 1"), "listen tcp :99: permission denied")
	if !slices.Equal(p2.signals(), []os.Signal{sigterm}) {
		t.Fatalf("after 3 failed starts the other worker got %v, want SIGTERM", p2.signals())
	}
	h.noSpawn("after giving up")
	h.exit(p2, nil)
	err := h.result()
	if !errors.Is(err, ErrNeverReady) || !strings.Contains(err.Error(), "worker 1") || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Run = %v, want ErrNeverReady naming worker 1 and its last words", err)
	}
}

// A slot that was served once restarts forever: the start policy is for
// broken deploys, not for crashes.
func TestServedSlotNeverGivesUp(t *testing.T) {
	h := newHarness(t, Config{Workers: 1, MaxFailedStarts: 2, MaxBackoff: 100 * time.Millisecond})
	p := h.spawned()
	h.ready(p)
	for range 5 {
		h.exit(p, errors.New("exit status 1"))
		h.advance(100 * time.Millisecond)
		p = h.spawned()
	}
}
