package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A deterministic simulation of the master, in the spirit of FoundationDB's
// simulator and etcd raft's interaction tests: a seeded scheduler drives the
// real loop, with fake children and the fake clock, through a random
// schedule (workers ready or never ready, crashing, stopped by an outside
// signal, slow to exit; timers firing, some late; reloads from every entry
// point; stops and forced stops; starts that fail), and after every step
// checks what the package doc promises. Every step is one event the loop
// handles before the next is sent, so a seed replays exactly:
//
//	go test ./cluster -run TestSimulation -sim.seed=N -v
var (
	simSeed  = flag.Uint64("sim.seed", 0, "TestSimulation: replay this schedule only, with the master's log")
	simCount = flag.Int("sim.n", 0, "TestSimulation: number of schedules (default 10000; 1000 with -short or -race)")
)

func TestSimulation(t *testing.T) {
	if *simSeed != 0 {
		if err := runSim(*simSeed, true, t); err != nil {
			t.Fatalf("seed %d: %v", *simSeed, err)
		}
		return
	}
	n := 10000
	if testing.Short() || raceEnabled {
		n = 1000
	}
	if *simCount > 0 {
		n = *simCount
	}
	base := uint64(time.Now().UnixNano())
	start := time.Now()
	for i := range n {
		seed := base + uint64(i)
		if err := runSim(seed, false, t); err != nil {
			t.Fatalf("schedule %d of %d failed: %v\nreplay it: go test ./cluster -run TestSimulation -sim.seed=%d -v", i+1, n, err, seed)
		}
	}
	took := time.Since(start)
	t.Logf("%d schedules in %s (%.0f/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
}

// simProc is one fake worker process of a schedule.
type simProc struct {
	s        *sim
	pid      int
	slot     int
	onReady  func()
	onExit   func(error, string)
	readied  bool      // the sim reported it ready
	exited   bool      // the sim reported its exit
	termAt   time.Time // when the master first sent it SIGTERM
	termed   bool
	killed   bool     // the master sent it SIGKILL
	told     []string // its lifeline lines
	reloaded bool     // a reload's new worker
}

func (p *simProc) Pid() int { return p.pid }

// Signal checks, as the master sends it, that the signal is allowed: SIGTERM
// only to a worker being stopped, replaced or not ready; SIGKILL only on a
// forced stop or StopTimeout after its SIGTERM.
func (p *simProc) Signal(sig os.Signal) error {
	s := p.s
	c := s.child(p.pid)
	switch sig {
	case syscall.SIGTERM:
		if c != nil && c.ready && !s.l.stopping && !c.replaced {
			s.failf("SIGTERM to worker %d (slot %d), ready and in service, outside a stop or a replacement", p.pid, p.slot)
		}
		if !p.termed {
			p.termed, p.termAt = true, s.clock.time()
		}
	case os.Kill:
		if !s.forced && (!p.termed || s.clock.time().Sub(p.termAt) < s.cfg.StopTimeout) {
			s.failf("SIGKILL to worker %d before its stop timeout (SIGTERM at %v, now %v) and without a forced stop", p.pid, p.termAt, s.clock.time())
		}
		if s.l.stopping && !s.forced && s.wantErr == nil {
			s.wantErr = ErrStopTimeout
		}
		p.killed = true
	default:
		s.failf("signal %v sent to worker %d", sig, p.pid)
	}
	return nil
}

func (p *simProc) Tell(line string) { p.told = append(p.told, line) }

// sim is one schedule.
type sim struct {
	rng    *rand.Rand
	cfg    Config
	l      *loop
	m      *Master
	clock  *fakeClock
	cancel context.CancelFunc
	force  chan struct{}
	hup    chan os.Signal
	done   chan error
	procs  []*simProc
	late   []*fakeTimer // fired timers whose events are not delivered yet

	failNext bool // the next start fails
	stopped  bool // the sim cancelled the master's ctx
	forced   bool // the sim closed Force
	ended    bool // run returned
	wantErr  error
	waiters  []simWaiter
	adopters map[*slot]*child // each slot's adopter at the last check
	trace    []string
	fail     error

	// The model, per slot (index slot-1).
	notBefore []time.Time   // no restart before this
	crashes   [][]time.Time // counted crashes, as the doc says: within CrashWindow
	excused   []bool        // the slot's worker crashed or failed: it may lack a ready worker
	failed    []int         // failed starts while never served
	served    []bool
}

type simWaiter struct {
	reply   chan error
	reloads int64 // Stats.Reloads when asked
}

func (s *sim) failf(format string, args ...any) {
	if s.fail == nil {
		s.fail = fmt.Errorf("step %d: "+format, append([]any{len(s.trace)}, args...)...)
	}
}

func (s *sim) step(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%v %s", s.clock.time().Format("05.000"), fmt.Sprintf(format, args...)))
}

// child is the loop's child of pid (loop goroutine only).
func (s *sim) child(pid int) *child {
	for c := range s.l.children {
		if c.pid == pid {
			return c
		}
	}
	return nil
}

func runSim(seed uint64, verbose bool, t *testing.T) (err error) {
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		force: make(chan struct{}), hup: make(chan os.Signal, 1), done: make(chan error, 1)}
	workers := 1 + s.rng.IntN(4)
	s.cfg = Config{Workers: workers, SharedSocket: s.rng.IntN(8) == 0, ReadyTimeout: time.Second, StopTimeout: 2 * time.Second,
		CrashWindow: 10 * time.Second, MaxBackoff: time.Second, MaxFailedStarts: []int{-1, 2, 3, 5}[s.rng.IntN(4)],
		Exe: "worker", Args: []string{}, Env: []string{}}
	var logs strings.Builder
	s.cfg.Logger = slog.New(slog.DiscardHandler)
	if verbose {
		s.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		defer func() { t.Logf("schedule:\n%s\nmaster log:\n%s", strings.Join(s.trace, "\n"), logs.String()) }()
	}
	s.cfg.OnEvent = func(e Event) {
		if s.ended {
			s.failf("event %v after the loop ended", e.Kind)
		}
	}
	if err := s.cfg.setDefaults(); err != nil {
		return err
	}
	n := workers
	if s.cfg.SharedSocket {
		n = 1
	}
	socks := make([]*os.File, n)
	for i := range socks {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		w.Close()
		socks[i] = r
		defer r.Close()
	}
	var table *connTable
	if workers > 1 {
		if table, err = createTable(min(maxEntries, 4*workers)); err != nil {
			return err
		}
		defer table.close()
	}
	s.notBefore = make([]time.Time, workers)
	s.crashes = make([][]time.Time, workers)
	s.excused = make([]bool, workers)
	s.failed = make([]int, workers)
	s.served = make([]bool, workers)
	sy := sys{start: s.start, now: s.clock.time, afterFunc: s.clock.afterFunc, wait: func() {}}
	s.l = newLoop(s.cfg, sy, socks, table)
	s.l.hup = s.hup
	s.l.ownSockets = s.rng.IntN(4) > 0 // else given: Config.Files, systemd's
	s.m = &Master{l: s.l}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	defer cancel()
	if s.rng.IntN(50) == 0 {
		// Stopped before it started: no worker, nil at once.
		s.step("stop before the start")
		s.stopped = true
		cancel()
	}
	go func() { s.done <- s.l.run(ctx, s.force) }()
	s.sync()
	s.play(30 + s.rng.IntN(60))
	s.finish()
	if s.fail != nil {
		tail := s.trace[max(0, len(s.trace)-30):]
		return fmt.Errorf("%w\nlast steps:\n  %s", s.fail, strings.Join(tail, "\n  "))
	}
	return nil
}

// start is the sys's start: it runs in the loop's goroutine, inside spawn.
func (s *sim) start(spec spawnSpec, onReady func(), onExit func(error, string)) (process, error) {
	l, i := s.l, spec.Slot-1
	r := l.reload
	reloadSpawn := r != nil && r.fresh == nil && r.old == nil && l.slots[r.next].id == spec.Slot
	if s.ended {
		s.failf("worker started after the loop ended")
	}
	if l.stopping || s.stopped {
		s.failf("worker started for slot %d during the stop (ctx done)", spec.Slot)
	}
	if !reloadSpawn && s.clock.time().Before(s.notBefore[i]) {
		s.failf("slot %d restarted at %v, before its backoff allows (%v)", spec.Slot, s.clock.time(), s.notBefore[i])
	}
	if s.failNext {
		s.failNext = false
		if !reloadSpawn {
			s.countCrash(i, true)
		}
		return nil, errors.New("exec: no such file")
	}
	p := &simProc{s: s, pid: 1000 + len(s.procs), slot: spec.Slot, onReady: onReady, onExit: onExit, reloaded: reloadSpawn}
	s.procs = append(s.procs, p)
	return p, nil
}

// countCrash records a counted crash (or failed start) of slot index i,
// as backoff.go documents it.
func (s *sim) countCrash(i int, failedStart bool) {
	now := s.clock.time()
	s.excused[i] = true
	if failedStart && !s.served[i] {
		s.failed[i]++
		if m := s.cfg.MaxFailedStarts; m > 0 && s.failed[i] >= m {
			s.wantErr = ErrNeverReady // the master gives up: it stops
			return
		}
	}
	s.crashes[i] = recordCrash(s.crashes[i], now, s.cfg.CrashWindow)
	s.notBefore[i] = now.Add(backoff(len(s.crashes[i]), s.cfg.MaxBackoff))
}

// inspect runs f in the loop, once it has handled everything sent before.
func (s *sim) inspect(f func(*loop)) bool {
	done := make(chan struct{})
	s.l.send(evSync{done, f})
	select {
	case <-done:
		return true
	case <-s.l.done:
		return false
	}
}

// sync waits until the loop has handled everything sent, then checks the
// invariants.
func (s *sim) sync() {
	if s.ended {
		return
	}
	if !s.inspect(s.check) {
		s.end()
	}
}

// end notes that the loop has returned and checks how.
func (s *sim) end() {
	err := <-s.done
	s.ended = true
	s.step("run returned %v", err)
	for _, p := range s.procs {
		if !p.exited {
			s.failf("run returned while worker %d had not exited", p.pid)
		}
	}
	if !s.stopped && !s.forced && s.wantErr == nil {
		s.failf("run returned %v, but nobody stopped it", err)
	}
	switch {
	case s.wantErr == nil && err != nil:
		s.failf("run returned %v, want nil", err)
	case s.wantErr != nil && !errors.Is(err, s.wantErr):
		s.failf("run returned %v, want %v", err, s.wantErr)
	}
	for _, w := range s.waiters {
		select {
		case <-w.reply:
		default:
			s.failf("a control reload waiter was never answered")
		}
	}
	// Nothing is handled after the loop ended: late events go nowhere.
	for _, tm := range s.late {
		tm.f()
	}
	for _, p := range s.procs {
		p.onReady()
	}
	s.m.Reload()
	s.late = nil
}

// play runs steps random steps.
func (s *sim) play(steps int) {
	for range steps {
		if s.ended || s.fail != nil {
			return
		}
		s.act()
	}
}

// live are the procs not exited, by pid.
func (s *sim) live(f func(*simProc) bool) []*simProc {
	var out []*simProc
	for _, p := range s.procs {
		if !p.exited && f(p) {
			out = append(out, p)
		}
	}
	return out
}

func (s *sim) pick(ps []*simProc) *simProc {
	if len(ps) == 0 {
		return nil
	}
	return ps[s.rng.IntN(len(ps))]
}

func (s *sim) act() {
	switch k := s.rng.IntN(100); {
	case k < 25: // a worker reports ready
		if p := s.pick(s.live(func(p *simProc) bool { return !p.readied })); p != nil {
			s.ready(p)
		}
	case k < 33: // a worker crashes
		if p := s.pick(s.live(func(*simProc) bool { return true })); p != nil {
			s.exit(p, errTest, "panic: simulated")
		}
	case k < 36: // an operator's SIGTERM kills a worker
		if p := s.pick(s.live(func(*simProc) bool { return true })); p != nil {
			s.exit(p, diedOf(syscall.SIGTERM), "")
		}
	case k < 50: // a worker told to stop exits (some are slow: they wait)
		if p := s.pick(s.live(func(p *simProc) bool { return p.termed || p.killed })); p != nil {
			var err error
			if p.killed {
				err = errors.New("signal: killed")
			}
			s.exit(p, err, "")
		}
	case k < 68: // time passes
		s.advance(time.Duration(s.rng.IntN(1500)) * time.Millisecond)
	case k < 72: // a late timer event arrives
		if len(s.late) > 0 {
			i := s.rng.IntN(len(s.late))
			tm := s.late[i]
			s.late = slices.Delete(s.late, i, i+1)
			s.step("late timer event delivered")
			tm.f()
			s.sync()
		}
	case k < 76:
		s.step("Master.Reload")
		s.m.Reload()
		s.await("take Master.Reload's request", func(l *loop) bool { return len(l.reloads) == 0 })
	case k < 79:
		s.step("SIGHUP")
		select {
		case s.hup <- syscall.SIGHUP:
		default:
		}
		s.await("take SIGHUP", func(l *loop) bool { return len(s.hup) == 0 })
	case k < 82:
		s.step("control: reload, waiting")
		w := simWaiter{reply: make(chan error, 1)}
		s.inspect(func(l *loop) { w.reloads = l.stats.Reloads })
		s.waiters = append(s.waiters, w)
		s.l.send(evReloadWait{w.reply})
		s.sync()
	case k < 86:
		s.step("the next start fails")
		s.failNext = true
	case k < 89:
		s.stop()
	case k < 90:
		s.forceStop()
	}
	s.checkWaiters()
}

func (s *sim) ready(p *simProc) {
	s.step("worker %d (slot %d) ready", p.pid, p.slot)
	p.readied = true
	var cur bool
	s.inspect(func(l *loop) {
		c := s.child(p.pid)
		cur = c != nil && !c.stopped && (c == c.slot.cur || (l.reload != nil && l.reload.fresh == c))
	})
	p.onReady()
	if cur {
		s.served[p.slot-1] = true
		s.excused[p.slot-1] = false
	}
	s.sync()
}

func (s *sim) exit(p *simProc, err error, words string) {
	s.step("worker %d (slot %d) exits: %v %q", p.pid, p.slot, err, words)
	// What the doc says this exit is, from what the sim knows.
	var cur, counted, wasReady bool
	s.inspect(func(l *loop) {
		c := s.child(p.pid)
		cur = c != nil && c == c.slot.cur && !l.stopping
		outside := !c.stopped && !c.replaced && !c.killed
		signaled := outside && (outsideSignal(err) || strings.HasPrefix(words, stoppedOutside))
		counted = cur && !signaled && (outside || c.notReady)
		wasReady = c.ready
	})
	p.exited = true
	i := p.slot - 1
	if counted {
		s.countCrash(i, !wasReady)
	} else if cur {
		s.excused[i] = true
		s.notBefore[i] = time.Time{}
	}
	p.onExit(err, words)
	s.sync()
}

// advance moves the clock by d, firing the timers due in order; now and
// then a fired timer's event is held back, to arrive late.
func (s *sim) advance(d time.Duration) {
	s.step("advance %v", d)
	until := s.clock.time().Add(d)
	for tm := s.clock.due(until); tm != nil && !s.ended; tm = s.clock.due(until) {
		if s.rng.IntN(6) == 0 {
			s.late = append(s.late, tm)
			continue
		}
		tm.f()
		s.sync()
	}
	s.sync()
}

func (s *sim) stop() {
	if s.stopped {
		return
	}
	s.step("stop (ctx done)")
	s.stopped = true
	s.cancel()
	s.await("stop when ctx is done", func(l *loop) bool { return l.stopping })
}

func (s *sim) forceStop() {
	if s.forced {
		return
	}
	s.step("forced stop")
	var live bool
	s.inspect(func(l *loop) { live = len(l.children) > 0 })
	s.forced = true
	if live && s.wantErr == nil {
		s.wantErr = ErrForced
	}
	close(s.force)
	s.await("kill every worker and stop on Force", func(l *loop) bool {
		for c := range l.children {
			if !c.killed {
				return false
			}
		}
		return l.stopping
	})
}

// await syncs until cond holds in the loop (the loop took a request that
// is not an event) or the loop has returned.
func (s *sim) await(what string, cond func(*loop) bool) {
	for i := 0; !s.ended; i++ {
		if i == 10000 {
			s.failf("the loop never did it: %s", what)
			return
		}
		ok := false
		if !s.inspect(func(l *loop) { ok = cond(l) }) {
			s.end()
			return
		}
		if ok {
			s.sync()
			return
		}
	}
}

// finish stops the master and lets every worker exit, some only when
// killed past the stop timeout.
func (s *sim) finish() {
	if s.fail != nil {
		s.cancel()
		if !s.forced {
			close(s.force) // let the loop end; the schedule has failed anyway
		}
		for !s.ended {
			var left []*simProc
			if !s.inspect(func(*loop) { left = s.live(func(*simProc) bool { return true }) }) {
				<-s.done
				s.ended = true
				break
			}
			for _, p := range left {
				p.exited = true
				p.onExit(nil, "")
			}
		}
		return
	}
	if s.rng.IntN(4) == 0 {
		s.forceStop()
	}
	s.stop()
	for i := 0; !s.ended && s.fail == nil; i++ {
		if i > 1000 {
			s.failf("the master did not stop")
			return
		}
		if p := s.pick(s.live(func(p *simProc) bool { return p.killed || (p.termed && s.rng.IntN(3) > 0) })); p != nil {
			var err error
			if p.killed {
				err = errors.New("signal: killed")
			}
			s.exit(p, err, "")
		} else {
			s.advance(time.Second)
		}
	}
}

// checkWaiters: a control waiter told "ok" saw a reload finish after it
// asked.
func (s *sim) checkWaiters() {
	if s.ended {
		return
	}
	var reloads int64
	if !s.inspect(func(l *loop) { reloads = l.stats.Reloads }) {
		return
	}
	for i := range s.waiters {
		w := &s.waiters[i]
		select {
		case err := <-w.reply:
			if err == nil && reloads <= w.reloads {
				s.failf("a control waiter was told its reload finished, but no reload finished since it asked")
			}
			w.reply = make(chan error, 1)
			w.reply <- err // answered: keep it answered
		default:
		}
	}
}

// check runs in the loop after every step: the promises of the doc.
func (s *sim) check(l *loop) {
	now := s.clock.time()
	// Stats and Workers agree with the children, and with the processes.
	sn := l.snap.Load()
	live := s.live(func(*simProc) bool { return true })
	if sn.stats.Live != int64(len(l.children)) || len(l.children) != len(live) {
		s.failf("Stats.Live %d, children %d, processes not exited %d", sn.stats.Live, len(l.children), len(live))
	}
	if sn.stats.Starts != int64(len(s.procs)) || sn.stats.Exits != int64(len(s.procs)-len(live)) {
		s.failf("Stats %+v, processes started %d, exited %d", sn.stats, len(s.procs), len(s.procs)-len(live))
	}
	ws := sn.workers
	live = slices.Clone(live)
	slices.SortStableFunc(live, func(a, b *simProc) int { return a.slot - b.slot })
	if len(ws) != len(live) {
		s.failf("Workers lists %d, %d processes live", len(ws), len(live))
	} else {
		for i, p := range live {
			c := s.child(p.pid)
			if c == nil || ws[i].Pid != p.pid || ws[i].Slot != p.slot || ws[i].Ready != c.ready || ws[i].Current != (c.slot.cur == c) {
				s.failf("Workers[%d] = %+v, worker %d is not that", i, ws[i], p.pid)
			}
		}
	}
	adopted := int64(0)
	for _, sl := range l.slots {
		if sl.adopter != nil {
			adopted++
		}
	}
	if sn.stats.Adopted != adopted {
		s.failf("Stats.Adopted %d, %d slots adopted", sn.stats.Adopted, adopted)
	}
	usable := func(c *child) bool { return c != nil && c.ready && !c.stopped && !c.gone }
	// Every new worker is ready within ReadyTimeout, or told to stop
	// (unless its timer's event is late).
	if len(s.late) == 0 {
		for c := range l.children {
			if !c.ready && !c.stopped && now.Sub(c.started) > s.cfg.ReadyTimeout {
				s.failf("worker %d not ready %v after its start, and not stopped", c.pid, now.Sub(c.started))
			}
		}
	}
	for i, sl := range l.slots {
		// The backoff counts the crashes the doc says: crashes and workers
		// not ready in time, within CrashWindow; no stop, no outside signal.
		n := 0
		for _, at := range sl.crashes {
			if now.Sub(at) < s.cfg.CrashWindow {
				n++
			}
		}
		m := 0
		for _, at := range s.crashes[i] {
			if now.Sub(at) < s.cfg.CrashWindow {
				m++
			}
		}
		if n != m {
			s.failf("slot %d: %d crashes in the window counted, want %d", sl.id, n, m)
		}
		// A slot with a worker waits for no restart.
		if sl.cur != nil && sl.restart != nil {
			s.failf("slot %d has worker %d and a restart pending", sl.id, sl.cur.pid)
		}
		if l.stopping {
			continue
		}
		// No served slot without a ready worker (during a reload or not),
		// unless its own worker crashed or failed.
		if s.served[i] && !usable(sl.cur) && !s.excused[i] {
			s.failf("slot %d has no ready worker, and its worker did not crash (reload %v)", sl.id, l.reload != nil)
		}
		// An orphaned slot is adopted when a ready worker can take it.
		if l.adoptable() && sl.served && !usable(sl.cur) && !usable(sl.adopter) {
			for _, o := range l.slots {
				if o != sl && usable(o.cur) {
					s.failf("slot %d is orphaned and not adopted, though worker %d could", sl.id, o.cur.pid)
					break
				}
			}
		}
	}
	// An orphaned slot goes to a least loaded worker: when one adoption is
	// all that changed in a step, its adopter had no more slots than any
	// other ready worker.
	var changed []*slot
	for _, sl := range l.slots {
		if sl.adopter != s.adopters[sl] {
			changed = append(changed, sl)
		}
	}
	if len(changed) == 1 && changed[0].adopter != nil && s.adopters[changed[0]] == nil {
		a := changed[0].adopter
		for _, o := range l.slots {
			if c := o.cur; o != changed[0] && c != a && usable(c) && c.adopted < a.adopted-1 {
				s.failf("slot %d adopted by worker %d with %d other slots, while worker %d had %d", changed[0].id, a.pid, a.adopted-1, c.pid, c.adopted)
			}
		}
	}
	if s.adopters == nil {
		s.adopters = map[*slot]*child{}
	}
	for _, sl := range l.slots {
		s.adopters[sl] = sl.adopter
	}
	// Each worker's last lifeline line is its whole adoption state.
	for c := range l.children {
		p := c.proc.(*simProc)
		var want []int
		for _, sl := range l.slots {
			if sl.adopter == c {
				want = append(want, sl.id)
			}
		}
		if l.stopping {
			continue
		}
		got := []int{}
		if len(p.told) > 0 {
			got, _ = parseLifeline(p.told[len(p.told)-1])
		}
		if !slices.Equal(got, want) && len(want)+len(got) > 0 {
			s.failf("worker %d was last told to adopt %v, adopts %v", c.pid, got, want)
		}
	}
	// The connection table: a live entry is a ready, current worker's.
	if l.table != nil {
		seen := map[int]bool{}
		for c := range l.children {
			if c.entry < 0 {
				continue
			}
			if seen[c.entry] {
				s.failf("two workers share table entry %d", c.entry)
			}
			seen[c.entry] = true
			want := c == c.slot.cur && c.ready && !c.stopped
			if got := l.table.word(1+c.entry, wordLive).Load() == 1; got != want {
				s.failf("worker %d (ready %v, current %v, stopped %v): table entry live %v, want %v", c.pid, c.ready, c == c.slot.cur, c.stopped, got, want)
			}
		}
	}
	// During the stop every worker was told to stop; the sockets the
	// master bound are closed, the ones given to it are not.
	if l.stopping {
		for c := range l.children {
			if p := c.proc.(*simProc); !p.termed && !p.killed {
				s.failf("worker %d not told to stop during the stop", c.pid)
			}
		}
		want := 0
		if l.ownSockets {
			want = len(l.sockets)
		}
		if closed := closedFiles(l.sockets); closed != want {
			s.failf("%d of %d sockets closed during the stop, want %d (bound by the master: %v)", closed, len(l.sockets), want, l.ownSockets)
		}
	}
	_ = now
}
