package cluster

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
)

// loop is the master: one goroutine (run) owns every slot and every child.
// Child processes and timers only send events to it; Stats and Workers read
// the snapshot it publishes after each event. Nothing it does blocks for
// long: starting a process, signalling one, queueing a line on a lifeline.
type loop struct {
	cfg     Config
	sys     sys
	log     *slog.Logger
	addr    string     // what the sockets are bound to, for the logs
	sockets []*os.File // one per slot, or one shared
	table   *connTable // nil without a connection table
	slots   []*slot

	events  chan event     // from children, timers and tests
	reloads chan struct{}  // Master.Reload; one pending request is enough
	done    chan struct{}  // closed when run returns: late senders give up
	hup     chan os.Signal // SIGHUP: a rolling reload; nil in tests
	ttinout chan os.Signal // SIGTTIN, SIGTTOU: one worker more, one fewer; nil in tests
	asks    chan event     // Master.Scale, Master.RestartWorker: buffered, so they never block
	sd      *sdState       // systemd notifications; nil without systemd
	// ownSockets: the master bound the sockets itself, so it closes its
	// copies when the stop begins (new connections are refused at once).
	// Sockets given to it (Config.Files, systemd's) stay open: their queue
	// belongs to whoever passed them, and waits for the next master.
	ownSockets bool
	up         upgrade // the master's own upgrade (upgrade.go)

	// Owned by run:
	children map[*child]struct{} // every worker not yet exited
	reload   *reloadState        // the rolling reload under way, or nil
	pending  bool                // a reload was asked for during one: run one more after it
	stopping bool
	serving  bool   // every slot has had a ready worker once
	err      error  // why the stop was not clean (workers killed)
	entries  []bool // connection table entries in use, by a worker not yet exited
	stats    Stats
	waits    reloadWaits  // reload requests that wait for their reload's end
	health   healthLoop   // health checks (health.go)
	roll     rollState    // one slot's replacement, and the queue of them (recycle.go)
	scale    scaleState   // spare and retired slots, the wanted count (scale.go)
	msgs     messageState // the goroutines reading the workers' messages (message.go)

	// listeners see every event emitted, in order: systemd's notifications
	// (notify.go), the reload waiters (control.go), Config.OnEvent.
	listeners []func(Event)

	snap atomic.Pointer[snapshot] // what Stats and Workers read
}

type slot struct {
	id      int
	sock    *os.File
	cur     *child      // the worker serving this slot; nil while it has none
	crashes []time.Time // crash times within CrashWindow
	served  bool        // a worker of this slot has been ready once
	adopter *child      // another slot's worker accepting here while this slot has no ready worker
	restart *timer      // the pending restart delay; nil if none
	failed  int         // failed starts while no worker of this slot was ever ready
	why     string      // why the last of them failed
}

type child struct {
	slot    *slot
	proc    process
	pid     int
	started time.Time
	private string // address of its private socket; "" if none
	entry   int    // its entry in the connection table; -1 if none

	ready       bool        // it reported ready
	stopped     bool        // it was sent SIGTERM (reload, abort, stop, ready timeout)
	replaced    bool        // a new worker took its slot in a reload
	notReady    bool        // it was stopped for not being ready within ReadyTimeout
	killed      bool        // it was sent SIGKILL
	gone        bool        // it exited
	adopted     int         // slots it accepts for besides its own
	told        string      // the last adoption state told on its lifeline
	toldStop    bool        // it is told the cluster stops (shutdown.go)
	readyBy     *timer      // its ready timeout, until it is ready
	exitBy      *timer      // its stop timeout, once it was sent SIGTERM
	why         ExitReason  // the Reason of its exit, once decided (recycled, unresponsive, scaled down); 0 if not
	toldWorkers bool        // it was told the cluster's count of workers (lifeline.go)
	health      childHealth // its health checks (health.go)
	limit       int64       // requests it may serve before it is recycled; 0: no limit (recycle.go)
	msgs        net.Conn    // the master's end of its message channel; nil if none (message.go)
}

// The events the loop selects on, besides stop, force and reload requests.
type (
	event    any
	evReady  struct{ c *child }
	evExited struct {
		c     *child
		err   error
		words string // its last words (report.go)
	}
	evReload struct{}
	evSync   struct { // tests: every earlier event is handled; f, if set, looks at the loop
		done chan struct{}
		f    func(*loop)
	}
)

// Errors Run returns in the master when the stop was not clean.
var (
	ErrStopTimeout = errors.New("cluster: workers did not stop within the stop timeout; killed")
	ErrForced      = errors.New("cluster: forced stop: workers killed")
)

func newLoop(cfg Config, s sys, sockets []*os.File, table *connTable) *loop {
	l := &loop{
		cfg: cfg, sys: s, log: cfg.Logger, sockets: sockets, table: table,
		events: make(chan event), asks: make(chan event, 16), reloads: make(chan struct{}, 1), done: make(chan struct{}), children: map[*child]struct{}{},
	}
	for i := range cfg.Workers {
		l.slots = append(l.slots, &slot{id: i + 1, sock: sockets[i%len(sockets)]})
	}
	l.initScale(max(cfg.MaxWorkers, cfg.Workers))
	if table != nil {
		l.entries = make([]bool, table.entries)
	}
	l.listeners = []func(Event){l.notifySystemd, l.waits.event}
	if cfg.OnEvent != nil {
		l.listeners = append(l.listeners, l.onEvent)
	}
	l.publish()
	return l
}

// run starts a worker for every slot and supervises them until ctx is done;
// then it stops them (SIGTERM; SIGKILL past StopTimeout, or at once when
// force is closed) and returns once every worker has exited. With ctx
// already done it starts nothing and returns nil.
func (l *loop) run(ctx context.Context, force <-chan struct{}) error {
	defer l.endSupervision() // after done is closed: a late check result gives up
	defer close(l.done)
	if ctx.Err() != nil {
		l.log.Info("master stopped before it started a worker", "err", context.Cause(ctx))
		return nil
	}
	l.log.Info("master started", "addr", l.addr, "workers", len(l.slots))
	l.warnLimits()
	l.sd.start(l)
	defer func() { l.sd.end() }() // a new master's sd is set at its handover
	for _, s := range l.slots {
		l.fill(s, false)
	}
	l.startSupervision()
	stop := ctx.Done()
	for !l.stopping || len(l.children) > 0 || l.upgradeBusy() {
		l.publish()
		select {
		case <-stop:
			stop = nil
			l.stop()
		case <-force:
			force = nil
			l.kill()
		case <-l.reloads:
			l.requestReload("reload requested")
		case <-l.hup:
			l.requestReload("SIGHUP: rolling reload")
		case sig := <-l.ttinout:
			l.onScaleSignal(sig)
		case ev := <-l.asks:
			l.handle(ev)
		case <-l.up.signal:
			l.requestUpgrade("SIGUSR2: upgrade", nil)
		case ev := <-l.events:
			l.handle(ev)
		}
		l.schedule()
	}
	l.publish()
	l.log.Info("master stopped")
	return l.err
}

// handle applies one event.
func (l *loop) handle(ev event) {
	switch ev := ev.(type) {
	case evReady:
		l.onReady(ev.c)
	case evExited:
		l.onExit(ev.c, ev.err, ev.words)
	case evRestart, evReadyTimeout, evStopTimeout:
		l.onTimer(ev)
	case evShutdownDelay:
		l.terminateAll()
	case evReload:
		l.requestReload("reload requested")
	case evReloadWait:
		l.waits.add(l, ev)
	case evWatchdog:
		l.sd.watchdog(l)
	case evMessage:
		l.onMessage(ev.m)
	case evHealthTick, evHealthResult, evRecycleTick, evRestartWorker, evScale:
		l.handleSupervision(ev)
	case upgradeEvent:
		l.handleUpgrade(ev)
	case evSync:
		if ev.f != nil {
			ev.f(l)
		}
		close(ev.done)
	}
}

// onReady: a worker reported ready. A reload's new worker takes its slot;
// any worker that is its slot's current one counts in the connection
// table's fair share and releases the slot if another worker adopted it.
// A worker already told to stop stays out of service.
func (l *loop) onReady(c *child) {
	if c.gone || c.stopped {
		return
	}
	l.stopTimer(&c.readyBy)
	c.ready = true
	c.slot.served = true
	c.slot.failed = 0
	l.log.Info("worker ready", "worker", c.slot.id, "worker_pid", c.pid, "took", l.sys.now().Sub(c.started).Round(time.Millisecond))
	l.emit(Event{Kind: EventReady, Slot: c.slot.id, Pid: c.pid})
	if r := l.reload; r != nil && r.fresh == c {
		l.promote(c)
	}
	l.readySupervision(c)
	if c == c.slot.cur && !c.stopped {
		l.setLive(c, true)
	}
	l.rebalance()
	if !l.serving && !l.stopping && l.allReady() {
		l.serving = true
		l.log.Info("all workers ready", "workers", len(l.slots))
		l.emit(Event{Kind: EventServing})
	}
}

// onReadyTimeout: a worker was not ready within ReadyTimeout. It is
// stopped; a reload's new worker aborts the reload, a slot's current worker
// counts as a failed start once it has exited (onExit).
func (l *loop) onReadyTimeout(c *child) {
	if c.gone || c.ready || c.stopped {
		return
	}
	l.log.Warn("worker not ready within the ready timeout; stopping it", "worker", c.slot.id, "worker_pid", c.pid, "timeout", l.cfg.ReadyTimeout)
	c.notReady = true
	l.terminate(c)
	if r := l.reload; r != nil && r.fresh == c {
		l.abortReload(c, "new worker not ready within the ready timeout")
	}
	l.rollNotReady(c)
}

// onExit: a worker exited. Its slot's current worker is restarted after its
// backoff (unless the master is stopping); a reload waits for it or is
// aborted by it.
func (l *loop) onExit(c *child, err error, words string) {
	c.gone = true
	l.stopTimer(&c.readyBy)
	l.stopTimer(&c.exitBy)
	delete(l.children, c)
	l.releaseEntry(c.entry)
	l.stats.Exits++
	s := c.slot
	reason := l.exitReason(c, err, words)
	l.logExit(c, err, words, reason)
	l.emit(Event{Kind: EventExited, Slot: s.id, Pid: c.pid, Err: err, Reason: reason, LastWords: words})
	l.exitSupervision(c)
	if r := l.reload; r != nil {
		switch c {
		case r.fresh:
			l.abortReload(c, "new worker exited before it was ready")
		case r.old:
			r.old = nil
			r.next++
			l.reloadStep()
		}
	}
	if s.cur == c {
		s.cur = nil
		switch {
		case l.stopping:
		case reason == ExitSignaled:
			// Stopped from outside the cluster (an operator): restarted at
			// once, not counted as a crash.
			l.fill(s, true)
		case !c.ready && l.failedStart(s, startFailure(reason, err, words)):
		default:
			l.crash(s)
		}
	}
	l.rebalance()
}

// stop begins the master's stop: no more restarts or reloads; every worker
// is told the cluster stops, then (after ShutdownDelay) gets SIGTERM and
// StopTimeout to drain and exit. The master's own copies of the sockets it
// bound are closed now, so that a new connection that no worker will take
// is refused at once instead of waiting in a queue; the workers close
// theirs as they drain.
func (l *loop) stop() {
	if l.stopping {
		return
	}
	l.stopping = true
	if l.reload != nil {
		l.log.Warn("rolling reload interrupted by the stop", "done", l.reload.next, "workers", len(l.slots))
		l.reload, l.pending = nil, false
	}
	for _, s := range l.slots {
		l.stopTimer(&s.restart)
	}
	if l.ownSockets {
		closeFiles(l.sockets)
	}
	l.stopSupervision()
	l.log.Info("master stopping", "workers", len(l.children))
	l.emit(Event{Kind: EventStopping})
	l.stopWorkers()
	l.stopUpgrade()
}

// kill is the forced stop (a second stop signal): SIGKILL every worker now.
func (l *loop) kill() {
	l.stop()
	l.killUpgrade()
	if len(l.children) == 0 {
		return
	}
	l.log.Warn("forced stop: killing every worker", "workers", len(l.children))
	if l.err == nil {
		l.err = ErrForced
	}
	for _, c := range l.sorted() {
		l.sigkill(c)
	}
}

// terminate sends c SIGTERM and gives it StopTimeout to exit.
func (l *loop) terminate(c *child) {
	if c.stopped || c.gone {
		return
	}
	c.stopped = true
	l.setLive(c, false)
	_ = c.proc.Signal(syscall.SIGTERM)
	l.stopTimer(&c.readyBy)
	l.stopTimer(&c.exitBy)
	c.exitBy = l.after(l.cfg.StopTimeout, func(t *timer) event { return evStopTimeout{c, t} })
}

// sigkill sends c SIGKILL.
func (l *loop) sigkill(c *child) {
	c.killed = true
	_ = c.proc.Signal(os.Kill)
}

func (l *loop) onStopTimeout(c *child) {
	if c.gone {
		return
	}
	l.log.Warn("worker did not stop in time; killing it", "worker", c.slot.id, "worker_pid", c.pid, "timeout", l.cfg.StopTimeout)
	l.sigkill(c)
	if l.stopping && l.err == nil {
		l.err = ErrStopTimeout
	}
}

// send hands ev to the loop; it gives up once the loop has returned.
func (l *loop) send(ev event) {
	select {
	case l.events <- ev:
	case <-l.done:
	}
}

// emit hands e to every listener of the loop's events, in order.
func (l *loop) emit(e Event) {
	for _, f := range l.listeners {
		f(e)
	}
	l.upgradeOnEvent(e) // last: it may stop the master, which emits
}

// onEvent is Config.OnEvent's listener: it publishes the state as it is
// first, so that Stats and Workers called from then on show at least what
// e says.
func (l *loop) onEvent(e Event) {
	l.publish()
	l.cfg.OnEvent(e)
}

func (l *loop) allReady() bool {
	for _, s := range l.slots {
		if s.cur == nil || !s.cur.ready {
			return false
		}
	}
	return true
}

// sorted lists the live children by slot, then pid.
func (l *loop) sorted() []*child {
	out := make([]*child, 0, len(l.children))
	for c := range l.children {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *child) int { return cmp.Or(cmp.Compare(a.slot.id, b.slot.id), cmp.Compare(a.pid, b.pid)) })
	return out
}

// snapshot is what Stats and Workers report, as of the last event.
type snapshot struct {
	stats   Stats
	workers []WorkerInfo
}

func (l *loop) publish() {
	sn := &snapshot{stats: l.stats}
	sn.stats.Live = int64(len(l.children))
	sn.stats.Workers = int64(len(l.slots))
	for _, s := range l.slots {
		if s.adopter != nil {
			sn.stats.Adopted++
		}
	}
	for _, c := range l.sorted() {
		sn.workers = append(sn.workers, WorkerInfo{Slot: c.slot.id, Pid: c.pid, Ready: c.ready,
			Current: c.slot.cur == c, PrivateAddr: c.private, entry: c.entry, msgs: c.msgs})
	}
	l.snap.Store(sn)
}
