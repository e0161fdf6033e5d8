package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/lbserver/lbserver/internal/config"
	"github.com/lbserver/lbserver/systemd"
)

// forkSystemd is what a FORK process tells systemd and takes from it: the
// socket it passed (socket activation), READY=1 once serving, STOPPING=1
// when the drain starts, STATUS= lines, and watchdog pings. Without systemd
// (no NOTIFY_SOCKET, no LISTEN_FDS) it does nothing.
type forkSystemd struct {
	notify *systemd.Notifier
	ln     net.Listener // the passed socket; nil: bind as usual
	log    *slog.Logger
	stop   func() // stops the pings; nil before serving
}

// newForkSystemd reads the systemd variables from env (and removes them).
// More than one passed socket, or one that is not a listening TCP socket, is
// a usage error: one line, exit 2, nothing started.
func newForkSystemd(env systemd.Env, log *slog.Logger) (*forkSystemd, error) {
	lns, err := systemd.Listeners(env)
	if err != nil {
		return nil, &config.UsageError{Msg: fmt.Sprintf("socket activation: %v", err)}
	}
	if len(lns) > 1 {
		for _, l := range lns {
			l.Close()
		}
		return nil, &config.UsageError{Msg: fmt.Sprintf("socket activation: %d sockets passed (LISTEN_FDS), FORK serves on one", len(lns))}
	}
	n, err := systemd.NewNotifier(env)
	if err != nil {
		log.Warn("systemd notifications", "err", err)
	}
	f := &forkSystemd{notify: n, log: log}
	if len(lns) == 1 {
		f.ln = lns[0]
		log.Info("socket activation: serving on the socket systemd passed", "addr", f.ln.Addr().String())
	}
	return f, nil
}

// listener is the passed socket, or nil.
func (f *forkSystemd) listener() net.Listener { return f.ln }

// serving tells systemd the server accepts on addr (READY=1), then, until
// close, pings the watchdog and sends STOPPING=1 once ctx ends (the drain).
// The pings come from a ticker (systemd.Notifier.PingWatchdog), not from the
// cluster master's loop: FORK has no loop whose liveness they could vouch
// for, and it keeps pinging through the drain.
func (f *forkSystemd) serving(ctx context.Context, addr string) {
	how := "bound"
	if f.ln != nil {
		how = "socket from systemd"
	}
	f.warn(f.notify.Ready(fmt.Sprintf("serving on %s (%s), pid %d", addr, how, os.Getpid())))
	stopPings := f.notify.PingWatchdog(f.warn)
	sent := make(chan struct{})
	stopping := context.AfterFunc(ctx, func() {
		defer close(sent)
		f.warn(f.notify.Stopping(fmt.Sprintf("draining connections on %s", addr)))
	})
	f.stop = func() {
		if !stopping() { // the drain began: STOPPING=1 is sent, or being sent
			<-sent
		}
		stopPings()
	}
}

// close stops the pings.
func (f *forkSystemd) close() {
	if f.stop != nil {
		f.stop()
		f.stop = nil
	}
}

func (f *forkSystemd) warn(err error) {
	if err != nil {
		f.log.Warn("systemd notification", "err", err)
	}
}
