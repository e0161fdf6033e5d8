package cluster

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitStatusErr is an exit status as os/exec reports it: its Sys is the
// wait status.
type waitStatusErr struct{ ws syscall.WaitStatus }

func (e waitStatusErr) Error() string { return "signal: " + e.ws.Signal().String() }
func (e waitStatusErr) Sys() any      { return e.ws }

// diedOf is the exit status of a process killed by sig.
func diedOf(sig syscall.Signal) error { return waitStatusErr{syscall.WaitStatus(sig)} }

// Every exit says why: a crash is logged at WARN with the worker's last
// words and counted for the backoff; a stop, a replacement, a kill and an
// operator's signal say so.
func TestExitReasons(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, StopTimeout: time.Second})
	ps := h.startAll()
	h.events = make(chan Event, 1000)
	h.exitSaying(ps[0], errors.New("exit status 2"), "panic: runtime error: index out of range")
	e := h.waitEvent(EventExited)
	if e.Reason != ExitCrashed || e.LastWords != "panic: runtime error: index out of range" {
		t.Errorf("crash: reason %v, last words %q", e.Reason, e.LastWords)
	}
	if !strings.Contains(h.logs.String(), `level=WARN msg="worker exited" worker=1`) ||
		!strings.Contains(h.logs.String(), `reason=crashed last_words="panic: runtime error: index out of range"`) {
		t.Errorf("the crash is not logged at WARN with its reason and last words:\n%s", h.logs)
	}
	p1 := h.spawned()
	h.ready(p1)

	// An operator's SIGTERM, the worker dying of it: no crash; restarted
	// at once although slot 1 crashed a moment ago.
	h.exit(p1, diedOf(syscall.SIGTERM))
	if e := h.waitEvent(EventExited); e.Reason != ExitSignaled {
		t.Errorf("a worker killed by an outside SIGTERM: reason %v, want %v", e.Reason, ExitSignaled)
	}
	p1 = h.spawned()
	h.ready(p1)
	// The same, drained: it says so in its last words.
	h.exitSaying(p1, nil, stoppedOutside)
	if e := h.waitEvent(EventExited); e.Reason != ExitSignaled {
		t.Errorf("a worker stopped from outside: reason %v, want %v", e.Reason, ExitSignaled)
	}
	p1 = h.spawned()
	h.ready(p1)
	if n := len(h.l.slots[0].crashes); n != 1 {
		t.Errorf("%d crashes counted for slot 1, want 1 (signals are not crashes)", n)
	}
	// SIGKILL from outside (the OOM killer) is a crash.
	h.exit(p1, diedOf(syscall.SIGKILL))
	if e := h.waitEvent(EventExited); e.Reason != ExitCrashed {
		t.Errorf("a worker killed by SIGKILL: reason %v, want crashed", e.Reason)
	}
	h.advance(100 * time.Millisecond)
	p1 = h.spawned()
	h.ready(p1)

	h.m.Reload()
	n1 := h.spawned()
	h.ready(n1)
	h.exit(p1, nil)
	if e := h.waitEvent(EventExited); e.Reason != ExitReplaced {
		t.Errorf("a replaced worker: reason %v", e.Reason)
	}
	n2 := h.spawned()
	h.ready(n2)
	h.stop() // ps[1], the old worker of slot 2, is being replaced
	h.exit(ps[1], nil)
	if e := h.waitEvent(EventExited); e.Reason != ExitReplaced {
		t.Errorf("a worker replaced, then stopped: reason %v", e.Reason)
	}
	h.exit(n1, nil)
	if e := h.waitEvent(EventExited); e.Reason != ExitStopped {
		t.Errorf("a stopped worker: reason %v", e.Reason)
	}
	h.advance(time.Second)
	h.exit(n2, errors.New("signal: killed"))
	if e := h.waitEvent(EventExited); e.Reason != ExitKilled {
		t.Errorf("a worker killed past the stop timeout: reason %v", e.Reason)
	}
}
