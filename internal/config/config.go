// Package config turns lbserver's command line and environment into a
// validated Config. It knows nothing of HTTP or processes: it is pure, so the
// command-line parser can be unit-tested, fuzzed and used by `--check`.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Mode is how lbserver runs: one process, or a master with workers.
type Mode string

// The two modes. Parsing is case-insensitive; the canonical spelling is upper case.
const (
	ModeFork    Mode = "FORK"
	ModeCluster Mode = "CLUSTER"
)

// Defaults, documented in --help.
const (
	DefaultPort         = 8080
	DefaultMaxCant      = 1_000_000_000
	DefaultCant         = 100_000_000
	DefaultDrainTimeout = 10 * time.Second
	DefaultQueue        = 64
	// MaxShutdownDelay bounds --shutdown-delay: a balancer's health check
	// notices a 503 within a few of its intervals, never minutes.
	MaxShutdownDelay = 5 * time.Minute
	// A CLUSTER worker that misses DefaultHealthMisses health checks in a
	// row, DefaultHealthInterval apart, is killed and replaced.
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthMisses   = 3
)

// ErrHelp is returned when --help was asked for; the usage was already written.
var ErrHelp = flag.ErrHelp

// UsageError is a bad command line: wrong flag, bad value. main exits 2 for it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Config is everything a run of lbserver needs to know, with defaults filled in.
type Config struct {
	Host     string // address to bind; "" means all interfaces
	HostName string // sent in the X-Server-Host header; "" means the machine's hostname
	Port     int    // 1..65535
	Mode     Mode
	Workers  int // CLUSTER workers; --workers with FORK is a usage error

	MaxCant      int64         // largest cant /api/randoms accepts
	DefaultCant  int64         // cant when the query has none
	DrainTimeout time.Duration // how long in-flight requests get on shutdown
	// ShutdownDelay is how long a stop keeps serving, with /readyz answering
	// 503, before the drain begins: time for a balancer's health checks (or
	// Kubernetes' endpoint removal) to take the instance out first.
	ShutdownDelay time.Duration
	ComputeSlots  int // heavy requests computing at once (per process)
	Queue         int // heavy requests waiting for a slot before 503

	ReusePort bool     // FORK: bind with SO_REUSEPORT so several instances share a port
	Watch     bool     // supervise and replace the worker(s) when the executable changes
	WatchDirs []string // extra folders whose changes trigger Build then a reload
	Build     string   // shell command run before a reload triggered by WatchDirs

	MasterMetrics string // CLUSTER: address where the master serves its own /metrics ("" = off)
	SharedSocket  bool   // CLUSTER: one accept queue for all workers instead of one SO_REUSEPORT socket each

	MaxWorkers        int           // CLUSTER: the most workers `lbserver scale` may ask for; 0: the cluster default
	HealthInterval    time.Duration // supervised: how often the master checks each worker answers; 0: never
	HealthMisses      int           // supervised: checks missed in a row that make a worker unresponsive
	MaxRequests       int           // supervised: recycle a worker after this many requests; 0: never
	MaxRequestsJitter int           // supervised: up to this many more requests, drawn per worker
	MaxMemory         int64         // supervised: recycle a worker above this resident memory, bytes; 0: never

	Check   bool // validate, print the configuration, exit
	Version bool // print the build version, exit
	Args    []string
}

// Addr is the host:port to bind.
func (c Config) Addr() string {
	return netJoin(c.Host, c.Port)
}

func netJoin(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// ParseMode accepts FORK or CLUSTER in any case.
func ParseMode(s string) (Mode, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "FORK":
		return ModeFork, nil
	case "CLUSTER":
		return ModeCluster, nil
	}
	return "", &UsageError{fmt.Sprintf("invalid mode %q: valid modes are FORK and CLUSTER (any case)", s)}
}

// Cluster reports whether m is CLUSTER.
func (m Mode) Cluster() bool { return m == ModeCluster }

// ParsePort accepts a whole number from 1 to 65535.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < 1 || p > 65535 {
		return 0, &UsageError{fmt.Sprintf("invalid port %q: valid ports are whole numbers from 1 to 65535", s)}
	}
	return p, nil
}

type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}
func (l listFlag) Set(s string) error { *l.v = append(*l.v, s); return nil }

// Parse reads args (without the program name) and the environment through
// getenv. Flags win over the environment (PORT, MODE). Help text goes to out.
// A bad command line returns a *UsageError whose message is one line that
// names the problem and the valid values.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := Config{
		Port:           DefaultPort,
		Mode:           ModeFork,
		Workers:        DefaultWorkers(),
		MaxCant:        DefaultMaxCant,
		DefaultCant:    DefaultCant,
		DrainTimeout:   DefaultDrainTimeout,
		ComputeSlots:   1,
		Queue:          DefaultQueue,
		HealthInterval: DefaultHealthInterval,
		HealthMisses:   DefaultHealthMisses,
		Args:           append([]string(nil), args...),
	}
	portStr := strconv.Itoa(DefaultPort)
	if v := getenv("PORT"); v != "" {
		portStr = v
	}
	modeStr := string(ModeFork)
	if v := getenv("MODE"); v != "" {
		modeStr = v
	}

	fs := flag.NewFlagSet("lbserver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, name := range []string{"port", "p"} {
		fs.StringVar(&portStr, name, portStr, "TCP port to listen on, 1-65535 (env PORT)")
	}
	for _, name := range []string{"mode", "m", "modo"} {
		fs.StringVar(&modeStr, name, modeStr, "FORK (one process) or CLUSTER (master + workers), any case (env MODE)")
	}
	fs.IntVar(&c.Workers, "workers", c.Workers, "number of CLUSTER workers (default: the CPUs this process may use, "+strconv.Itoa(c.Workers)+" here)")
	fs.StringVar(&c.Host, "host", "", "address to bind (default: all interfaces)")
	fs.StringVar(&c.HostName, "host-name", getenv("LBSERVER_HOST_NAME"), "name sent in the X-Server-Host header (env LBSERVER_HOST_NAME; default: the machine's hostname)")
	fs.Int64Var(&c.MaxCant, "max-cant", c.MaxCant, "largest cant accepted by /api/randoms")
	fs.Int64Var(&c.DefaultCant, "default-cant", c.DefaultCant, "cant used by /api/randoms when none is given")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "time in-flight requests get to finish on shutdown")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", 0, "on a stop, keep serving this long with /readyz answering 503 before draining (for health-checking balancers)")
	fs.IntVar(&c.ComputeSlots, "compute-slots", c.ComputeSlots, "heavy /api/randoms requests computing at once per process (each uses every core)")
	fs.IntVar(&c.Queue, "queue", c.Queue, "heavy requests waiting for a compute slot before 503 Retry-After")
	fs.BoolVar(&c.ReusePort, "reuseport", false, "bind with SO_REUSEPORT so several instances (PM2 -i N) share one port")
	fs.BoolVar(&c.Watch, "watch", false, "replace the worker(s) with no failed request when the executable changes")
	fs.Var(listFlag{&c.WatchDirs}, "watch-dir", "with --watch: also watch this folder (repeatable); changes run --build, then reload")
	fs.StringVar(&c.Build, "build", "", "with --watch-dir: shell command that rebuilds the executable")
	fs.StringVar(&c.MasterMetrics, "master-metrics", "", "CLUSTER/--watch: address (e.g. 127.0.0.1:9100) where the master serves its own /metrics")
	fs.BoolVar(&c.SharedSocket, "shared-socket", false, "CLUSTER: one accept queue shared by all workers instead of one SO_REUSEPORT socket per worker (for comparison)")
	fs.IntVar(&c.MaxWorkers, "max-workers", 0, "CLUSTER: the most workers `lbserver scale` and SIGTTIN may reach (default: the workers, or 4 per CPU, up to 64)")
	fs.DurationVar(&c.HealthInterval, "health-interval", c.HealthInterval, "CLUSTER/--watch: how often the master checks that each worker answers; 0 turns the checks off")
	fs.IntVar(&c.HealthMisses, "health-misses", c.HealthMisses, "CLUSTER/--watch: checks missed in a row after which a worker is killed and replaced")
	fs.IntVar(&c.MaxRequests, "max-requests", 0, "CLUSTER/--watch: replace a worker after it served this many requests, one worker at a time")
	fs.IntVar(&c.MaxRequestsJitter, "max-requests-jitter", 0, "with --max-requests: each worker serves up to this many more, drawn at random")
	maxMemory := fs.String("max-memory", "", "CLUSTER/--watch: replace a worker whose resident memory is above SIZE (e.g. 200M, 1G)")
	fs.BoolVar(&c.Check, "check", false, "validate the configuration, print it and exit (like nginx -t)")
	fs.BoolVar(&c.Version, "version", false, "print the build version and exit")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(out, fs)
			return c, ErrHelp
		}
		return c, &UsageError{oneLine(err.Error()) + " (see lbserver --help)"}
	}
	if fs.NArg() > 0 {
		return c, &UsageError{fmt.Sprintf("unexpected argument %q: lbserver takes only flags (see lbserver --help)", fs.Arg(0))}
	}
	// Where each value came from, so that an error names it: the flag as
	// typed, or the environment variable when no flag was given.
	portFrom, modeFrom := "", ""
	if getenv("PORT") != "" {
		portFrom = "environment variable PORT"
	}
	if getenv("MODE") != "" {
		modeFrom = "environment variable MODE"
	}
	workersSet := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "port", "p":
			portFrom = "--" + f.Name
		case "mode", "m", "modo":
			modeFrom = "--" + f.Name
		case "workers":
			workersSet = true
		}
	})
	var err error
	if c.MaxMemory, err = ParseSize(*maxMemory); err != nil {
		return c, from(err, "--max-memory")
	}
	if c.Port, err = ParsePort(portStr); err != nil {
		return c, from(err, portFrom)
	}
	if c.Mode, err = ParseMode(modeStr); err != nil {
		return c, from(err, modeFrom)
	}
	switch {
	case c.Workers < 1 || c.Workers > 1024:
		return c, &UsageError{fmt.Sprintf("invalid --workers %d: valid values are 1 to 1024", c.Workers)}
	case c.MaxCant < 1:
		return c, &UsageError{fmt.Sprintf("invalid --max-cant %d: must be at least 1", c.MaxCant)}
	case c.DefaultCant < 1 || c.DefaultCant > c.MaxCant:
		return c, &UsageError{fmt.Sprintf("invalid --default-cant %d: valid values are 1 to --max-cant (%d)", c.DefaultCant, c.MaxCant)}
	case c.DrainTimeout < 0:
		return c, &UsageError{fmt.Sprintf("invalid --drain-timeout %s: must not be negative", c.DrainTimeout)}
	case c.ShutdownDelay < 0 || c.ShutdownDelay > MaxShutdownDelay:
		return c, &UsageError{fmt.Sprintf("invalid --shutdown-delay %s: valid values are 0 to %s", c.ShutdownDelay, MaxShutdownDelay)}
	case c.ComputeSlots < 1:
		return c, &UsageError{fmt.Sprintf("invalid --compute-slots %d: must be at least 1", c.ComputeSlots)}
	case c.Queue < 0:
		return c, &UsageError{fmt.Sprintf("invalid --queue %d: must be 0 or more", c.Queue)}
	case c.Build != "" && len(c.WatchDirs) == 0:
		return c, &UsageError{"--build needs --watch-dir: the command runs when a watched folder changes"}
	case len(c.WatchDirs) > 0 && !c.Watch:
		return c, &UsageError{"--watch-dir needs --watch"}
	case c.ReusePort && c.Mode == ModeCluster:
		return c, &UsageError{"--reuseport is for FORK instances; CLUSTER already shares its port between workers"}
	case workersSet && c.Mode != ModeCluster:
		return c, &UsageError{fmt.Sprintf("--workers is for CLUSTER; a FORK process is one process (with --watch: one supervised worker), so --workers %d would be ignored", c.Workers)}
	case c.MasterMetrics != "" && !c.Supervised():
		return c, &UsageError{"--master-metrics is for a master (CLUSTER, or FORK with --watch); a plain FORK process has no master: its own counters are on /metrics"}
	case c.SharedSocket && c.Mode != ModeCluster:
		return c, &UsageError{"--shared-socket is for CLUSTER (one accept queue shared by the workers); a FORK process has one socket already"}
	case c.MaxWorkers != 0 && (c.MaxWorkers < c.WorkerCount() || c.MaxWorkers > 64):
		return c, &UsageError{fmt.Sprintf("invalid --max-workers %d: valid values are --workers (%d) to 64", c.MaxWorkers, c.WorkerCount())}
	case c.HealthInterval < 0:
		return c, &UsageError{fmt.Sprintf("invalid --health-interval %s: must not be negative (0 turns the checks off)", c.HealthInterval)}
	case c.HealthMisses < 1:
		return c, &UsageError{fmt.Sprintf("invalid --health-misses %d: must be at least 1", c.HealthMisses)}
	case c.MaxRequests < 0 || c.MaxRequestsJitter < 0:
		return c, &UsageError{fmt.Sprintf("invalid --max-requests %d / --max-requests-jitter %d: must be 0 or more", c.MaxRequests, c.MaxRequestsJitter)}
	case c.MaxRequestsJitter > 0 && c.MaxRequests == 0:
		return c, &UsageError{"--max-requests-jitter needs --max-requests"}
	case !ValidHostName(c.HostName):
		return c, &UsageError{fmt.Sprintf("invalid --host-name %q: use 1 to 253 letters, digits, '.', '-' or '_'", c.HostName)}
	}
	return c, nil
}

// from names where a bad value came from in a usage error: "--mode",
// "environment variable MODE"; "" leaves the error as it is.
func from(err error, where string) error {
	ue, ok := errors.AsType[*UsageError](err)
	if !ok || where == "" {
		return err
	}
	msg, rest, _ := strings.Cut(ue.Msg, ":")
	return &UsageError{msg + " (from " + where + "):" + rest}
}

// ValidHostName reports whether name may be sent as X-Server-Host: empty
// (meaning the machine's hostname), or 1 to 253 letters, digits, '.', '-'
// and '_' (a hostname, so nothing that could break a header).
func ValidHostName(name string) bool {
	if len(name) > 253 {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// ParseSize reads a memory size the way PM2's max_memory_restart does: a
// whole number of bytes, or followed by K, M or G (powers of 1024, any
// case). "" and "0" are 0 (no limit).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	mult := int64(1)
	switch t[len(t)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	}
	if mult > 1 {
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, &UsageError{fmt.Sprintf("invalid size %q: use bytes or a number followed by K, M or G (powers of 1024), e.g. 200M or 1G", s)}
	}
	return n * mult, nil
}

// Supervised reports whether this configuration runs a master with workers.
func (c Config) Supervised() bool { return c.Mode == ModeCluster || c.Watch }

// WorkerCount is how many workers a master starts.
func (c Config) WorkerCount() int {
	if c.Mode == ModeCluster {
		return c.Workers
	}
	return 1
}

// String is the one-line summary printed by --check and logged at start.
func (c Config) String() string {
	s := fmt.Sprintf("mode=%s addr=%s", c.Mode, c.Addr())
	if c.HostName != "" {
		s += " host-name=" + c.HostName
	}
	if c.Supervised() {
		s += fmt.Sprintf(" workers=%d", c.WorkerCount())
	}
	s += fmt.Sprintf(" max-cant=%d default-cant=%d drain-timeout=%s compute-slots=%d queue=%d",
		c.MaxCant, c.DefaultCant, c.DrainTimeout, c.ComputeSlots, c.Queue)
	if c.ShutdownDelay > 0 {
		s += " shutdown-delay=" + c.ShutdownDelay.String()
	}
	if c.ReusePort {
		s += " reuseport"
	}
	if c.SharedSocket {
		s += " shared-socket"
	}
	if c.MasterMetrics != "" {
		s += " master-metrics=" + c.MasterMetrics
	}
	if c.Supervised() {
		if c.MaxWorkers != 0 {
			s += fmt.Sprintf(" max-workers=%d", c.MaxWorkers)
		}
		if c.HealthInterval != DefaultHealthInterval || c.HealthMisses != DefaultHealthMisses {
			s += fmt.Sprintf(" health-interval=%s health-misses=%d", c.HealthInterval, c.HealthMisses)
		}
		if c.MaxRequests > 0 {
			s += fmt.Sprintf(" max-requests=%d max-requests-jitter=%d", c.MaxRequests, c.MaxRequestsJitter)
		}
		if c.MaxMemory > 0 {
			s += fmt.Sprintf(" max-memory=%d", c.MaxMemory)
		}
	}
	if c.Watch {
		s += " watch"
		for _, d := range c.WatchDirs {
			s += " watch-dir=" + d
		}
		if c.Build != "" {
			s += " build=" + strconv.Quote(c.Build)
		}
	}
	return s
}

// DefaultWorkers is the number of CPUs this process may use.
func DefaultWorkers() int {
	return runtime.GOMAXPROCS(0)
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func writeUsage(out io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(out, `lbserver: an HTTP server built to be load-balanced.

Usage:
  lbserver [--port N] [--mode FORK|CLUSTER] [flags]
  lbserver reload MASTER_PID   rolling reload of a CLUSTER master; returns when it finished
  lbserver scale MASTER_PID N  run N workers (SIGTTIN/SIGTTOU add/remove one)
  lbserver restart-worker MASTER_PID ID   replace worker ID, new one ready first

Examples:
  lbserver --port 8080 --mode FORK
  lbserver --port 8081 --mode CLUSTER --workers 2
  lbserver --port 8082 --reuseport        # several instances on one port (PM2 -i N)
  lbserver --port 8081 --mode CLUSTER --watch   # rolling reload when the binary changes

Flags (-flag and --flag are the same; -p = --port, -m = --mode = --modo):
`)
	seen := map[string]bool{"p": true, "m": true, "modo": true}
	fs.VisitAll(func(f *flag.Flag) {
		if seen[f.Name] {
			return
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.Name != "workers" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(out, "  --%-16s %s%s\n", f.Name, f.Usage, def)
	})
	fmt.Fprint(out, `
Signals: SIGINT/SIGTERM drain and exit 0 (a second one forces exit, status 1);
with --shutdown-delay D, /readyz answers 503 at once and the drain begins D later;
SIGHUP to a CLUSTER or --watch master replaces the workers one by one;
SIGTTIN adds a CLUSTER worker, SIGTTOU removes one.
Routes: / /info /api/info /api/randoms?cant=N /healthz /livez /readyz /metrics /balance
`)
}
