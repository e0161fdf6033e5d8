package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures Run. Zero values take the documented defaults. The
// master and its workers run the same binary with the same arguments, so
// they build the same Config: fields that only one side uses say so.
type Config struct {
	// Addr is the TCP address to listen on, e.g. ":8080". Ignored when
	// Files is set.
	Addr string
	// Files are listening sockets opened by someone else (a parent
	// process) to use instead of binding Addr: one per slot, or one shared
	// by every slot. Run works on duplicates; the caller keeps and closes
	// these. Without Files, the master takes the sockets systemd passed
	// (socket activation), if any.
	Files []*os.File
	// NoSystemd turns off what the master does for systemd: taking the
	// sockets it passed (LISTEN_FDS) and notifying it (NOTIFY_SOCKET:
	// READY=1 once every worker is ready, RELOADING=1, STOPPING=1, STATUS=
	// lines, watchdog pings). Without systemd these do nothing anyway.
	NoSystemd bool
	// Workers is the number of worker processes (slots); default
	// runtime.GOMAXPROCS(0), which follows the cgroup CPU quota.
	Workers int
	// WorkerProcs is the GOMAXPROCS each worker starts with, set in its
	// environment; default: the CPUs this program may use
	// (runtime.GOMAXPROCS(0) in the master) divided by the workers,
	// rounded up, so that N workers do not run N times as many threads as
	// there are CPUs. Negative: none set, every worker takes Go's default
	// (all CPUs). A GOMAXPROCS already in Env wins over both. See
	// "GOMAXPROCS" in the package doc.
	WorkerProcs int
	// ShareExisting allows binding where other SO_REUSEPORT sockets
	// already listen; otherwise a port in use is an error.
	ShareExisting bool
	// SharedSocket gives every slot the same socket (one accept queue)
	// instead of one SO_REUSEPORT socket per slot.
	SharedSocket bool
	// Balance keeps the workers' open keep-alive connections even through a
	// shared connection table (with more than one worker). Without it,
	// Worker.Serve recycles keep-alive connections every MaxConnRequests
	// requests (default 100 then) to spread them again.
	Balance bool
	// Private gives each worker a second, private listener (a unix socket
	// in Linux's abstract namespace, nothing on disk) on which Serve serves
	// too; the master reaches a worker there at WorkerInfo.Private, e.g. to
	// gather every worker's metrics. Its name is listed in /proc/net/unix,
	// but the worker accepts there only processes of its own user and root
	// (SO_PEERCRED); a request that arrives there carries a *net.UnixAddr
	// as its http.LocalAddrContextKey, so a handler can serve there only
	// what the master needs.
	Private bool

	ReadyTimeout time.Duration // every new worker must be ready within it, else it is stopped; default 15s
	DrainTimeout time.Duration // worker: Serve's drain budget; default 10s
	StopTimeout  time.Duration // a stopped worker must exit within it, else SIGKILL; default DrainTimeout + 5s
	// ShutdownDelay is how long the workers serve on, with Worker.Stopping
	// closed, between the start of the master's stop and their SIGTERM: time
	// for health-checking balancers to stop sending them traffic. Default 0.
	// In-process (no worker processes), Run's fn gets its ctx done that long
	// after the stop. A reload never waits for it.
	ShutdownDelay time.Duration
	CrashWindow   time.Duration // crashes counted for the restart backoff; default 1m
	MaxBackoff    time.Duration // restart delay cap; default 10s
	// MaxConnRequests is how many requests a keep-alive connection carries
	// in Serve (drain.Options.MaxConnRequests).
	MaxConnRequests int

	// MaxFailedStarts is how many starts in a row of a slot may fail (the
	// worker cannot start, exits before it is ready, or is not ready within
	// ReadyTimeout) while none of that slot's workers was ever ready; then
	// the master stops and Run returns an error wrapping ErrNeverReady.
	// Default 5; negative: never give up. A slot served once restarts
	// forever, after its backoff.
	MaxFailedStarts int
	// Force, once closed, ends the stop at once: the master SIGKILLs every
	// worker, a worker cuts its drain short. Close it on a second stop
	// signal (see Signals).
	Force <-chan struct{}
	// Master, if set, runs in the master once the sockets are bound and
	// before any worker starts, e.g. to serve metrics from m.Stats. An
	// error ends Run with everything released; stop, if not nil, is called
	// once every worker has exited.
	Master func(m *Master) (stop func(), err error)
	// OnEvent, if set, is called by the master's loop for every event, in
	// order; it must not block. Master.Stats and Master.Workers called after
	// an event was reported show at least that event.
	OnEvent func(Event)
	// Logger receives one line per event; nil discards.
	Logger *slog.Logger

	// EnvPrefix names the environment variables a master sets for its
	// workers; default "CLUSTER_".
	EnvPrefix string
	// Exe, Args and Env are what workers are started with; default the
	// path this program was started by (os.Args[0], absolute, symlinks
	// kept: each worker runs what the path names when it starts; see
	// "What a reload replaces"), os.Args[1:] and os.Environ().
	Exe  string
	Args []string
	Env  []string
	// Stdout and Stderr are the workers'; default the master's.
	Stdout, Stderr io.Writer
}

func (c *Config) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Workers < 1 {
		return fmt.Errorf("cluster: %d workers", c.Workers)
	}
	def(&c.ReadyTimeout, 15*time.Second)
	def(&c.DrainTimeout, 10*time.Second)
	def(&c.StopTimeout, c.DrainTimeout+5*time.Second)
	def(&c.CrashWindow, time.Minute)
	def(&c.MaxBackoff, 10*time.Second)
	if c.MaxFailedStarts == 0 {
		c.MaxFailedStarts = 5
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.EnvPrefix == "" {
		c.EnvPrefix = "CLUSTER_"
	}
	if c.Exe == "" {
		exe, err := invokedExe()
		if err != nil {
			return fmt.Errorf("cluster: find own executable: %w", err)
		}
		c.Exe = exe
	}
	if c.Args == nil && len(os.Args) > 0 {
		c.Args = os.Args[1:]
	}
	if c.Env == nil {
		c.Env = os.Environ()
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	return nil
}

// invokedExe is the path this program was started by: os.Args[0], found in
// PATH when it has no slash, made absolute against the working directory,
// as long as it still names this executable; os.Executable otherwise (the
// program changed its directory, or its argv[0] says something else).
// Unlike os.Executable, it keeps the symlinks: a worker started by this path
// runs whatever it names at that start (a symlink deploy).
func invokedExe() (string, error) {
	exe, err := os.Executable()
	if err != nil || len(os.Args) == 0 || os.Args[0] == "" {
		return exe, err
	}
	p := os.Args[0]
	if !strings.ContainsRune(p, os.PathSeparator) {
		if p, err = exec.LookPath(p); err != nil {
			return exe, nil
		}
	}
	p, err = filepath.Abs(p)
	if err != nil {
		return exe, nil
	}
	named, err1 := os.Stat(p)
	running, err2 := os.Stat(exe)
	if err1 != nil || err2 != nil || !os.SameFile(named, running) {
		return exe, nil
	}
	return p, nil
}

// WorkerID is the slot of this process when a master started it as a
// worker (read from the environment named by EnvPrefix), 0 otherwise. Call
// it before Run, e.g. to name the process's logs.
func (c Config) WorkerID() int {
	prefix := c.EnvPrefix
	if prefix == "" {
		prefix = "CLUSTER_"
	}
	id, _ := strconv.Atoi(os.Getenv(prefix + envWorkerID))
	return max(id, 0)
}

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
	sd, files, err := takeSystemd(&cfg)
	if err != nil {
		return err
	}
	if files != nil {
		defer closeFiles(files)
		cfg.Files = files
	}
	m, err := listen(cfg, osSys(&cfg))
	if err != nil {
		return err
	}
	defer m.close()
	m.l.hup = hup
	m.l.sd = sd
	// Without its control socket, reload commands (Reload) would not reach
	// this master, or would reach whoever holds the name: fail.
	stopControl, err := m.l.serveControl()
	if err != nil {
		return fmt.Errorf("master: %w (is another process holding it?)", err)
	}
	defer stopControl() // after the loop has returned: waiting commands are answered
	if cfg.Master != nil {
		stop, err := cfg.Master(m)
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

// runWorker runs fn as a worker until it returns. fn's ctx ends at SIGTERM
// or when the master is gone (lifeline EOF); a second SIGTERM cuts the
// drain short (as Config.Force does). It takes the signals itself, whatever
// the caller does with them: a program that never calls Signals drains too.
func runWorker(parent context.Context, cfg *Config, w *Worker, fn func(context.Context, *Worker) error) error {
	// SIGINT and SIGHUP are taken and dropped: a terminal's Ctrl-C (or
	// hangup) reaches the whole process group, and the master turns it into
	// one SIGTERM per worker, which a SIGINT seen here first would make a
	// second stop signal. Ignore removes the caller's own handlers of them
	// (Signals'); taking them instead of ignoring them (SIG_IGN) keeps the
	// worker's own children, which inherit ignored signals across exec,
	// with the default dispositions.
	signal.Ignore(os.Interrupt, syscall.SIGHUP)
	dropped := make(chan os.Signal, 1) // never read: a full channel drops
	signal.Notify(dropped, os.Interrupt, syscall.SIGHUP)
	defer signal.Stop(dropped)
	terms := make(chan os.Signal, 2)
	signal.Notify(terms, syscall.SIGTERM)
	defer signal.Stop(terms)

	var stopped atomic.Bool // a SIGTERM reached this worker
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	force := make(chan struct{})
	callerForce := cfg.Force
	cfg.Force = force // Serve's drain is cut short by either
	done := make(chan struct{})
	var owned sync.WaitGroup
	owned.Go(func() {
		select {
		case <-terms:
			cfg.Logger.Info("SIGTERM: draining")
			stopped.Store(true)
			cancel()
		case <-callerForce:
			close(force)
			return
		case <-done:
			return
		}
		select {
		case <-terms:
			cfg.Logger.Warn("second SIGTERM: cutting the drain short")
		case <-callerForce:
		case <-done:
			return
		}
		close(force)
	})
	owned.Go(func() {
		if w.watchMaster(ctx) {
			cfg.Logger.Warn("master is gone; draining")
			cancel()
		}
	})
	err := callWorker(ctx, w, fn)
	cancel()
	close(done)
	owned.Wait()
	w.closeListeners()
	w.farewell(lastWords(stopped.Load() || parent.Err() != nil, err))
	return err
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

// Master is the running master, for Config.Master: its address, its
// counters and its workers, and reloads on demand.
type Master struct {
	l       *loop
	addr    net.Addr
	sockets []*os.File
}

// listen binds (or takes) the sockets and makes the connection table:
// everything the loop needs, released by close.
func listen(cfg Config, s sys) (*Master, error) {
	n := cfg.Workers
	if cfg.SharedSocket {
		n = 1
	}
	var files []*os.File
	var addr net.Addr
	var err error
	if len(cfg.Files) > 0 {
		if len(cfg.Files) != 1 && len(cfg.Files) != cfg.Workers {
			return nil, fmt.Errorf("cluster: %d sockets given for %d workers: %w", len(cfg.Files), cfg.Workers, ErrSocketCount)
		}
		files, addr, err = adoptFiles(cfg.Files)
	} else {
		files, addr, err = listenSockets(cfg.Addr, n, cfg.ShareExisting, !cfg.SharedSocket)
	}
	if err != nil {
		return nil, err
	}
	var table *connTable
	if cfg.Balance && cfg.Workers > 1 {
		// Room for every slot's worker and its replacement during a reload,
		// twice over.
		if table, err = createTable(min(maxEntries, 4*cfg.Workers)); err != nil {
			cfg.Logger.Warn("no connection table: keep-alive connections are spread by recycling only", "err", err)
			table = nil
		}
	}
	m := &Master{addr: addr, sockets: files}
	m.l = newLoop(cfg, s, files, table)
	m.l.addr = addr.String()
	m.l.ownSockets = len(cfg.Files) == 0
	return m, nil
}

// close releases the sockets and the connection table.
func (m *Master) close() {
	closeFiles(m.sockets)
	if m.l.table != nil {
		_ = m.l.table.close()
	}
}

// Addr is the address the workers' sockets are bound to.
func (m *Master) Addr() net.Addr { return m.addr }

// Reload asks for a rolling reload, as SIGHUP does. It never blocks; it
// may be called from Config.Master (the reload then starts with the loop).
func (m *Master) Reload() {
	select {
	case m.l.reloads <- struct{}{}:
	default: // one is pending already
	}
}

// Stats are the master's counters, as of its last event.
type Stats struct {
	Starts   int64 // workers started, for any reason
	Exits    int64 // workers exited, for any reason
	Restarts int64 // workers started to replace one that died
	Reloads  int64 // rolling reloads completed
	Live     int64 // workers running now
	Adopted  int64 // slots without a ready worker, accepted for by another worker now
}

// Stats returns the master's counters.
func (m *Master) Stats() Stats { return m.l.snap.Load().stats }

// WorkerInfo describes a live worker process.
type WorkerInfo struct {
	Slot    int
	Pid     int
	Ready   bool   // it reported ready
	Current bool   // it is its slot's current worker (false while it is replaced, or a reload's new one not yet ready)
	Private string // address of its private unix socket (Config.Private); "" if none
	// Conns is how many open connections it counts in the connection
	// table (Config.Balance); -1 when it has no entry.
	Conns int64
	entry int
}

// Workers lists the live workers by slot, then pid.
func (m *Master) Workers() []WorkerInfo {
	ws := m.l.snap.Load().workers
	out := make([]WorkerInfo, len(ws))
	for i, w := range ws {
		w.Conns = -1
		if w.entry >= 0 && m.l.table != nil {
			w.Conns = m.l.table.count(w.entry)
		}
		out[i] = w
	}
	return out
}

// PrivateTransport is an http.RoundTripper that reaches a worker on its
// private socket: the request's URL host is ignored, the connection goes
// to addr (a WorkerInfo.Private).
func PrivateTransport(addr string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		},
		DisableKeepAlives: true,
	}
}
