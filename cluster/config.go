package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Config configures Run. Zero values take the documented defaults. The
// master and its workers run the same binary with the same arguments, so
// they build the same Config: fields that only one side uses say so.
//
// The fields come in groups: the sockets the workers accept on, the
// workers themselves, timing, supervision (restarts, health, recycling),
// the master's hooks, and how worker processes are started.
type Config struct {
	// Sockets: where the workers accept connections.
	//
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
	// ShareExisting allows binding where other SO_REUSEPORT sockets
	// already listen; otherwise a port in use is an error.
	ShareExisting bool
	// SharedSocket gives every slot the same socket (one accept queue)
	// instead of one SO_REUSEPORT socket per slot.
	SharedSocket bool
	// PrivateSockets gives each worker a second, private listener, for
	// the master only: a unix socket in Linux's abstract namespace
	// (nothing on disk) on which Serve serves too. The master reaches a
	// worker there at WorkerInfo.PrivateAddr (see PrivateTransport), e.g.
	// to gather every worker's metrics; the default HealthCheck asks there.
	// Its name is listed in /proc/net/unix, but the worker accepts there
	// only processes of its own user and root (SO_PEERCRED); a request
	// that arrives there carries a *net.UnixAddr as its
	// http.LocalAddrContextKey, so a handler can serve there only what the
	// master needs.
	PrivateSockets bool

	// Workers: how many, and how they share the load.
	//
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
	// MaxWorkers bounds Master.Scale (and SIGTTIN): the master binds a
	// socket for every slot it may use at start, so that every worker can
	// adopt every slot. Default max(Workers, 4 × GOMAXPROCS), at most 64;
	// with sockets given one per slot (Files, systemd), Workers.
	MaxWorkers int
	// NoSpread turns off the connection table that keeps the workers'
	// open keep-alive connections even (on by default whenever the cluster
	// can have more than one worker, MaxWorkers > 1; with one worker it
	// never sheds anything): with it, a worker with more than its share of the
	// cluster's connections closes one after answering, and its client
	// reconnects. With NoSpread, Worker.Serve recycles keep-alive
	// connections every MaxConnRequests requests (default 100 then) to
	// spread them again, which costs a reconnect per 100 requests: see
	// "Keep-alive connections" in the package doc.
	NoSpread bool
	// MaxConnRequests is how many requests a keep-alive connection carries
	// in Serve (drain.Options.MaxConnRequests).
	MaxConnRequests int
	// Messages gives every worker a message channel to and from the
	// master: Master.Send and Broadcast, Worker.Messages; Worker.Send and
	// OnMessage. See MaxMessage.
	Messages bool

	// Timing: starts and stops.
	ReadyTimeout time.Duration // every new worker must be ready within it, else it is stopped; default 15s
	DrainTimeout time.Duration // worker: Serve's drain budget; default 10s
	StopTimeout  time.Duration // a stopped worker must exit within it, else SIGKILL; default DrainTimeout + 5s
	// ShutdownDelay is how long the workers serve on, with Worker.Stopping
	// closed, between the start of the master's stop and their SIGTERM: time
	// for health-checking balancers to stop sending them traffic. Default 0.
	// In-process (no worker processes), Run's fn gets its ctx done that long
	// after the stop. A reload never waits for it.
	ShutdownDelay time.Duration
	// Force, once closed, ends the stop at once: the master SIGKILLs every
	// worker, a worker cuts its drain short. Close it on a second stop
	// signal (see Signals).
	Force <-chan struct{}

	// Supervision: restarts, health checks, recycling.
	CrashWindow time.Duration // crashes counted for the restart backoff; default 1m
	MaxBackoff  time.Duration // restart delay cap; default 10s
	// MaxFailedStarts is how many starts in a row of a slot may fail (the
	// worker cannot start, exits before it is ready, or is not ready within
	// ReadyTimeout) while none of that slot's workers was ever ready; then
	// the master stops and Run returns an error wrapping ErrNeverReady.
	// Default 5; negative: never give up. A slot served once restarts
	// forever, after its backoff.
	MaxFailedStarts int
	// HealthInterval, if set, is how often the master checks that every
	// ready worker still answers (see HealthCheck); HealthMisses misses in
	// a row make a worker unresponsive: another worker adopts its slot, it
	// is killed (SIGKILL) and replaced. Needs PrivateSockets or a
	// HealthCheck.
	HealthInterval time.Duration
	// HealthMisses is how many checks in a row a worker may miss; default 3.
	HealthMisses int
	// HealthCheck checks one worker; it must return once ctx is done. The
	// default is an HTTP "OPTIONS *" request on the worker's private socket
	// (PrivateSockets), which net/http answers itself, through the accept
	// loop and a connection goroutine, without calling the handler: any
	// response is an answer, however busy the handlers are.
	HealthCheck func(ctx context.Context, w WorkerInfo) error
	// MaxRequests, if set, recycles a worker once it has served that many
	// requests (Worker.Serve counts them) plus a random 0 to
	// MaxRequestsJitter of its own: a new worker replaces it the way a
	// reload does, one slot at a time (Gunicorn's max_requests).
	MaxRequests       int
	MaxRequestsJitter int
	// MaxMemory, if set, recycles a worker whose resident memory, read by
	// the master from /proc, is above it, in bytes (PM2's
	// max_memory_restart). The master looks every second.
	MaxMemory int64

	// Hooks: what the master tells the program.
	//
	// OnMaster, if set, runs in the master once the sockets are bound and
	// before any worker starts, e.g. to serve metrics from m.Stats. An
	// error ends Run with everything released; stop, if not nil, is called
	// once every worker has exited.
	OnMaster func(m *Master) (stop func(), err error)
	// OnEvent, if set, is called by the master's loop for every event, in
	// order; it must not block. Master.Stats and Master.Workers called after
	// an event was reported show at least that event.
	OnEvent func(Event)
	// OnMessage, if set, is called by the master's loop for every message a
	// worker sends (Worker.Send), in order; it must not block.
	OnMessage func(Message)
	// Logger receives one line per event; nil discards.
	Logger *slog.Logger

	// Process: how worker processes are started.
	//
	// EnvPrefix names the environment variables a master sets for its
	// workers; default DefaultEnvPrefix. A worker reads its slot from
	// them (WorkerIDFor).
	EnvPrefix string
	// Exe, Args and Env are what workers are started with; default the
	// path this program was started by (os.Args[0], absolute, symlinks
	// kept: each worker runs what the path names when it starts; see
	// "What a reload replaces"), os.Args[1:] and os.Environ().
	Exe  string
	Args []string
	Env  []string
	// WorkerEnv, if set, gives the worker of a slot its own extra
	// environment ("NAME=value" entries, after Env), at every start of that
	// slot: Node's cluster.fork(env), e.g. a shard number or a role.
	WorkerEnv func(slot int) []string
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
	if c.MaxWorkers == 0 {
		c.MaxWorkers = max(c.Workers, min(maxAdoptSlots, 4*runtime.GOMAXPROCS(0)))
	}
	if c.MaxWorkers < c.Workers {
		return fmt.Errorf("cluster: MaxWorkers %d is below Workers %d", c.MaxWorkers, c.Workers)
	}
	if c.HealthInterval > 0 {
		if c.HealthMisses == 0 {
			c.HealthMisses = 3
		}
		if c.HealthCheck == nil && !c.PrivateSockets {
			return errors.New("cluster: HealthInterval needs PrivateSockets (the default check asks each worker on its private socket) or a HealthCheck")
		}
	}
	if c.HealthInterval < 0 || c.HealthMisses < 0 || c.MaxRequests < 0 || c.MaxRequestsJitter < 0 || c.MaxMemory < 0 {
		return errors.New("cluster: negative HealthInterval, HealthMisses, MaxRequests, MaxRequestsJitter or MaxMemory")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.EnvPrefix == "" {
		c.EnvPrefix = DefaultEnvPrefix
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

// DefaultEnvPrefix is the default Config.EnvPrefix: a master started with
// it sets CLUSTER_WORKER_ID and the like for its workers.
const DefaultEnvPrefix = "CLUSTER_"

// WorkerID tells a process whether a master started it as a worker, and
// which: the worker's slot (1..Workers), or 0 in the master and in any other
// process. It reads the environment a master sets with DefaultEnvPrefix;
// a program that sets Config.EnvPrefix asks WorkerIDFor. Call it before
// Run, e.g. to name the process's logs or to do master-only set-up.
func WorkerID() int { return WorkerIDFor(DefaultEnvPrefix) }

// WorkerIDFor is WorkerID for a master whose Config.EnvPrefix is prefix
// ("" for DefaultEnvPrefix).
func WorkerIDFor(prefix string) int {
	if prefix == "" {
		prefix = DefaultEnvPrefix
	}
	id, _ := strconv.Atoi(os.Getenv(prefix + envWorkerID))
	return max(id, 0)
}
