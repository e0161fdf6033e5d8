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

	snap atomic.Pointer[snapshot] // what Stats and Workers read
}

type slot struct {
	id      int
	sock    *os.File
	cur     *child      // the worker serving this slot; nil while it has none
	crashes []time.Time // crash times within CrashWindow
	served  bool        // a worker of this slot has been ready once
	adopter *child      // another slot's worker accepting here while this slot has no ready worker
	restart func() bool // stops the pending restart timer; nil if none
}

type child struct {
	slot    *slot
	proc    process
	pid     int
	started time.Time
	private string // address of its private socket; "" if none
	entry   int    // its entry in the connection table; -1 if none

	ready    bool        // it reported ready
	stopped  bool        // it was sent SIGTERM (reload, abort, stop)
	replaced bool        // a new worker took its slot in a reload
	gone     bool        // it exited
	adopted  int         // slots it accepts for besides its own
	timer    func() bool // stops its pending ready or stop timeout; nil if none
	why      string      // the Reason of its exit, once decided (recycled, unresponsive, ...); "" if not
	health   childHealth // its health checks (health.go)
	limit    int64       // requests it may serve before it is recycled; 0: no limit (recycle.go)
	msgs     net.Conn    // the master's end of its message channel; nil if none (message.go)
}

// The events the loop selects on, besides stop, force and reload requests.
type (
	event    any
	evReady  struct{ c *child }
	evExited struct {
		c   *child
		err error
	}
	evRestart      struct{ s *slot }  // a slot's restart delay is over
	evReadyTimeout struct{ c *child } // a reload's new worker was not ready in time
	evStopTimeout  struct{ c *child } // a stopped worker did not exit in time
	evReload       struct{}
	evSync         struct { // tests: every earlier event is handled; f, if set, looks at the loop
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
	l.publish()
	return l
}

// run starts a worker for every slot and supervises them until ctx is done;
// then it stops them (SIGTERM; SIGKILL past StopTimeout, or at once when
// force is closed) and returns once every worker has exited.
func (l *loop) run(ctx context.Context, reload, force <-chan struct{}) error {
	defer l.endSupervision() // after done is closed: a late check result gives up
	defer close(l.done)
	l.log.Info("master started", "addr", l.addr, "workers", len(l.slots))
	l.sd.start(l)
	defer l.sd.end()
	for _, s := range l.slots {
		l.fill(s, false)
	}
	l.startSupervision()
	stop := ctx.Done()
	for !l.stopping || len(l.children) > 0 {
		l.publish()
		select {
		case <-stop:
			stop = nil
			l.stop()
		case <-force:
			force = nil
			l.kill()
		case <-reload:
			l.requestReload("reload requested")
		case <-l.reloads:
			l.requestReload("reload requested")
		case <-l.hup:
			l.requestReload("SIGHUP: rolling reload")
		case sig := <-l.ttinout:
			l.onScaleSignal(sig)
		case ev := <-l.asks:
			l.handle(ev)
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
		l.onExit(ev.c, ev.err)
	case evRestart:
		ev.s.restart = nil
		l.fill(ev.s, true)
	case evReadyTimeout:
		l.onReadyTimeout(ev.c)
	case evStopTimeout:
		l.onStopTimeout(ev.c)
	case evReload:
		l.requestReload("reload requested")
	case evReloadWait:
		l.waits.add(l, ev)
	case evWatchdog:
		l.sd.watchdog(l)
	case evMessage:
		l.onMessage(ev.m)
	case evHealthTick, evHealthResult, evRecycleTick, evRollTimeout, evRestartWorker, evScale:
		l.handleSupervision(ev)
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
func (l *loop) onReady(c *child) {
	if c.gone {
		return
	}
	c.ready = true
	c.slot.served = true
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

// onExit: a worker exited. Its slot's current worker is restarted after its
// backoff (unless the master is stopping); a reload waits for it or is
// aborted by it.
func (l *loop) onExit(c *child, err error) {
	c.gone = true
	l.stopTimer(&c.timer)
	delete(l.children, c)
	l.releaseEntry(c.entry)
	l.stats.Exits++
	s := c.slot
	status := "exit status 0"
	if err != nil {
		status = err.Error()
	}
	reason := "crashed"
	switch {
	case c.why != "":
		reason = c.why
	case c.replaced:
		reason = "replaced"
	case l.stopping:
		reason = "stopped"
	case c != s.cur:
		reason = "reload aborted"
	}
	l.log.Info("worker exited", "worker", s.id, "worker_pid", c.pid, "status", status,
		"uptime", l.sys.now().Sub(c.started).Round(time.Millisecond), "replaced", c.replaced, "reason", reason)
	l.emit(Event{Kind: EventExited, Slot: s.id, Pid: c.pid, Err: err, Reason: reason})
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
		if !l.stopping {
			l.crash(s)
		}
	}
	l.rebalance()
}

// stop begins the master's stop: no more restarts or reloads; every worker
// gets SIGTERM and StopTimeout to drain and exit.
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
	l.stopSupervision()
	l.log.Info("master stopping", "workers", len(l.children))
	l.emit(Event{Kind: EventStopping})
	for _, c := range l.sorted() {
		l.terminate(c)
	}
}

// kill is the forced stop (a second stop signal): SIGKILL every worker now.
func (l *loop) kill() {
	l.stop()
	if len(l.children) == 0 {
		return
	}
	l.log.Warn("forced stop: killing every worker", "workers", len(l.children))
	l.err = ErrForced
	for _, c := range l.sorted() {
		_ = c.proc.Signal(os.Kill)
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
	l.stopTimer(&c.timer)
	c.timer = l.after(l.cfg.StopTimeout, evStopTimeout{c})
}

func (l *loop) onStopTimeout(c *child) {
	c.timer = nil
	if c.gone {
		return
	}
	l.log.Warn("worker did not stop in time; killing it", "worker", c.slot.id, "worker_pid", c.pid, "timeout", l.cfg.StopTimeout)
	_ = c.proc.Signal(os.Kill)
	if l.stopping && l.err == nil {
		l.err = ErrStopTimeout
	}
}

// after sends ev to the loop after d, unless the returned func stops it.
func (l *loop) after(d time.Duration, ev event) func() bool {
	return l.sys.afterFunc(d, func() { l.send(ev) })
}

func (l *loop) stopTimer(t *func() bool) {
	if *t != nil {
		(*t)()
		*t = nil
	}
}

// send hands ev to the loop; it gives up once the loop has returned.
func (l *loop) send(ev event) {
	select {
	case l.events <- ev:
	case <-l.done:
	}
}

// emit reports e to Config.OnEvent, after publishing the state as it is,
// so that Stats and Workers called from then on show at least what e says.
func (l *loop) emit(e Event) {
	l.sd.event(l, e)
	l.waits.event(e)
	if l.cfg.OnEvent != nil {
		l.publish()
		l.cfg.OnEvent(e)
	}
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
			Current: c.slot.cur == c, Private: c.private, entry: c.entry, msgs: c.msgs})
	}
	l.snap.Store(sn)
}
