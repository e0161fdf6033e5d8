package systemd

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifier sends sd_notify messages to systemd. It is safe for concurrent use.
// When NOTIFY_SOCKET was unset (not started by systemd, or by a unit that is
// not Type=notify) every method does nothing and returns nil.
type Notifier struct {
	addr     string        // NOTIFY_SOCKET: a path, or @name for an abstract socket; "" = off
	watchdog time.Duration // WATCHDOG_USEC for this process; 0 = off
}

// NewNotifier reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from env and
// removes them, so that child processes do not notify systemd in the name of
// the service. The returned Notifier is always usable: a non-nil error is a
// warning for the caller to log (a malformed variable, whose feature is then
// off), never a reason to stop.
func NewNotifier(env Env) (*Notifier, error) {
	addr := env.Getenv("NOTIFY_SOCKET")
	usec := env.Getenv("WATCHDOG_USEC")
	wpid := env.Getenv("WATCHDOG_PID")
	env.unset("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
	n := &Notifier{}
	var errs []error
	switch {
	case addr == "":
	case strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "@"):
		n.addr = addr
	default:
		errs = append(errs, fmt.Errorf("NOTIFY_SOCKET=%q: want an absolute path or @name; not notifying systemd", addr))
	}
	if usec != "" {
		d, err := watchdogTimeout(usec, wpid, env.Getpid())
		if err != nil {
			errs = append(errs, fmt.Errorf("%w; no watchdog pings", err))
		}
		n.watchdog = d
	}
	return n, errors.Join(errs...)
}

// watchdogTimeout is what sd_watchdog_enabled(3) returns: the timeout when
// WATCHDOG_USEC is set and WATCHDOG_PID is unset or names this process.
func watchdogTimeout(usec, wpid string, pid int) (time.Duration, error) {
	us, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || us == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", usec)
	}
	if wpid != "" {
		p, err := strconv.Atoi(wpid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("WATCHDOG_PID=%q: want a process id", wpid)
		}
		if p != pid {
			return 0, nil // the watchdog is another process's
		}
	}
	return time.Duration(us) * time.Microsecond, nil
}

// Enabled reports whether systemd asked for notifications (NOTIFY_SOCKET).
func (n *Notifier) Enabled() bool { return n.addr != "" }

// Addr is the socket the notifications go to ("" when disabled).
func (n *Notifier) Addr() string { return n.addr }

// WatchdogInterval is how often to call [Notifier.Watchdog]: half the unit's
// WatchdogSec=, as sd_watchdog_enabled(3) advises; 0 when there is no
// watchdog for this process (or no NOTIFY_SOCKET to ping).
func (n *Notifier) WatchdogInterval() time.Duration {
	if n.addr == "" {
		return 0
	}
	return n.watchdog / 2
}

// Ready sends READY=1: start-up (or a reload) is finished. status, if not
// empty, is sent with it as STATUS=.
func (n *Notifier) Ready(status string) error {
	return n.Notify(withStatus(status, "READY=1")...)
}

// Reloading sends RELOADING=1 with MONOTONIC_USEC= (the pair Type=notify-reload
// units need, systemd 253 and later) and STATUS=status. Send [Notifier.Ready]
// when the reload has finished or was given up.
func (n *Notifier) Reloading(status string) error {
	fields := []string{"RELOADING=1"}
	if us, ok := monotonicUsec(); ok {
		fields = append(fields, "MONOTONIC_USEC="+strconv.FormatInt(us, 10))
	}
	return n.Notify(withStatus(status, fields...)...)
}

// Stopping sends STOPPING=1 (and STATUS=status): the service has begun to stop.
func (n *Notifier) Stopping(status string) error {
	return n.Notify(withStatus(status, "STOPPING=1")...)
}

// Status sends STATUS=status, the line `systemctl status` shows as "Status:".
func (n *Notifier) Status(status string) error {
	return n.Notify(withStatus(status)...)
}

// MainPID sends MAINPID=pid: which process systemd should treat as the
// service's main process (needed only when it is not the one systemd started).
func (n *Notifier) MainPID(pid int) error {
	return n.Notify("MAINPID=" + strconv.Itoa(pid))
}

// Watchdog sends WATCHDOG=1: the service is alive. Call it every
// [Notifier.WatchdogInterval] from the code whose liveness it vouches for.
func (n *Notifier) Watchdog() error {
	if n.WatchdogInterval() == 0 {
		return nil
	}
	return n.Notify("WATCHDOG=1")
}

// PingWatchdog sends WATCHDOG=1 every [Notifier.WatchdogInterval] from a
// goroutine of its own, until stop is called; stop waits for that goroutine
// and may be called more than once. A failed ping is given to onErr (nil:
// dropped). Without a watchdog for this process it starts nothing.
//
// A ticker vouches only that the process is scheduled. A server whose
// liveness is an event loop should call [Notifier.Watchdog] from that loop
// instead, as one of its events, so that a stuck loop stops the pings and
// systemd restarts the service: the cluster package's master does that.
func (n *Notifier) PingWatchdog(onErr func(error)) (stop func()) {
	d := n.WatchdogInterval()
	if d == 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := n.Watchdog(); err != nil && onErr != nil {
					onErr(err)
				}
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// Notify sends one datagram of VAR=value fields, one per line, as
// sd_notify(3) does. It does nothing when notifications are disabled. It
// never waits: when the socket's queue is full (systemd is not reading it)
// the message is dropped and the error wraps [ErrDropped].
func (n *Notifier) Notify(fields ...string) error {
	if n.addr == "" || len(fields) == 0 {
		return nil
	}
	// A socket per message, as sd_notify does: systemd re-creates its socket
	// on daemon-reexec, which a long-lived connected socket would miss.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if err := writeNow(c, []byte(strings.Join(fields, "\n"))); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr, err)
	}
	return nil
}

// withStatus appends STATUS=status to fields unless status is empty. A
// newline would end the field early, so newlines become spaces.
func withStatus(status string, fields ...string) []string {
	if status == "" {
		return fields
	}
	return append(fields, "STATUS="+strings.NewReplacer("\r", " ", "\n", " ").Replace(status))
}

// ErrDropped is wrapped by Notify's error when the notification socket's
// queue is full (systemd not reading it): the message was dropped rather
// than block the caller.
var ErrDropped = errors.New("socket queue full; message dropped")
