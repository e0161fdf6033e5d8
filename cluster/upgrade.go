package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// The master upgrades itself (SIGUSR2, Master.Upgrade, the control
// command "upgrade"), as nginx does on USR2 and tableflip does for one
// process:
//
//	old master   starts the executable again (Config.Exe, Args) as a new
//	             master, handing it the listening sockets (the same sockets:
//	             the kernel's accept queues are shared, nothing is closed)
//	new master   starts one worker per slot on those sockets; once every
//	             slot has a ready worker it writes one byte on its ready pipe
//	old master   writes one byte on the handover pipe, falls silent towards
//	             systemd, stops its own workers (each drains) and exits 0;
//	             its copies of the sockets close with it, which resets
//	             nothing while the new generation holds them
//	new master   on the handover, sends systemd's watchdog pings and STATUS;
//	             EOF on the handover pipe says the old master has exited,
//	             and once this process is systemd's child (reparented) it
//	             sends READY=1 with MAINPID=<itself>
//
// systemd follows with a unit of ExitType=cgroup (the old main process
// exiting does not end the service while the new generation runs) and
// NotifyAccess=all (the new master speaks before it is the main process).
// The new master names itself only once it is systemd's child: a main
// process that is not, systemd 252 cannot wait for, and its stop would
// SIGKILL every process at once instead of letting the master drain.
//
// The old generation serves until the new one is ready, and the new one
// serves from then on: both accept on the same sockets meanwhile. If the new
// master exits, or is not ready within ReadyTimeout, the old master stops it
// (SIGTERM, SIGKILL after StopTimeout), says why, and serves on (nginx's
// rollback); a new master whose worker exits before the handover gives up
// by itself. One upgrade at a time: another request while one runs is
// refused with ErrUpgradeUnderWay.
//
// The new master's descriptors and environment (EnvPrefix, then the name):
//
//	fd 3       write end of the ready pipe: one byte once every slot is ready
//	fd 4       read end of the handover pipe: one byte when the old master
//	           hands over; EOF when the old master has exited
//	fd 5..     the listening sockets, one per slot or one shared
//	UPGRADE_FROM     the old master's pid
//	UPGRADE_SOCKETS  how many sockets start at fd 5

// Errors of Master.Upgrade and Upgrade.
var (
	// ErrUpgradeUnderWay: an upgrade was asked for while one runs (or while
	// this master is itself a new master that has not taken over yet).
	ErrUpgradeUnderWay = errors.New("an upgrade is under way")
	// ErrUpgradeAborted: the new master exited or was not ready in time;
	// it was stopped and this master serves on.
	ErrUpgradeAborted = errors.New("upgrade aborted")
)

const (
	fdUpReady    = 3 // new master: write end of the ready pipe
	fdUpHandover = 4 // new master: read end of the handover pipe
	fdUpSockets  = 5 // new master: the first listening socket

	envUpgradeFrom    = "UPGRADE_FROM"
	envUpgradeSockets = "UPGRADE_SOCKETS"

	upReadyByte    = 'R'
	upHandoverByte = 'G'
)

// masterSpec is what a new master starts with, besides the base
// environment and the ready and handover pipes the sys adds.
type masterSpec struct {
	Env   []string   // added to the base environment
	Files []*os.File // the listening sockets: fds 5 onwards
}

// masterProcess is a started new master.
type masterProcess interface {
	Pid() int
	Signal(os.Signal) error
	// Handover writes the handover byte. Once it returned nil, the new
	// master is on its own: onExit is never called for it.
	Handover() error
}

// parentLink is the new master's side of the pipes to the old master.
type parentLink interface {
	// Ready writes the ready byte.
	Ready() error
}

// upgradeResult is the outcome of an upgrade for the one who asked.
type upgradeResult struct {
	pid int // the new master's
	err error
}

// upgrade is the loop's state of upgrades, owned by the loop's goroutine
// (signal excepted, which only the loop receives from).
type upgrade struct {
	signal <-chan os.Signal // SIGUSR2; nil in tests and off Linux
	sdEnv  []string         // NOTIFY_SOCKET, WATCHDOG_USEC for the new master

	from int // the old master's pid, in a master started by an upgrade; set before the loop runs
	// mainPending: a new master has taken over, but the old one has not
	// exited yet: READY=1 with MAINPID= waits for that.
	mainPending bool
	cur         *upAttempt // the upgrade under way, or nil
	handedOver  bool       // this master handed over: it only drains now

	// The new master's side, while it has not taken over; nil otherwise.
	child *upChild
}

// upAttempt is one upgrade under way, in the old master.
type upAttempt struct {
	proc    masterProcess
	pid     int
	why     string // what asked for it
	started time.Time
	timer   *timer // ready timeout, then stop timeout
	abort   string // why it is being stopped; "" while it may still succeed
	replies []chan upgradeResult
}

// upChild is a new master that has not taken over yet.
type upChild struct {
	parent    parentLink
	oldPid    int
	readySent bool
	sd        *sdState // held back until the handover: the old master is systemd's main process
}

// The upgrade's events. Each one that concerns an attempt names it, so that
// a late one (a timer of an attempt that ended) is recognised and dropped.
type (
	upgradeEvent interface{ upgradeEvent() }
	evUpgrade    struct {
		why   string
		reply chan upgradeResult // buffered; nil: nobody waits
	}
	evUpReady  struct{ a *upAttempt }
	evUpExited struct {
		a   *upAttempt
		err error
	}
	evUpTimeout    struct{ a *upAttempt } // ready timeout, or stop timeout once abort is set
	evUpHandover   struct{}               // new master: the old one handed over
	evUpParentGone struct{}               // new master: EOF on the handover pipe
)

func (evUpgrade) upgradeEvent()      {}
func (evUpReady) upgradeEvent()      {}
func (evUpExited) upgradeEvent()     {}
func (evUpTimeout) upgradeEvent()    {}
func (evUpHandover) upgradeEvent()   {}
func (evUpParentGone) upgradeEvent() {}

// Upgrade asks the master to start its executable again as a new master
// and hand over to it, as SIGUSR2 does, and waits for the outcome: the new
// master's pid once it serves and this master drains, an error wrapping
// ErrUpgradeAborted when the new master failed (this master serves on),
// ErrUpgradeUnderWay when an upgrade already runs, ErrMasterStopping when
// the master is stopping. It waits for the master's loop: do not call it
// from Config.OnMaster before that returns.
func (m *Master) Upgrade(ctx context.Context) (newPid int, err error) {
	return m.l.upgrade(ctx, "upgrade requested")
}

// UpgradedFrom is the pid of the master that started this one by an
// upgrade, 0 for a master started otherwise. Config.OnMaster may use it, e.g.
// to share an address the old master still listens on.
func (m *Master) UpgradedFrom() int { return m.l.up.from }

func (l *loop) upgrade(ctx context.Context, why string) (int, error) {
	reply := make(chan upgradeResult, 1)
	select {
	case l.events <- evUpgrade{why: why, reply: reply}:
	case <-l.done:
		return 0, ErrMasterStopping
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.pid, r.err
	case <-l.done:
		return 0, ErrMasterStopping
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// handleUpgrade applies one upgrade event.
func (l *loop) handleUpgrade(ev upgradeEvent) {
	switch ev := ev.(type) {
	case evUpgrade:
		l.requestUpgrade(ev.why, ev.reply)
	case evUpReady:
		l.onUpReady(ev.a)
	case evUpExited:
		l.onUpExited(ev.a, ev.err)
	case evUpTimeout:
		l.onUpTimeout(ev.a)
	case evUpHandover:
		l.takeOver(true)
	case evUpParentGone:
		if l.up.child != nil {
			l.log.Warn("upgrade: the old master is gone before it handed over; taking over", "old_pid", l.up.child.oldPid)
			l.takeOver(false)
		} else {
			l.log.Info("upgrade: the old master has exited", "old_pid", l.up.from)
		}
		l.up.mainPending = false
		if l.sd != nil && l.serving && !l.stopping {
			l.sd.send(l, "READY=1", "MAINPID="+strconv.Itoa(l.sd.pid),
				"STATUS="+l.sd.counts(l)+fmt.Sprintf("; upgraded from master %d", l.up.from))
		}
	}
}

// requestUpgrade starts a new master, or refuses to.
func (l *loop) requestUpgrade(why string, reply chan upgradeResult) {
	refuse := func(err error) {
		l.log.Warn("upgrade refused", "why", why, "err", err)
		if reply != nil {
			reply <- upgradeResult{err: err}
		}
	}
	switch {
	case l.stopping:
		refuse(ErrMasterStopping)
		return
	case l.up.cur != nil:
		a := l.up.cur
		refuse(fmt.Errorf("%w: new master %d started %s ago (%s)", ErrUpgradeUnderWay,
			a.pid, l.sys.now().Sub(a.started).Round(time.Millisecond), a.why))
		return
	case l.up.child != nil:
		refuse(fmt.Errorf("%w: this master is a new master that has not taken over from master %d yet", ErrUpgradeUnderWay, l.up.child.oldPid))
		return
	case l.sys.startMaster == nil:
		refuse(fmt.Errorf("%w: %w", ErrUpgradeAborted, errUnsupportedUpgrade))
		return
	}
	l.log.Info(why, "master_pid", os.Getpid())
	env := func(name, v string) string { return l.cfg.EnvPrefix + name + "=" + v }
	spec := masterSpec{Files: l.sockets, Env: append([]string{
		env(envUpgradeFrom, strconv.Itoa(os.Getpid())),
		env(envUpgradeSockets, strconv.Itoa(len(l.sockets))),
	}, l.up.sdEnv...)}
	a := &upAttempt{why: why, started: l.sys.now()}
	if reply != nil {
		a.replies = append(a.replies, reply)
	}
	p, err := l.sys.startMaster(spec, func() { l.send(evUpReady{a}) }, func(err error) { l.send(evUpExited{a, err}) })
	if err != nil {
		l.log.Error("upgrade aborted: the new master did not start; this master serves on", "err", err)
		if reply != nil {
			reply <- upgradeResult{err: fmt.Errorf("%w: start the new master: %w", ErrUpgradeAborted, err)}
		}
		return
	}
	a.proc, a.pid = p, p.Pid()
	a.timer = l.after(l.cfg.ReadyTimeout, func(*timer) event { return evUpTimeout{a} })
	l.up.cur = a
	l.log.Info("upgrade started: new master starting", "old_pid", os.Getpid(), "new_pid", a.pid, "timeout", l.cfg.ReadyTimeout)
	l.sdStatus(fmt.Sprintf("upgrading: new master %d starting its workers", a.pid))
}

// onUpReady: every slot of the new master has a ready worker. This master
// hands over and stops its own workers.
func (l *loop) onUpReady(a *upAttempt) {
	if a != l.up.cur || a.abort != "" {
		return
	}
	l.stopTimer(&a.timer)
	took := l.sys.now().Sub(a.started).Round(time.Millisecond)
	if err := a.proc.Handover(); err != nil {
		l.failUpgrade(a, "handover to the new master failed: "+err.Error())
		return
	}
	l.up.cur = nil
	l.up.handedOver = true
	// From now on the new master speaks for the service: nothing more from
	// this one (no STOPPING=1, no watchdog pings).
	l.sdStatus(fmt.Sprintf("upgraded: master %d serves; old master %d drains its workers", a.pid, os.Getpid()))
	l.sd.end()
	l.sd = nil
	l.log.Info("upgrade: new master ready; handing over and stopping the old workers",
		"old_pid", os.Getpid(), "new_pid", a.pid, "took", took)
	for _, c := range a.replies {
		c <- upgradeResult{pid: a.pid}
	}
	l.stop()
}

// onUpExited: the new master exited before the handover.
func (l *loop) onUpExited(a *upAttempt, err error) {
	if a != l.up.cur {
		return
	}
	status := "exit status 0"
	if err != nil {
		status = err.Error()
	}
	why := a.abort
	if why == "" {
		why = "the new master exited before it was ready (" + status + ")"
	}
	l.stopTimer(&a.timer)
	l.up.cur = nil
	l.log.Error("upgrade aborted; this master and its workers serve on", "old_pid", os.Getpid(), "new_pid", a.pid,
		"why", why, "status", status, "after", l.sys.now().Sub(a.started).Round(time.Millisecond))
	l.sdStatus(fmt.Sprintf("upgrade aborted (%s); master %d serves on", why, os.Getpid()))
	for _, c := range a.replies {
		c <- upgradeResult{err: fmt.Errorf("%w: %s; master %d serves on", ErrUpgradeAborted, why, os.Getpid())}
	}
}

// onUpTimeout: the new master was not ready in time (stop it), or did not
// exit in time after it was told to stop (kill it).
func (l *loop) onUpTimeout(a *upAttempt) {
	a.timer = nil
	if a != l.up.cur {
		return
	}
	if a.abort != "" {
		l.log.Warn("upgrade: the new master did not stop in time; killing it", "new_pid", a.pid, "timeout", l.cfg.StopTimeout)
		_ = a.proc.Signal(os.Kill)
		return
	}
	l.failUpgrade(a, "the new master was not ready within the ready timeout ("+l.cfg.ReadyTimeout.String()+")")
}

// failUpgrade stops the new master; onUpExited reports why once it exited.
func (l *loop) failUpgrade(a *upAttempt, why string) {
	if a.abort != "" {
		return
	}
	a.abort = why
	l.log.Warn("upgrade: stopping the new master", "new_pid", a.pid, "why", why)
	_ = a.proc.Signal(syscall.SIGTERM)
	l.stopTimer(&a.timer)
	a.timer = l.after(l.cfg.StopTimeout, func(*timer) event { return evUpTimeout{a} })
}

// stopUpgrade: the master stops; so does a new master not yet ready.
func (l *loop) stopUpgrade() {
	if a := l.up.cur; a != nil {
		l.failUpgrade(a, "the master is stopping")
	}
}

// killUpgrade: a forced stop kills a new master not yet ready.
func (l *loop) killUpgrade() {
	if a := l.up.cur; a != nil {
		_ = a.proc.Signal(os.Kill)
	}
}

// upgradeBusy reports whether the loop must go on for an upgrade: a new
// master that has not exited nor taken over.
func (l *loop) upgradeBusy() bool { return l.up.cur != nil }

// sdStatus sends a STATUS= line to systemd, if it listens.
func (l *loop) sdStatus(s string) {
	if l.sd != nil {
		l.sd.send(l, "STATUS="+s)
	}
}

// upgradeOnEvent is the new master's side of the loop's events: its
// readiness goes to the old master, and a worker that exits before the
// handover ends the upgrade (the old master serves on).
func (l *loop) upgradeOnEvent(e Event) {
	c := l.up.child
	if c == nil {
		return
	}
	switch {
	case e.Kind == EventServing && !c.readySent:
		c.readySent = true
		if err := c.parent.Ready(); err != nil {
			l.log.Error("upgrade: cannot tell the old master this one is ready; stopping", "old_pid", c.oldPid, "err", err)
			l.giveUp(fmt.Errorf("upgrade: tell the old master: %w", err))
			return
		}
		l.log.Info("upgrade: every worker ready; waiting for the old master to hand over", "old_pid", c.oldPid)
	case e.Kind == EventExited && !c.readySent && !l.stopping:
		why := fmt.Errorf("upgrade: worker %d (pid %d) exited before this new master was ready: %v", e.Slot, e.Pid, exitStatus(e.Err))
		l.log.Error("upgrade: giving up so that the old master serves on", "old_pid", c.oldPid, "err", why)
		l.giveUp(why)
	}
}

// giveUp stops a new master that failed before the handover; Run returns
// err, so the process exits non-zero and the old master logs its status.
func (l *loop) giveUp(err error) {
	if l.err == nil {
		l.err = err
	}
	l.up.child = nil // no handover to wait for: the old master stops us
	l.stop()
}

// takeOver makes a new master the master: systemd hears from it from now on.
func (l *loop) takeOver(handedOver bool) {
	c := l.up.child
	if c == nil {
		return
	}
	l.up.child = nil
	l.up.mainPending = true
	why, status := "the old master handed over", fmt.Sprintf("upgraded from master %d, which drains", c.oldPid)
	if !handedOver {
		why, status = "the old master is gone", fmt.Sprintf("upgraded from master %d, which is gone", c.oldPid)
	}
	l.log.Info("upgrade complete: this is the master now", "why", why, "old_pid", c.oldPid, "master_pid", os.Getpid())
	if c.sd == nil || l.stopping {
		return
	}
	l.sd = c.sd
	l.sd.watchdog(l) // a ping now, then every interval: the old master's pings have stopped
	l.sdStatus(l.sd.counts(l) + "; " + status)
}

// holdSystemd keeps a new master quiet towards systemd until the handover.
func (l *loop) holdSystemd() {
	if c := l.up.child; c != nil {
		c.sd, l.sd = l.sd, nil
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// errUnsupportedUpgrade: the loop has no way to start a new master (tests
// that give it none).
var errUnsupportedUpgrade = errors.New("this master cannot start a new master")
