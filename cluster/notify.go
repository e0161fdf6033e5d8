package cluster

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/lbserver/lbserver/systemd"
)

// The master and systemd. When systemd started the master (NOTIFY_SOCKET,
// LISTEN_FDS), the master's loop tells it what a person and systemd need to
// know, from the loop itself so that the notifications follow the events in
// order:
//
//	start      STATUS=1 of 2 workers ready, ... then, once every slot has a
//	           ready worker, READY=1 with MAINPID= (the master)
//	restart    STATUS=worker 2 restarting in 400ms; 1 of 2 workers ready
//	reload     RELOADING=1 with MONOTONIC_USEC= and STATUS=reloading 1 of 2,
//	           then READY=1 with a STATUS saying it finished or was aborted
//	stop       STOPPING=1 when the drain starts
//	watchdog   WATCHDOG=1 every half WATCHDOG_USEC, sent by the loop: a loop
//	           that is stuck stops the pings
//
// Without systemd nothing is sent.

// notifier is what the master's loop tells a service manager;
// *systemd.Notifier is the real one, tests record the messages.
type notifier interface {
	Notify(fields ...string) error
	Reloading(status string) error // RELOADING=1, MONOTONIC_USEC=, STATUS=
	Watchdog() error
	WatchdogInterval() time.Duration
}

// ErrSocketCount is wrapped by the error for a number of given or passed
// sockets the master cannot use: more than one, and not one per worker.
var ErrSocketCount = errors.New("give one socket, or one per worker")

// takeSystemd is what the master takes from systemd before it starts
// anything: the passed sockets and the notifier. The variables are removed
// from the process environment and from the workers' (Config.Env), so that
// no worker notifies systemd or takes the sockets as its own.
func takeSystemd(cfg *Config) (*sdState, []*os.File, error) {
	// In every case: with NoSystemd too, a worker must not take systemd's
	// sockets or notify it in the service's name.
	cfg.Env = withoutVars(cfg.Env, systemdVars...)
	if cfg.NoSystemd {
		return nil, nil, nil
	}
	env := systemd.OSEnv()
	var files []*os.File
	var err error
	if len(cfg.Files) == 0 {
		files, err = systemd.Files(env)
		if err != nil {
			return nil, nil, fmt.Errorf("socket activation: %w", err)
		}
		if n := len(files); n > 1 && n != cfg.Workers {
			closeFiles(files)
			return nil, nil, fmt.Errorf("socket activation: %d sockets passed (LISTEN_FDS) for %d workers: %w", n, cfg.Workers, ErrSocketCount)
		}
		if len(files) > 0 {
			how := "one per worker"
			if len(files) == 1 {
				how = "shared by every worker"
			}
			cfg.Logger.Info("socket activation: serving on the sockets systemd passed", "sockets", len(files), "use", how)
		}
	}
	n, err := systemd.NewNotifier(env)
	if err != nil {
		cfg.Logger.Warn("systemd notifications", "err", err)
	}
	var sd *sdState
	if n.Enabled() {
		sd = &sdState{n: n, pid: os.Getpid()}
	}
	return sd, files, nil
}

// systemdVars are the variables systemd gives the service's main process.
var systemdVars = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}

// sdState is the loop's side of the notifications; owned by the loop's
// goroutine. A nil *sdState sends nothing.
type sdState struct {
	n      notifier
	pid    int         // MAINPID: the master
	warned bool        // a failed notification was logged once
	stop   func() bool // stops the pending watchdog ping
	began  time.Time   // the reload under way began
}

type evWatchdog struct{}

// start sends the first status and schedules the first watchdog ping.
func (sd *sdState) start(l *loop) {
	if sd == nil {
		return
	}
	sd.send(l, "STATUS=starting "+workers(len(l.slots)))
	sd.schedule(l)
}

// schedule arms the next watchdog ping as a loop timer. The interval is
// systemd's (Notifier.WatchdogInterval); the pings are deliberately not
// systemd.Notifier.PingWatchdog's ticker, which a FORK server uses: a
// ticker goroutine would go on pinging while the loop is stuck, and the
// pings are there to say the loop is alive.
func (sd *sdState) schedule(l *loop) {
	if d := sd.n.WatchdogInterval(); d > 0 {
		sd.stop = l.after(d, func(*timer) event { return evWatchdog{} }).stop
	}
}

// watchdog pings systemd: the loop is alive (it is handling this event).
func (sd *sdState) watchdog(l *loop) {
	if sd == nil {
		return
	}
	sd.warn(l, sd.n.Watchdog())
	sd.schedule(l)
}

// end stops the pings: the loop has returned.
func (sd *sdState) end() {
	if sd != nil && sd.stop != nil {
		sd.stop()
	}
}

// notifySystemd is the loop's listener that notifies systemd (l.sd, set
// once before the loop runs; nil without systemd).
func (l *loop) notifySystemd(e Event) { l.sd.event(l, e) }

// event turns one of the loop's events into notifications.
func (sd *sdState) event(l *loop, e Event) {
	if sd == nil {
		return
	}
	switch e.Kind {
	case EventReady:
		if l.reload == nil && !l.stopping && (l.serving || !l.allReady()) {
			sd.send(l, "STATUS="+sd.counts(l))
		}
	case EventServing:
		sd.send(l, "READY=1", "MAINPID="+strconv.Itoa(sd.pid), "STATUS="+sd.counts(l))
	case EventReloadStarted:
		sd.began = l.sys.now()
		sd.warn(l, sd.n.Reloading(sd.reloading(l)))
	case EventSpawned:
		if l.reload != nil && l.reload.next > 0 {
			sd.send(l, "STATUS="+sd.reloading(l))
		}
	case EventReloaded:
		sd.send(l, "READY=1", "STATUS="+sd.counts(l)+"; reload finished in "+
			l.sys.now().Sub(sd.began).Round(time.Millisecond).String())
	case EventReloadFailed:
		sd.send(l, "READY=1", fmt.Sprintf("STATUS=%s; reload aborted at worker %d (%v), the old workers serve on", sd.counts(l), e.Slot, e.Err))
	case EventStopping:
		sd.send(l, "STOPPING=1", "STATUS=stopping: draining "+workers(len(l.children)))
	case EventExited:
		if l.stopping {
			sd.send(l, "STATUS=stopping: waiting for "+workers(len(l.children)))
		}
	}
}

// restarting reports a slot's worker restart after delay.
func (sd *sdState) restarting(l *loop, s *slot, delay time.Duration) {
	if sd == nil || l.stopping {
		return
	}
	when := ""
	if delay > 0 {
		when = " in " + delay.String()
	}
	sd.send(l, fmt.Sprintf("STATUS=worker %d restarting%s; %s", s.id, when, sd.counts(l)))
}

func workers(n int) string {
	if n == 1 {
		return "1 worker"
	}
	return strconv.Itoa(n) + " workers"
}

func (sd *sdState) counts(l *loop) string {
	ready := 0
	for _, s := range l.slots {
		if s.cur != nil && s.cur.ready {
			ready++
		}
	}
	return fmt.Sprintf("%d of %d workers ready", ready, len(l.slots))
}

func (sd *sdState) reloading(l *loop) string {
	return fmt.Sprintf("reloading %d of %d", l.reload.next+1, len(l.slots))
}

func (sd *sdState) send(l *loop, fields ...string) { sd.warn(l, sd.n.Notify(fields...)) }

// warn logs the first failed notification; systemd unreachable is no
// reason to stop serving.
func (sd *sdState) warn(l *loop, err error) {
	if err == nil || sd.warned {
		return
	}
	sd.warned = true
	l.log.Warn("systemd notification failed; serving anyway (further failures are not logged)", "err", err)
}
