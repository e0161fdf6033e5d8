package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// Run is the whole cluster: called in the master, it binds the sockets,
// starts Config.Workers copies of this program (same executable, same
// arguments) and supervises them until ctx is done, then stops them and
// returns; called in one of those copies, it runs fn with the Worker and
// returns fn's error. fn's ctx is done when the master stops the worker
// (SIGTERM reaches the caller's ctx) or when the master is gone.
//
// Where workers cannot share the master's sockets (not Linux), Run binds the
// address itself and runs fn once, in this process, as worker 1, and logs so.
//
// In the master, Run returns ErrForced or ErrStopTimeout when it had to
// kill workers, an error wrapping ErrNeverReady when a slot's workers kept
// failing to start (Config.MaxFailedStarts), and nil after a clean stop. A
// ctx already done when Run is called stops the master before it starts any
// worker: Run then returns nil, as for a stop asked a moment later (the
// caller has ctx to tell the two apart).
func Run(ctx context.Context, cfg Config, fn func(ctx context.Context, w *Worker) error) error {
	// The signals first, before anything that takes time: from here on a
	// SIGHUP is a reload in the master and nothing in a worker, never the
	// end of the process (Go's default for a signal nobody takes).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	if !supported() {
		return runInProcess(ctx, &cfg, fn)
	}
	w, err := workerFromEnv(&cfg)
	switch {
	case err == nil:
		return runWorker(ctx, &cfg, w, fn)
	case !errors.Is(err, errNotWorker):
		return err
	}
	ttinout := make(chan os.Signal, 4)
	more, fewer := scaleSignals()
	signal.Notify(ttinout, more, fewer)
	defer signal.Stop(ttinout)
	// A new master started by an upgrade inherits the old one's sockets.
	up, err := upgradeFromEnv(&cfg)
	if err != nil {
		return err
	}
	sdEnv := upgradeSystemdEnv(&cfg)
	sd, files, err := takeSystemd(&cfg)
	if err != nil {
		return err
	}
	if files != nil {
		defer closeFiles(files)
		cfg.Files = files
	}
	var m *Master
	if up != nil {
		m, err = newMaster(cfg, osSys(&cfg), up.sockets, up.addr)
	} else {
		m, err = listen(cfg, osSys(&cfg))
	}
	if err != nil {
		return err
	}
	defer m.close()
	m.l.hup = hup
	m.l.ttinout = ttinout
	m.l.sd = sd
	defer startUpgrades(m.l, &cfg, up, sdEnv)()
	// Without its control socket, reload commands (Reload) would not reach
	// this master, or would reach whoever holds the name: fail.
	stopControl, err := m.l.serveControl()
	if err != nil {
		return fmt.Errorf("master: %w (is another process holding it?)", err)
	}
	defer stopControl() // after the loop has returned: waiting commands are answered
	if cfg.OnMaster != nil {
		stop, err := cfg.OnMaster(m)
		if err != nil {
			return err
		}
		if stop != nil {
			defer stop()
		}
	}
	defer m.l.sys.wait()
	return m.l.run(ctx, cfg.Force)
}

// runInProcess serves fn in this process, as the only worker.
func runInProcess(ctx context.Context, cfg *Config, fn func(context.Context, *Worker) error) error {
	var ln net.Listener
	var err error
	if len(cfg.Files) > 0 {
		ln, err = net.FileListener(cfg.Files[0])
	} else {
		ln, err = net.Listen("tcp", cfg.Addr)
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	cfg.Logger.Warn("this platform cannot hand listening sockets to worker processes; serving in this process as one worker",
		"goos", runtime.GOOS, "addr", ln.Addr().String())
	cfg.Workers = 1
	w := &Worker{id: 1, cfg: cfg, lns: []net.Listener{ln}}
	defer w.closeListeners()
	ctx, cancel := w.delayStop(ctx, cfg.ShutdownDelay, cfg.Force)
	defer cancel()
	return fn(ctx, w)
}
