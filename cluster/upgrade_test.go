package cluster

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The upgrade's state machine driven with fake masters and workers: the
// old master's side (start, handover, rollback, refusal, stop) and the new
// master's (readiness to the old master, giving up, taking over).

type fakeMaster struct {
	pid     int
	spec    masterSpec
	onReady func()
	onExit  func(error)

	mu          sync.Mutex // guards sigs, handedOver, handoverErr, exited
	sigs        []os.Signal
	handedOver  bool
	handoverErr error
	exited      bool
}

func (m *fakeMaster) Pid() int { return m.pid }
func (m *fakeMaster) Signal(s os.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sigs = append(m.sigs, s)
	return nil
}
func (m *fakeMaster) Handover() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handoverErr != nil {
		return m.handoverErr
	}
	m.handedOver = true
	return nil
}
func (m *fakeMaster) signals() []os.Signal {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sigs)
}
func (m *fakeMaster) handed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handedOver
}

// upHarness is a harness whose loop starts fake new masters (pids from
// 900), sent on masters.
type upHarness struct {
	*harness
	masters chan *fakeMaster
}

func newUpHarness(t *testing.T, cfg Config, setup func(*loop)) *upHarness {
	t.Helper()
	u := &upHarness{masters: make(chan *fakeMaster, 10)}
	pid := 900
	var all []*fakeMaster
	u.harness = newHarnessWith(t, cfg, func(l *loop) {
		l.sys.startMaster = func(spec masterSpec, onReady func(), onExit func(error)) (masterProcess, error) {
			pid++
			m := &fakeMaster{pid: pid, spec: spec, onReady: onReady, onExit: onExit}
			all = append(all, m)
			u.masters <- m
			return m, nil
		}
		if setup != nil {
			setup(l)
		}
	})
	// Before the harness's cleanup (cleanups run last first): a new master
	// still running exits, so that the loop can end.
	t.Cleanup(func() {
		u.sync()
		for _, m := range all {
			m.mu.Lock()
			live := !m.handedOver && !m.exited
			m.exited = true
			m.mu.Unlock()
			if live {
				m.onExit(errors.New("signal: killed"))
			}
		}
	})
	return u
}

// upgrade asks for an upgrade and returns the started new master and the
// channel of the answer.
func (u *upHarness) upgrade() (*fakeMaster, chan upgradeResult) {
	u.t.Helper()
	reply := make(chan upgradeResult, 1)
	u.l.send(evUpgrade{why: "test upgrade", reply: reply})
	select {
	case m := <-u.masters:
		u.sync()
		return m, reply
	case r := <-reply:
		u.t.Fatalf("upgrade answered %+v without starting a new master", r)
	case <-time.After(5 * time.Second):
		u.t.Fatal("no new master started")
	}
	return nil, nil
}

func (u *upHarness) exitMaster(m *fakeMaster, err error) {
	m.mu.Lock()
	m.exited = true
	m.mu.Unlock()
	m.onExit(err)
	u.sync()
}

func answer(t *testing.T, reply chan upgradeResult) upgradeResult {
	t.Helper()
	select {
	case r := <-reply:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to the upgrade")
		return upgradeResult{}
	}
}

func noAnswer(t *testing.T, reply chan upgradeResult, when string) {
	t.Helper()
	select {
	case r := <-reply:
		t.Fatalf("%s: the upgrade answered %+v already", when, r)
	default:
	}
}

// The old master hands the new one its sockets and its pid, leaves its own
// workers alone until the new master reports ready, then hands over, stops
// its workers (each drains) and returns nil: the process exits 0.
func TestUpgradeHandsOverOnceTheNewMasterIsReady(t *testing.T) {
	u := newUpHarness(t, Config{Workers: 2}, nil)
	ps := u.startAll()
	m, reply := u.upgrade()
	if !slices.Equal(m.spec.Files, u.l.sockets) {
		t.Errorf("new master's files = %v, want the slot sockets %v", m.spec.Files, u.l.sockets)
	}
	for _, want := range []string{"CLUSTER_UPGRADE_FROM=" + strconv.Itoa(os.Getpid()), "CLUSTER_UPGRADE_SOCKETS=" + strconv.Itoa(len(u.l.sockets))} {
		if !slices.Contains(m.spec.Env, want) {
			t.Errorf("new master's env %q lacks %q", m.spec.Env, want)
		}
	}
	u.advance(u.l.cfg.ReadyTimeout - time.Millisecond)
	noAnswer(t, reply, "before the new master is ready")
	for _, p := range ps {
		if len(p.signals()) != 0 {
			t.Fatalf("old worker %d got %v before the new master was ready", p.pid, p.signals())
		}
	}
	m.onReady()
	u.sync()
	if r := answer(t, reply); r.err != nil || r.pid != m.pid {
		t.Fatalf("upgrade answered %+v, want the new master's pid %d", r, m.pid)
	}
	if !m.handed() {
		t.Error("the new master was not handed over")
	}
	for _, p := range ps {
		if !slices.Equal(p.signals(), []os.Signal{sigterm}) {
			t.Errorf("old worker %d got %v after the handover, want SIGTERM", p.pid, p.signals())
		}
	}
	u.noSpawn("after the handover")
	for _, p := range ps {
		p.exited = true
		u.exit(p, nil)
	}
	if err := u.result(); err != nil {
		t.Errorf("old master returned %v after the handover, want nil", err)
	}
	if len(m.signals()) != 0 {
		t.Errorf("the new master got %v, want nothing", m.signals())
	}
	if u.logCount("upgrade: new master ready; handing over") != 1 {
		t.Errorf("no handover in the log:\n%s", u.logs.String())
	}
}

// A new master that exits before it is ready is the rollback: the old
// workers are untouched, the answer and the log say why, and a later
// upgrade may start.
func TestUpgradeRollbackWhenTheNewMasterExits(t *testing.T) {
	u := newUpHarness(t, Config{Workers: 2}, nil)
	ps := u.startAll()
	m, reply := u.upgrade()
	u.exitMaster(m, errors.New("exit status 3"))
	r := answer(t, reply)
	if !errors.Is(r.err, ErrUpgradeAborted) || !strings.Contains(r.err.Error(), "exit status 3") {
		t.Errorf("upgrade answered %v, want ErrUpgradeAborted naming exit status 3", r.err)
	}
	for _, p := range ps {
		if len(p.signals()) != 0 {
			t.Errorf("old worker %d got %v in a rollback", p.pid, p.signals())
		}
	}
	if u.logCount(`msg="upgrade aborted; this master and its workers serve on"`) != 1 || u.logCount("exit status 3") == 0 {
		t.Errorf("the log does not say why the upgrade was aborted:\n%s", u.logs.String())
	}
	if u.l.stopping {
		t.Error("the old master is stopping after a rollback")
	}
	u.noSpawn("after a rollback")
	m2, reply2 := u.upgrade()
	m2.onReady()
	u.sync()
	if r := answer(t, reply2); r.err != nil || r.pid != m2.pid {
		t.Errorf("the next upgrade answered %+v, want pid %d", r, m2.pid)
	}
}

// A new master not ready within ReadyTimeout is stopped (SIGTERM, then
// SIGKILL after StopTimeout); the old master serves on.
func TestUpgradeRollbackOnReadyTimeout(t *testing.T) {
	u := newUpHarness(t, Config{Workers: 2, ReadyTimeout: 3 * time.Second, StopTimeout: 2 * time.Second}, nil)
	ps := u.startAll()
	m, reply := u.upgrade()
	u.advance(3 * time.Second)
	if !slices.Equal(m.signals(), []os.Signal{sigterm}) {
		t.Fatalf("new master got %v after the ready timeout, want SIGTERM", m.signals())
	}
	noAnswer(t, reply, "before the new master exited")
	// Ready now, too late: no handover.
	m.onReady()
	u.sync()
	if m.handed() {
		t.Fatal("a new master past its ready timeout was handed over")
	}
	u.advance(2 * time.Second)
	if !slices.Equal(m.signals(), []os.Signal{sigterm, sigkill}) {
		t.Fatalf("new master got %v after the stop timeout, want SIGTERM then SIGKILL", m.signals())
	}
	u.exitMaster(m, errors.New("signal: killed"))
	r := answer(t, reply)
	if !errors.Is(r.err, ErrUpgradeAborted) || !strings.Contains(r.err.Error(), "not ready within the ready timeout (3s)") {
		t.Errorf("upgrade answered %v, want ErrUpgradeAborted: not ready within the ready timeout (3s)", r.err)
	}
	for _, p := range ps {
		if len(p.signals()) != 0 {
			t.Errorf("old worker %d got %v in a rollback", p.pid, p.signals())
		}
	}
	if n := u.clock.pending(); n != 0 {
		t.Errorf("%d timers pending after the rollback, want 0", n)
	}
}

// One upgrade at a time: a second request while one runs is refused with
// ErrUpgradeUnderWay, and starts nothing.
func TestSecondUpgradeRefused(t *testing.T) {
	u := newUpHarness(t, Config{Workers: 2}, nil)
	u.startAll()
	m, reply := u.upgrade()
	second := make(chan upgradeResult, 1)
	u.l.send(evUpgrade{why: "second", reply: second})
	r := answer(t, second)
	if !errors.Is(r.err, ErrUpgradeUnderWay) || !strings.Contains(r.err.Error(), strconv.Itoa(m.pid)) {
		t.Errorf("second upgrade answered %v, want ErrUpgradeUnderWay naming new master %d", r.err, m.pid)
	}
	select {
	case m2 := <-u.masters:
		t.Errorf("a second new master %d started", m2.pid)
	default:
	}
	noAnswer(t, reply, "the first upgrade after a refused second one")
	// SIGUSR2's path takes the same turn, with nobody to answer.
	u.l.send(evUpgrade{why: "SIGUSR2: upgrade"})
	u.sync()
	if u.logCount(`msg="upgrade refused"`) != 2 {
		t.Errorf("want 2 refusals in the log:\n%s", u.logs.String())
	}
}

// A stop during an upgrade stops the new master too, and the loop returns
// only once it has exited.
func TestStopDuringUpgradeStopsTheNewMaster(t *testing.T) {
	u := newUpHarness(t, Config{Workers: 2}, nil)
	ps := u.startAll()
	m, reply := u.upgrade()
	u.stop()
	if !slices.Equal(m.signals(), []os.Signal{sigterm}) {
		t.Fatalf("new master got %v when the old one stops, want SIGTERM", m.signals())
	}
	for _, p := range ps {
		p.exited = true
		u.exit(p, nil)
	}
	select {
	case err := <-u.done:
		u.done <- err
		t.Fatalf("the loop returned (%v) before the new master exited", err)
	default:
	}
	u.exitMaster(m, nil)
	if r := answer(t, reply); !errors.Is(r.err, ErrUpgradeAborted) || !strings.Contains(r.err.Error(), "stopping") {
		t.Errorf("upgrade answered %v, want ErrUpgradeAborted: the master is stopping", r.err)
	}
	if err := u.result(); err != nil {
		t.Errorf("master returned %v, want nil", err)
	}
	// A request once stopping is refused at once.
	if _, err := u.l.upgrade(t.Context(), "late"); !errors.Is(err, ErrMasterStopping) {
		t.Errorf("upgrade after the stop = %v, want ErrMasterStopping", err)
	}
}

// Under systemd, the old master says it handed over, and nothing after:
// no STOPPING=1, no watchdog ping from a process that does not speak for
// the service any more (the new master names itself MAINPID=).
func TestUpgradeTellsSystemdTheNewMainPid(t *testing.T) {
	n := &fakeNotifier{}
	u := newUpHarness(t, Config{Workers: 1}, func(l *loop) { l.sd = &sdState{n: n, pid: 42} })
	ps := u.startAll()
	n.take()
	m, _ := u.upgrade()
	wantSent(t, n, "upgrade started", "STATUS=upgrading: new master 901 starting its workers")
	m.onReady()
	u.sync()
	wantSent(t, n, "at the handover", fmt.Sprintf("STATUS=upgraded: master 901 serves; old master %d drains its workers", os.Getpid()))
	ps[0].exited = true
	u.exit(ps[0], nil)
	u.result()
	wantSent(t, n, "after the handover")
}

// fakeParent records a new master's ready byte.
type fakeParent struct {
	mu     sync.Mutex // guards readys
	readys int
}

func (p *fakeParent) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readys++
	return nil
}

func (p *fakeParent) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readys
}

// childHarness is a new master (of an upgrade from master 7) whose
// systemd notifier is n.
func childHarness(t *testing.T, cfg Config) (*upHarness, *fakeParent, *fakeNotifier) {
	t.Helper()
	parent := &fakeParent{}
	n := &fakeNotifier{}
	u := newUpHarness(t, cfg, func(l *loop) {
		l.sd = &sdState{n: n, pid: 43}
		l.up.from = 7
		l.up.child = &upChild{parent: parent, oldPid: 7}
		l.holdSystemd()
	})
	return u, parent, n
}

// A new master tells the old one once every slot has a ready worker, says
// nothing to systemd until the handover (the old master speaks for the
// service), then pings and a STATUS, and READY=1 with its own MAINPID once
// the old master has exited.
func TestNewMasterReadyThenTakesOver(t *testing.T) {
	u, parent, n := childHarness(t, Config{Workers: 2})
	p1, p2 := u.spawned(), u.spawned()
	u.ready(p1)
	if parent.count() != 0 {
		t.Fatal("ready sent to the old master with one of two workers ready")
	}
	u.ready(p2)
	if parent.count() != 1 {
		t.Fatalf("ready sent %d times once every worker is ready, want 1", parent.count())
	}
	// Not the master yet: an upgrade of this one is refused.
	if _, err := u.l.upgrade(t.Context(), "too early"); !errors.Is(err, ErrUpgradeUnderWay) {
		t.Errorf("upgrade before the handover = %v, want ErrUpgradeUnderWay", err)
	}
	wantSent(t, n, "before the handover")
	pings := n.pinged()
	u.l.send(evUpHandover{})
	u.sync()
	wantSent(t, n, "at the handover", "STATUS=2 of 2 workers ready; upgraded from master 7, which drains")
	if n.pinged() != pings+1 {
		t.Errorf("watchdog pings at the handover: %d, want %d", n.pinged(), pings+1)
	}
	u.l.send(evUpParentGone{})
	u.sync()
	wantSent(t, n, "once the old master exited", "READY=1\nMAINPID=43\nSTATUS=2 of 2 workers ready; upgraded from master 7")
	if u.logCount("upgrade: the old master has exited") != 1 {
		t.Errorf("the old master's exit is not in the log:\n%s", u.logs.String())
	}
	// Now it is the master: it can be upgraded in turn.
	m, _ := u.upgrade()
	if m == nil {
		t.Fatal("no upgrade of the new master")
	}
}

// A new master whose worker exits before every slot is ready gives up:
// it stops its workers and returns an error (a non-zero exit, which the
// old master reports), and never tells the old master it is ready.
func TestNewMasterGivesUpWhenAWorkerExits(t *testing.T) {
	u, parent, n := childHarness(t, Config{Workers: 2})
	p1, p2 := u.spawned(), u.spawned()
	u.ready(p1)
	p2.exited = true
	u.exit(p2, errors.New("exit status 2"))
	if !u.l.stopping {
		t.Fatal("the new master is not stopping after its worker exited")
	}
	u.noSpawn("a new master that gave up")
	if !slices.Equal(p1.signals(), []os.Signal{sigterm}) {
		t.Errorf("its other worker got %v, want SIGTERM", p1.signals())
	}
	p1.exited = true
	u.exit(p1, nil)
	err := u.result()
	if err == nil || !strings.Contains(err.Error(), "worker 2") || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("new master returned %v, want an error naming worker 2 and its status", err)
	}
	if parent.count() != 0 {
		t.Error("a new master that gave up told the old one it was ready")
	}
	wantSent(t, n, "a new master that gave up")
}

// A new master whose old master died before the handover takes over: it is
// the only one left.
func TestNewMasterTakesOverWhenTheOldOneIsGone(t *testing.T) {
	u, _, n := childHarness(t, Config{Workers: 1})
	p := u.spawned()
	u.l.send(evUpParentGone{})
	u.sync()
	wantSent(t, n, "before it serves", "STATUS=0 of 1 workers ready; upgraded from master 7, which is gone")
	u.ready(p)
	got := n.take()
	if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "READY=1\nMAINPID=43") {
		t.Errorf("once serving sent %q, want READY=1 with MAINPID=43", got)
	}
}
