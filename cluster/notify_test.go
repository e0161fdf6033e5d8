package cluster

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNotifier records what the master tells systemd, one string per
// datagram (its fields joined by newlines; MONOTONIC_USEC= left out).
type fakeNotifier struct {
	interval time.Duration

	mu    sync.Mutex // guards sent
	sent  []string
	pings int
}

func (n *fakeNotifier) Notify(fields ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, strings.Join(fields, "\n"))
	return nil
}

func (n *fakeNotifier) Reloading(status string) error {
	return n.Notify("RELOADING=1", "STATUS="+status)
}

func (n *fakeNotifier) Watchdog() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pings++
	return nil
}

func (n *fakeNotifier) WatchdogInterval() time.Duration { return n.interval }

// take returns the datagrams sent since the last take.
func (n *fakeNotifier) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.sent
	n.sent = nil
	return out
}

func (n *fakeNotifier) pinged() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pings
}

// notifyHarness is a master of fake workers with a fake notifier whose
// master pid is 42.
func notifyHarness(t *testing.T, cfg Config, interval time.Duration) (*harness, *fakeNotifier) {
	t.Helper()
	n := &fakeNotifier{interval: interval}
	h := newHarnessWith(t, cfg, func(l *loop) { l.sd = &sdState{n: n, pid: 42} })
	return h, n
}

func wantSent(t *testing.T, n *fakeNotifier, what string, want ...string) {
	t.Helper()
	if got := n.take(); !slices.Equal(got, want) {
		t.Errorf("%s: sent %q, want %q", what, got, want)
	}
}

// READY=1 (with MAINPID, the master) only once every worker is ready;
// before that, STATUS lines count the ready ones.
func TestNotifyReadyOnlyAfterEveryWorker(t *testing.T) {
	h, n := notifyHarness(t, Config{Workers: 3}, 0)
	ps := []*fakeProc{h.spawned(), h.spawned(), h.spawned()}
	wantSent(t, n, "start", "STATUS=starting 3 workers")
	h.ready(ps[0])
	h.ready(ps[1])
	wantSent(t, n, "2 of 3 ready", "STATUS=1 of 3 workers ready", "STATUS=2 of 3 workers ready")
	h.ready(ps[2])
	wantSent(t, n, "every worker ready", "READY=1\nMAINPID=42\nSTATUS=3 of 3 workers ready")

	// A crash afterwards: the restart is a STATUS, never a second READY=1.
	h.exit(ps[1], errors.New("signal: killed"))
	p := h.spawned()
	h.ready(p)
	wantSent(t, n, "crash and restart", "STATUS=worker 2 restarting; 2 of 3 workers ready", "STATUS=3 of 3 workers ready")
	h.exit(p, errors.New("signal: killed"))
	wantSent(t, n, "second crash", "STATUS=worker 2 restarting in 100ms; 2 of 3 workers ready")
}

// A rolling reload: RELOADING=1 at its start, a STATUS per slot, READY=1
// when it has finished.
func TestNotifyReloadFinished(t *testing.T) {
	h, n := notifyHarness(t, Config{Workers: 2}, 0)
	ps := h.startAll()
	n.take()
	h.m.Reload()
	h.waitEvent(EventReloadStarted)
	wantSent(t, n, "reload start", "RELOADING=1\nSTATUS=reloading 1 of 2")
	h.replaceOne(ps[0])
	wantSent(t, n, "second slot", "STATUS=reloading 2 of 2")
	h.replaceOne(ps[1])
	h.waitEvent(EventReloaded)
	wantSent(t, n, "reload end", "READY=1\nSTATUS=2 of 2 workers ready; reload finished in 0s")
}

// An aborted reload also ends with READY=1 (the service is up, on its old
// workers), with a STATUS saying so.
func TestNotifyReloadAborted(t *testing.T) {
	h, n := notifyHarness(t, Config{Workers: 2}, 0)
	h.startAll()
	n.take()
	h.m.Reload()
	h.exit(h.spawned(), errors.New("exit status 1"))
	h.waitEvent(EventReloadFailed)
	wantSent(t, n, "aborted reload", "RELOADING=1\nSTATUS=reloading 1 of 2",
		"READY=1\nSTATUS=2 of 2 workers ready; reload aborted at worker 1 (new worker exited before it was ready), the old workers serve on")
}

// STOPPING=1 when the drain starts, then how many workers are left.
func TestNotifyStopping(t *testing.T) {
	h, n := notifyHarness(t, Config{Workers: 2}, 0)
	ps := h.startAll()
	n.take()
	h.stop()
	h.exit(ps[0], nil)
	h.exit(ps[1], nil)
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	wantSent(t, n, "stop", "STOPPING=1\nSTATUS=stopping: draining 2 workers",
		"STATUS=stopping: waiting for 1 worker", "STATUS=stopping: waiting for 0 workers")
}

// The watchdog pings come from the loop, every WatchdogInterval: while the
// loop is stuck, no ping is sent, however much time passes.
func TestNotifyWatchdogFromTheLoop(t *testing.T) {
	h, n := notifyHarness(t, Config{Workers: 1}, 500*time.Millisecond)
	h.startAll()
	h.advance(2 * time.Second)
	if got := n.pinged(); got != 4 {
		t.Fatalf("%d pings in 2s at one per 500ms, want 4", got)
	}

	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unstick := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unstick)                                      // before the harness's cleanup, which needs the loop
	go h.inspect(func(*loop) { close(entered); <-release }) // the loop is stuck in here
	<-entered
	advanced := make(chan struct{})
	go func() { h.advance(2 * time.Second); close(advanced) }()
	// The next ping's timer fires, but the loop does not take its event:
	// no ping until the loop goes on.
	deadline := time.Now().Add(5 * time.Second)
	for h.clock.pending() > 0 && n.pinged() == 4 {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog timer did not fire")
		}
		time.Sleep(time.Millisecond)
	}
	if got := n.pinged(); got != 4 {
		t.Errorf("%d pings while the loop was stuck, want still 4", got)
	}
	unstick()
	<-advanced
	if got := n.pinged(); got != 8 {
		t.Errorf("%d pings once the loop went on, want 8", got)
	}
}

// A reload asked by a control command is answered when it has ended: nil
// when it finished, ErrReloadAborted when it was given up; one asked during
// a reload waits for the one more reload that follows; a stop answers
// ErrMasterStopping.
func TestReloadWaitsForItsReload(t *testing.T) {
	h := newHarness(t, Config{Workers: 1})
	ps := h.startAll()
	ask := func() chan error {
		reply := make(chan error, 1)
		h.l.send(evReloadWait{reply})
		h.sync()
		return reply
	}
	none := func(c chan error, what string) {
		t.Helper()
		select {
		case err := <-c:
			t.Fatalf("%s: answered %v before its reload ended", what, err)
		default:
		}
	}
	first := ask()
	none(first, "first")
	n := h.spawned()
	second := ask() // during the first reload: waits for the next one
	h.ready(n)
	h.exit(ps[0], nil)
	if err := <-first; err != nil {
		t.Errorf("first reload answered %v, want nil", err)
	}
	none(second, "second")
	h.exit(h.spawned(), errors.New("exit status 1")) // the follow-up is aborted
	if err := <-second; !errors.Is(err, ErrReloadAborted) {
		t.Errorf("aborted reload answered %v, want ErrReloadAborted", err)
	}
	third := ask()
	h.spawned()
	h.cancel()
	if err := <-third; !errors.Is(err, ErrMasterStopping) {
		t.Errorf("reload interrupted by the stop answered %v, want ErrMasterStopping", err)
	}
}

// NoSystemd turns off what the master does for systemd, but its workers
// still must not see systemd's variables: a worker that found NOTIFY_SOCKET
// or LISTEN_FDS would notify systemd in the service's name or take the
// sockets for its own.
func TestNoSystemdStillCleansTheWorkersEnvironment(t *testing.T) {
	env := []string{"PATH=/bin", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000000", "WATCHDOG_PID=1",
		"LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web", "HOME=/root"}
	cfg := Config{NoSystemd: true, Env: env}
	sd, files, err := takeSystemd(&cfg)
	if err != nil || sd != nil || files != nil {
		t.Fatalf("takeSystemd with NoSystemd = %v, %v, %v; want nothing taken", sd, files, err)
	}
	if want := []string{"PATH=/bin", "HOME=/root"}; !slices.Equal(cfg.Env, want) {
		t.Errorf("workers' environment with NoSystemd: got %v, want %v", cfg.Env, want)
	}
}
