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

	"github.com/lbserver/lbserver/internal/balancepage"
	"github.com/lbserver/lbserver/internal/buildid"
	"github.com/lbserver/lbserver/internal/config"
	"github.com/lbserver/lbserver/internal/graceful"
	"github.com/lbserver/lbserver/internal/server"
	"github.com/lbserver/lbserver/internal/supervisor"
)

// run parses the command line and runs lbserver in the mode it asks for: a
// CLUSTER worker (when started by a master), a master (CLUSTER or --watch),
// or a plain FORK process. ctx ends on the first stop signal, force closes
// on the second.
func run(ctx context.Context, force <-chan struct{}, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
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

	w, isWorker, err := supervisor.FromEnv(getenv)
	if err != nil {
		return err
	}
	if isWorker {
		return runWorker(ctx, force, cfg, w, build, stderr)
	}
	if cfg.Supervised() {
		return runMaster(ctx, force, cfg, exe, build, stderr)
	}
	return runFork(ctx, force, cfg, build, stderr)
}

func newLogger(w io.Writer, role string, port int) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil)).With("role", role, "pid", os.Getpid(), "port", port)
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

func serveOpts(cfg config.Config, log *slog.Logger) graceful.Options {
	return graceful.Options{DrainTimeout: cfg.DrainTimeout, Logger: log}
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
func runFork(ctx context.Context, force <-chan struct{}, cfg config.Config, build string, stderr io.Writer) error {
	spareP()
	log := newLogger(stderr, "fork", cfg.Port)
	signal.Ignore(syscall.SIGHUP) // nothing to reload without --watch; do not die of it
	lc := net.ListenConfig{}
	if cfg.ReusePort {
		lc.Control = supervisor.ReusePortControl
	}
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose a free port with --port)", cfg.Addr(), err)
	}
	srv := newServer(cfg, 0, build, log)
	log.Info("serving", "addr", ln.Addr().String(), "mode", cfg.Mode, "build", build)
	opts := serveOpts(cfg, log)
	if cfg.ReusePort {
		opts.MaxConnRequests = reusePortRecycle
	}
	err = graceful.New(srv, opts).Serve(ctx, force, ln, func() { srv.SetReady(true) })
	log.Info("stopped")
	return err
}

// runWorker serves on the socket its master handed it, until SIGTERM or
// until the master is gone.
func runWorker(ctx context.Context, force <-chan struct{}, cfg config.Config, w *supervisor.Worker, build string, stderr io.Writer) error {
	// The master decides when a worker stops: a terminal's Ctrl-C reaches
	// the whole process group, and the master turns it into one SIGTERM.
	signal.Ignore(os.Interrupt, syscall.SIGHUP)
	spareP()
	log := newLogger(stderr, "worker", cfg.Port).With("worker", w.ID)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	srv := newServer(cfg, w.ID, build, log)
	opts := serveOpts(cfg, log)
	if w.Conns != nil {
		opts.Balancer = w.Conns
	} else if cfg.WorkerCount() > 1 {
		opts.MaxConnRequests = reusePortRecycle // no table: spread by recycling
	}
	gs := graceful.New(srv, opts)
	if w.Private != nil {
		gs.ServeListener(w.Private) // the master gathers this worker's /metrics there
	}
	wg.Go(func() {
		// gs also accepts for a slot whose worker is dead, when the master says so.
		if w.WatchMaster(ctx, gs) {
			log.Warn("master is gone; draining")
			cancel()
		}
	})
	err := gs.Serve(ctx, force, w.Listener, func() {
		srv.SetReady(true)
		if err := w.Ready(); err != nil {
			log.Error("tell master ready", "err", err)
		}
	})
	log.Info("stopped")
	return err
}

// runMaster supervises the workers: CLUSTER, or FORK with --watch.
func runMaster(ctx context.Context, force <-chan struct{}, cfg config.Config, exe, build string, stderr io.Writer) error {
	log := newLogger(stderr, "master", cfg.Port)
	m, err := supervisor.Listen(supervisor.Options{
		Exe:           exe,
		Args:          cfg.Args,
		Env:           os.Environ(),
		Workers:       cfg.WorkerCount(),
		Addr:          cfg.Addr(),
		ShareExisting: cfg.ReusePort,
		SharedSocket:  cfg.SharedSocket,
		StopTimeout:   cfg.DrainTimeout + 5*time.Second,
		Logger:        log,
	})
	if err != nil {
		return fmt.Errorf("%w (choose a free port with --port)", err)
	}
	log.Info("master", "mode", cfg.Mode, "build", build, "config", cfg.String())

	reload := make(chan struct{}, 1)
	poke := func() {
		select {
		case reload <- struct{}{}:
		default: // a reload is already pending
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopBG()
	wg.Go(func() {
		for {
			select {
			case <-bg.Done():
				return
			case <-hup:
				log.Info("SIGHUP: rolling reload")
				poke()
			}
		}
	})
	if cfg.Watch {
		wg.Go(func() {
			err := supervisor.Watch(bg, supervisor.WatchOptions{Exe: exe, Dirs: cfg.WatchDirs, Build: cfg.Build, Logger: log}, poke)
			if err != nil {
				log.Error("watch stopped", "err", err)
			}
		})
	}
	if cfg.MasterMetrics != "" {
		ln, err := net.Listen("tcp", cfg.MasterMetrics)
		if err != nil {
			return fmt.Errorf("master metrics: listen on %s: %w", cfg.MasterMetrics, err)
		}
		srv := &http.Server{Handler: masterMetricsHandler(m), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() { _ = srv.Serve(ln) })
		defer srv.Close()
	}
	return m.Run(ctx, force, reload)
}
