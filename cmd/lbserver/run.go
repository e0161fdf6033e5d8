package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/lbserver/lbserver/cluster"
	"github.com/lbserver/lbserver/drain"
	"github.com/lbserver/lbserver/internal/balancepage"
	"github.com/lbserver/lbserver/internal/buildid"
	"github.com/lbserver/lbserver/internal/config"
	"github.com/lbserver/lbserver/internal/logstream"
	"github.com/lbserver/lbserver/internal/server"
	"github.com/lbserver/lbserver/internal/watch"
	"github.com/lbserver/lbserver/systemd"
)

// run parses the command line and runs lbserver in the mode it asks for: a
// cluster (CLUSTER or --watch: the master, or one of its workers) or a plain
// FORK process. ctx ends on the first stop signal, force closes
// on the second.
func run(ctx context.Context, force <-chan struct{}, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "reload":
			return runReload(ctx, args[1:], stdout)
		case "scale":
			return runScale(ctx, args[1:], stdout)
		case "restart-worker":
			return runRestartWorker(ctx, args[1:], stdout)
		}
	}
	if len(args) > 0 && args[0] == "upgrade" {
		return runUpgrade(ctx, args[1:], stdout)
	}
	cfg, err := config.Parse(args, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	build, err := buildid.OfFile(exe)
	if err != nil {
		build = "unknown"
	}
	switch {
	case cfg.Version:
		fmt.Fprintf(stdout, "lbserver build %s (%s, %s/%s)\n", build, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case cfg.Check:
		fmt.Fprintf(stdout, "lbserver: configuration ok: %s\n", cfg)
		return nil
	}

	if cfg.Supervised() {
		return runCluster(ctx, force, cfg, exe, build, stdout, stderr)
	}
	return runFork(ctx, force, cfg, build, stdout, stderr)
}

// newLogger logs info lines to stdout, warnings and errors to stderr.
func newLogger(stdout, stderr io.Writer, role string, port int) *slog.Logger {
	return slog.New(logstream.New(stdout, stderr, nil)).With("role", role, "pid", os.Getpid(), "port", port)
}

// hint is config.ListenHint in parentheses, or "".
func hint(err error) string {
	if h := config.ListenHint(err); h != "" {
		return " (" + h + ")"
	}
	return ""
}

func newServer(cfg config.Config, workerID int, build string, log *slog.Logger) *server.Server {
	// The live balancing page: the page at /balance, its assets under /balance/.
	balance := balancepage.Handler()
	return server.New(server.Options{
		Extra:       map[string]http.Handler{"GET /balance": balance, "GET /balance/": balance},
		Mode:        string(cfg.Mode),
		WorkerID:    workerID,
		Port:        cfg.Port,
		HostName:    cfg.HostName,
		Args:        cfg.Args,
		Build:       build,
		MaxCant:     cfg.MaxCant,
		DefaultCant: cfg.DefaultCant,
		Slots:       cfg.ComputeSlots,
		Queue:       cfg.Queue,
		Logger:      log,
	})
}

func serveOpts(cfg config.Config, log *slog.Logger) drain.Options {
	return drain.Options{DrainTimeout: cfg.DrainTimeout, Logger: log}
}

// httpServer is the http.Server every serving process runs h on.
func httpServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, // slowloris
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute,  // the heavy route may compute for a while
		IdleTimeout:       75 * time.Second, // longer than nginx's upstream keepalive_timeout (30s as shipped, 60s by default)
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// reusePortRecycle is how many requests a keep-alive connection carries in
// a FORK process started with --reuseport (PM2 -i N): with no master, the
// processes share no connection table, so the only way to spread a few
// long-lived connections again is to recycle them (see docs/RELIABILITY.md).
const reusePortRecycle = 100

// spareP gives a serving process one P (Go scheduler slot) more than it has
// CPUs. /api/randoms computes on randoms.DefaultParallelism() goroutines,
// one per CPU, so the spare P's thread always waits in the network poller
// and a light request is picked up at once. With every P computing, Go polls
// the network only from sysmon, every 10 ms: that was /api/info's p99 under
// load (see docs/BENCHMARKS.md). An explicit GOMAXPROCS in the environment
// wins, and so does a cgroup CPU limit (GOMAXPROCS below the CPU count).
func spareP() {
	if n := runtime.GOMAXPROCS(0); n == runtime.NumCPU() && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(n + 1)
	}
}

// runFork serves on its own listener in this one process.
func runFork(ctx context.Context, force <-chan struct{}, cfg config.Config, build string, stdout, stderr io.Writer) error {
	spareP()
	log := newLogger(stdout, stderr, "fork", cfg.Port)
	signal.Ignore(syscall.SIGHUP) // nothing to reload without --watch; do not die of it
	sd, err := newForkSystemd(systemd.OSEnv(), log)
	if err != nil {
		return err
	}
	defer sd.close()
	lc := net.ListenConfig{}
	if cfg.ReusePort {
		lc.Control = cluster.ReusePortControl
	}
	ln := sd.listener() // systemd's socket, when it passed one
	if ln == nil {
		ln, err = lc.Listen(ctx, "tcp", cfg.Addr())
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w%s", cfg.Addr(), err, hint(err))
	}
	srv := newServer(cfg, 0, build, log)
	log.Info("serving", "addr", ln.Addr().String(), "mode", cfg.Mode, "build", build)
	opts := serveOpts(cfg, log)
	if cfg.ReusePort {
		opts.MaxConnRequests = reusePortRecycle
	}
	serveCtx, release := delayStop(ctx, cfg.ShutdownDelay, force, func() {
		srv.SetStopping()
		if cfg.ShutdownDelay > 0 {
			log.Info("stopping: /readyz answers 503; serving on before the drain", "shutdown_delay", cfg.ShutdownDelay)
		}
	})
	defer release()
	err = drain.New(httpServer(srv, log), opts).Serve(serveCtx, force, ln, func() { srv.SetReady(true); sd.serving(ctx, ln.Addr().String()) })
	log.Info("stopped")
	return err
}

// runCluster is CLUSTER mode (or FORK with --watch: one supervised
// worker). The same call is the master in the process the user started and
// a worker in each process the master starts with the same arguments.
func runCluster(ctx context.Context, force <-chan struct{}, cfg config.Config, exe, build string, stdout, stderr io.Writer) error {
	cc := cluster.Config{
		Addr:           cfg.Addr(),
		Workers:        cfg.WorkerCount(),
		ShareExisting:  cfg.ReusePort,
		SharedSocket:   cfg.SharedSocket,
		PrivateSockets: true, // the master gathers every worker's /metrics there
		DrainTimeout:   cfg.DrainTimeout,
		StopTimeout:    cfg.DrainTimeout + 5*time.Second, // from the SIGTERM, after ShutdownDelay
		ShutdownDelay:  cfg.ShutdownDelay,
		Force:          force,
		EnvPrefix:      "LBSERVER_",
		Args:           cfg.Args, // Exe: the path lbserver was started by, symlinks kept (a symlink deploy)

		MaxWorkers:        cfg.MaxWorkers,
		HealthInterval:    cfg.HealthInterval,
		HealthMisses:      cfg.HealthMisses,
		MaxRequests:       cfg.MaxRequests,
		MaxRequestsJitter: cfg.MaxRequestsJitter,
		MaxMemory:         cfg.MaxMemory,
		// Every worker keeps every CPU (and spareP's spare P): one
		// /api/randoms request computes on all of them
		// (randoms.DefaultParallelism), which a worker of GOMAXPROCS
		// CPUs/workers could not, and /api/info keeps a P free while
		// randoms compute. make bench measures the choice against
		// cluster's default share (configuration "CLUSTER,
		// GOMAXPROCS=1"): that share gives more heavy requests/s under
		// load, this one a faster lone request and a far lower /api/info
		// median while the CPU is saturated.
		WorkerProcs: -1,
	}
	if !cfg.Mode.Cluster() {
		cc.MaxWorkers = 1 // --watch: one worker, never scaled
	}
	id := cluster.WorkerIDFor(cc.EnvPrefix) // 0 in the master
	if id > 0 {
		cc.Logger = newLogger(stdout, stderr, "worker", cfg.Port).With("worker", id)
	} else {
		cc.Logger = newLogger(stdout, stderr, "master", cfg.Port)
	}
	log := cc.Logger
	cc.OnMaster = func(m *cluster.Master) (func(), error) {
		log.Info("master", "mode", cfg.Mode, "build", build, "config", cfg.String())
		return startMasterExtras(cfg, exe, m, log)
	}
	err := cluster.Run(ctx, cc, func(ctx context.Context, w *cluster.Worker) error {
		spareP()
		srv := newServer(cfg, w.ID(), build, log)
		srv.SetWorkers(w.Workers)
		srv.SetReady(true) // /healthz answers once Serve accepts
		// /readyz is the cluster's answer: this worker serves, and the
		// master has not begun to stop (nor is gone). A reload's old
		// worker stays ready while it drains: the new one serves its slot.
		served := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-w.Stopping():
				srv.SetStopping()
			case <-served:
			}
		})
		err := w.Serve(ctx, httpServer(masterOnly(srv), log))
		close(served)
		wg.Wait()
		log.Info("stopped")
		return err
	})
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "listen" && id == 0 {
		return fmt.Errorf("%w%s", err, hint(err))
	}
	if errors.Is(err, systemd.ErrNotTCPListener) || errors.Is(err, cluster.ErrSocketCount) {
		// Sockets systemd passed that the master cannot use: nothing was started.
		return &config.UsageError{Msg: err.Error()}
	}
	return err
}

// delayStop returns a context that is done delay after ctx (at once with
// no delay, or when force is closed), and calls stopping when ctx is done:
// the process serves on through the delay, not ready, so that a
// health-checking balancer takes it out before the drain closes the
// listener. release stops the goroutine it starts.
func delayStop(ctx context.Context, delay time.Duration, force <-chan struct{}, stopping func()) (context.Context, func()) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
		case <-dctx.Done():
			return
		}
		stopping()
		if delay > 0 {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-force:
			case <-dctx.Done():
			}
		}
		cancel()
	}()
	return dctx, func() { cancel(); <-done }
}

// startMasterExtras starts what lbserver's master serves besides its
// workers: --watch (a rolling reload when the executable changes) and
// --master-metrics. It returns what stops them.
func startMasterExtras(cfg config.Config, exe string, m *cluster.Master, log *slog.Logger) (func(), error) {
	var srv *http.Server
	var ln net.Listener
	if cfg.MasterMetrics != "" {
		var err error
		ln, err = listenMasterMetrics(cfg.MasterMetrics, m.UpgradedFrom() != 0)
		if err != nil {
			return nil, fmt.Errorf("master metrics: listen on %s: %w", cfg.MasterMetrics, err)
		}
		srv = masterMetricsServer(masterMetricsHandler(m), log)
	}
	bg, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if srv != nil {
		wg.Go(func() { _ = srv.Serve(ln) })
	}
	if cfg.Watch {
		wg.Go(func() {
			err := watch.Run(bg, watch.Options{Exe: exe, Dirs: cfg.WatchDirs, Build: cfg.Build, Logger: log}, m.Reload)
			if err != nil {
				log.Error("watch stopped", "err", err)
			}
		})
	}
	return func() {
		cancel()
		if srv != nil {
			_ = srv.Close()
		}
		wg.Wait()
	}, nil
}
