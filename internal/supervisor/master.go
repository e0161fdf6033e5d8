package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbserver/lbserver/internal/connbalance"
)

// Options configure a Master. Zero durations take the documented defaults.
type Options struct {
	Exe     string   // executable each worker runs (the master's own)
	Args    []string // the workers' arguments (the master's own)
	Env     []string // base environment of the workers
	Workers int      // number of worker slots, at least 1
	Addr    string   // TCP address to listen on

	// ShareExisting allows binding where other SO_REUSEPORT sockets already
	// listen (lbserver --reuseport); otherwise a port in use is an error.
	ShareExisting bool
	// SharedSocket gives every slot the same socket (one accept queue)
	// instead of one SO_REUSEPORT socket per slot. For comparison only.
	SharedSocket bool

	ReadyTimeout time.Duration // a new worker must be ready within it; default 15s
	StopTimeout  time.Duration // a stopped worker must exit within it, else SIGKILL; default 15s
	CrashWindow  time.Duration // crashes counted for the backoff; default 1m
	MaxBackoff   time.Duration // restart delay cap; default 10s

	Logger         *slog.Logger
	Stdout, Stderr io.Writer // the workers' output; default the master's
}

// Stats are the master's own counters.
type Stats struct {
	Starts   int64 // workers started, for any reason
	Exits    int64 // workers exited, for any reason
	Restarts int64 // workers started to replace one that died
	Reloads  int64 // rolling reloads completed
	Live     int64 // workers running now
	Adopted  int64 // slots without a ready worker, accepted for by another worker now
}

// WorkerInfo describes a live worker process.
type WorkerInfo struct {
	Slot    int
	Pid     int
	Ready   bool   // it reported ready
	Current bool   // it is its slot's current worker (false while it is replaced)
	Private string // path of its private unix socket (its whole HTTP surface, for the master only); "" if none
	// Conns is how many open connections it counts in the connection
	// table (internal/connbalance); -1 when it has no entry.
	Conns int64
}

// Master supervises the workers. Create it with Listen, then Run it.
type Master struct {
	opts    Options
	log     *slog.Logger
	addr    net.Addr
	sockets []*os.File // one per slot (the same file repeated with SharedSocket)
	privDir string     // 0700 folder of the workers' private sockets; "" if it could not be made
	privSeq int        // names the private sockets; guarded by mu
	done    chan struct{}

	// conns is the table the workers keep their open connections in
	// (connbalance); nil with one worker, or if it could not be made.
	conns     *connbalance.Table
	connsFile *os.File
	entryUsed []bool // entries of conns given to a live worker; guarded by mu

	wg sync.WaitGroup // owns every goroutine the master starts

	mu       sync.Mutex // guards slots' cur and crashes, children, stopping
	slots    []*slot
	children map[*child]struct{} // every worker not yet exited
	stopping bool

	starts, exits, restarts, reloads atomic.Int64
}

type slot struct {
	id      int
	sock    *os.File
	cur     *child      // the worker serving this slot, nil while it is being replaced
	crashes []time.Time // crash times within CrashWindow
	served  bool        // a worker of this slot has been ready once
	adopter *child      // another slot's worker accepting here while this slot has no ready worker
}

type child struct {
	slot     *slot
	cmd      *exec.Cmd
	pid      int
	started  time.Time
	lifeline *os.File      // the master's write end; closed when the worker exits
	private  string        // path of the worker's private socket, removed when it exits
	ready    chan struct{} // closed when the worker reports ready
	exited   chan struct{} // closed once the worker has exited
	err      error         // Wait's result; read after exited

	// Guarded by Master.mu:
	isReady  bool // the worker reported ready
	retiring bool // the worker was told to stop (reload, stop)
	gone     bool // the worker exited
	adopted  int  // slots this worker accepts for besides its own
	entry    int  // its entry in the connection table; -1 if none
}

// Listen binds the sockets the workers will share. A port in use is an
// error here, before any worker starts.
func Listen(opts Options) (*Master, error) {
	if opts.Workers < 1 {
		return nil, errors.New("supervisor: need at least one worker")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.ReadyTimeout, 15*time.Second)
	def(&opts.StopTimeout, 15*time.Second)
	def(&opts.CrashWindow, time.Minute)
	def(&opts.MaxBackoff, 10*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	m := &Master{opts: opts, log: opts.Logger, done: make(chan struct{}), children: make(map[*child]struct{})}
	n := opts.Workers
	if opts.SharedSocket {
		n = 1
	}
	files, addr, err := listenSockets(opts.Addr, n, opts.ShareExisting, !opts.SharedSocket)
	if err != nil {
		return nil, err
	}
	m.addr = addr
	m.sockets = files
	if dir, err := os.MkdirTemp("", "lbserver-master-"); err == nil {
		m.privDir = dir
	} else {
		m.log.Warn("no private worker sockets: worker metrics will not be gathered", "err", err)
	}
	for i := range opts.Workers {
		m.slots = append(m.slots, &slot{id: i + 1, sock: files[i%len(files)]})
	}
	if opts.Workers > 1 {
		// Room for every slot's worker and its replacement during a reload,
		// twice over: a worker that finds no free entry only loses the
		// balancing of keep-alive connections, not its service.
		entries := min(connbalance.MaxEntries, 4*opts.Workers)
		if m.conns, m.connsFile, err = connbalance.Create(entries); err != nil {
			m.log.Warn("no connection table: keep-alive connections are spread by recycling only", "err", err)
		} else {
			m.entryUsed = make([]bool, entries)
		}
	}
	return m, nil
}

// listenSockets opens n listening sockets on addr, with SO_REUSEPORT when
// reuse, and returns them as files (the master never accepts on them).
func listenSockets(addr string, n int, shareExisting, reuse bool) ([]*os.File, net.Addr, error) {
	if !shareExisting {
		// A plain bind fails where anything listens, SO_REUSEPORT or not, so
		// that two masters never end up sharing a port by accident.
		probe, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		_ = probe.Close()
	}
	lc := net.ListenConfig{}
	if reuse || shareExisting {
		lc.Control = ReusePortControl
	}
	var files []*os.File
	var bound net.Addr
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	for range n {
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		f, err := plainFile(ln.(*net.TCPListener))
		bound = ln.Addr()
		_ = ln.Close() // f is a duplicate that keeps the socket open
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		files = append(files, f)
	}
	return files, bound, nil
}

// plainFile returns a duplicate of ln's socket as an *os.File that is not
// in non-blocking mode, so that passing it to a worker (os/exec calls
// File.Fd) never touches the socket's flags.
//
// O_NONBLOCK belongs to the socket's open file description, which the
// master and every worker share. File.Fd on a File made in non-blocking
// mode (what TCPListener.File returns) clears O_NONBLOCK on that shared
// description; a worker whose runtime then calls accept4 on the socket
// blocks in the syscall instead of waiting in the poller, and its Close
// of the listener (the first step of a drain) hangs until a connection
// arrives. Seen here: a worker that never finished draining after the
// master started another worker (the next spawn called Fd again).
func plainFile(ln syscall.Conn) (*os.File, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	err = rc.Control(func(fd uintptr) {
		nfd, derr = syscall.Dup(int(fd))
		if derr == nil {
			syscall.CloseOnExec(nfd)
			// Blocking for now, so that os.NewFile makes a plain File; no
			// worker shares the socket yet. Workers set it non-blocking
			// again (net.FileListener) and nothing here undoes it.
			derr = syscall.SetNonblock(nfd, false)
		}
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		if nfd >= 0 {
			_ = syscall.Close(nfd)
		}
		return nil, err
	}
	return os.NewFile(uintptr(nfd), "socket"), nil
}

// ReusePortControl is a net.ListenConfig.Control that sets SO_REUSEPORT
// (the master's sockets, and a FORK process's own with --reuseport).
func ReusePortControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// Addr is the address the sockets are bound to.
func (m *Master) Addr() net.Addr { return m.addr }

// Stats returns the master's counters.
func (m *Master) Stats() Stats {
	m.mu.Lock()
	live := int64(len(m.children))
	var adopted int64
	for _, s := range m.slots {
		if s.adopter != nil {
			adopted++
		}
	}
	m.mu.Unlock()
	return Stats{Starts: m.starts.Load(), Exits: m.exits.Load(), Restarts: m.restarts.Load(), Reloads: m.reloads.Load(), Live: live, Adopted: adopted}
}

// Workers lists the live workers, by slot then start.
func (m *Master) Workers() []WorkerInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]WorkerInfo, 0, len(m.children))
	for c := range m.children {
		conns := int64(-1)
		if c.entry >= 0 {
			conns = m.conns.Count(c.entry)
		}
		out = append(out, WorkerInfo{Slot: c.slot.id, Pid: c.pid, Ready: c.isReady, Current: c.slot.cur == c, Private: c.private, Conns: conns})
	}
	slices.SortFunc(out, func(a, b WorkerInfo) int { return cmp.Or(cmp.Compare(a.Slot, b.Slot), cmp.Compare(a.Pid, b.Pid)) })
	return out
}

// privateListener makes a unix socket listener only this user can reach,
// for one worker; the worker serves on it and the master connects to it.
func (m *Master) privateListener(slot int) (*os.File, string, error) {
	if m.privDir == "" {
		return nil, "", errors.New("no private socket folder")
	}
	m.privSeq++
	path := filepath.Join(m.privDir, fmt.Sprintf("w%d-%d.sock", slot, m.privSeq))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, "", err
	}
	ln.SetUnlinkOnClose(false) // the worker's copy serves on; the path goes when the worker exits
	f, err := plainFile(ln)
	_ = ln.Close()
	if err != nil {
		_ = os.Remove(path)
		return nil, "", err
	}
	return f, path, nil
}

// Run starts every worker and supervises them until ctx is done; then it
// stops them all (SIGTERM, then SIGKILL after StopTimeout or when force is
// closed) and returns. A receive on reload replaces every worker, one slot at
// a time.
func (m *Master) Run(ctx context.Context, force <-chan struct{}, reload <-chan struct{}) error {
	m.log.Info("master started", "addr", m.addr.String(), "workers", len(m.slots))
	m.mu.Lock()
	for _, s := range m.slots {
		m.fillLocked(s, false)
	}
	m.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return m.stop(force)
		case <-reload:
			m.rollingReload(ctx)
		}
	}
}

// fillLocked starts a worker for an empty slot; if it cannot be started, it
// is treated as a crash and retried with backoff. m.mu must be held.
func (m *Master) fillLocked(s *slot, restart bool) {
	if m.stopping || s.cur != nil {
		return
	}
	c, err := m.spawnLocked(s)
	if err != nil {
		m.log.Error("start worker", "worker", s.id, "err", err)
		m.crashLocked(s)
		return
	}
	s.cur = c
	if restart {
		m.restarts.Add(1)
	}
}

// spawnLocked starts a worker process for slot s. m.mu must be held.
func (m *Master) spawnLocked(s *slot) (*child, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ready pipe: %w", err)
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, fmt.Errorf("lifeline pipe: %w", err)
	}
	cmd := exec.Command(m.opts.Exe, m.opts.Args...)
	cmd.Env = append(withoutWorkerEnv(m.opts.Env),
		EnvWorkerID+"="+strconv.Itoa(s.id),
		EnvMasterPID+"="+strconv.Itoa(os.Getpid()))
	cmd.ExtraFiles = []*os.File{s.sock, readyW, lifeR} // fds 3, 4, 5
	if m.adoptable() {
		// fds 6.. are every slot's socket, so that this worker can accept
		// for a slot whose worker is dead (see rebalanceLocked).
		cmd.ExtraFiles = append(cmd.ExtraFiles, m.sockets...)
		cmd.Env = append(cmd.Env, EnvSlots+"="+strconv.Itoa(len(m.sockets)))
	}
	entry := m.takeEntryLocked()
	if entry >= 0 {
		cmd.Env = append(cmd.Env,
			EnvConnTableFD+"="+strconv.Itoa(3+len(cmd.ExtraFiles)),
			EnvConnTableEntry+"="+strconv.Itoa(entry)+"/"+strconv.Itoa(m.conns.Entries()))
		cmd.ExtraFiles = append(cmd.ExtraFiles, m.connsFile)
	}
	priv, privPath, err := m.privateListener(s.id)
	if err == nil {
		cmd.Env = append(cmd.Env, EnvPrivateFD+"="+strconv.Itoa(3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, priv)
		defer priv.Close() // the worker has its copy once started
	} else {
		m.log.Warn("worker without a private socket", "worker", s.id, "err", err)
	}
	cmd.Stdout = m.opts.Stdout
	cmd.Stderr = m.opts.Stderr
	err = cmd.Start()
	readyW.Close()
	lifeR.Close()
	if err != nil {
		readyR.Close()
		lifeW.Close()
		m.releaseEntryLocked(entry)
		if privPath != "" {
			_ = os.Remove(privPath)
		}
		return nil, fmt.Errorf("start worker %d: %w", s.id, err)
	}
	c := &child{
		slot: s, cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), lifeline: lifeW, private: privPath,
		ready: make(chan struct{}), exited: make(chan struct{}), entry: entry,
	}
	m.children[c] = struct{}{}
	m.starts.Add(1)
	m.log.Info("worker started", "worker", s.id, "worker_pid", c.pid)
	m.wg.Go(func() {
		var b [1]byte
		n, _ := readyR.Read(b[:]) // one byte when ready; EOF if the worker exits first
		readyR.Close()
		if n == 1 {
			m.log.Info("worker ready", "worker", s.id, "worker_pid", c.pid, "took", time.Since(c.started).Round(time.Millisecond))
			m.mu.Lock()
			c.isReady = true
			s.served = true
			if !c.retiring && !c.gone {
				m.setLiveLocked(c, true) // it now counts in the workers' fair share
			}
			m.rebalanceLocked()
			m.mu.Unlock()
			close(c.ready)
		}
	})
	m.wg.Go(func() {
		c.err = cmd.Wait()
		c.lifeline.Close()
		if c.private != "" {
			_ = os.Remove(c.private)
		}
		close(c.exited)
		m.onExit(c)
	})
	return c, nil
}

func withoutWorkerEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if strings.HasPrefix(kv, EnvWorkerID+"=") || strings.HasPrefix(kv, EnvMasterPID+"=") ||
			strings.HasPrefix(kv, EnvSlots+"=") || strings.HasPrefix(kv, EnvPrivateFD+"=") ||
			strings.HasPrefix(kv, EnvConnTableFD+"=") || strings.HasPrefix(kv, EnvConnTableEntry+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// onExit logs a worker's exit and, if it was the current worker of its
// slot, schedules its replacement.
func (m *Master) onExit(c *child) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.children, c)
	c.gone = true
	m.releaseEntryLocked(c.entry)
	m.exits.Add(1)
	status := "exit status 0"
	if c.err != nil {
		status = c.err.Error()
	}
	current := c.slot.cur == c
	m.log.Info("worker exited", "worker", c.slot.id, "worker_pid", c.pid, "status", status,
		"uptime", time.Since(c.started).Round(time.Millisecond), "replaced", !current || m.stopping)
	if m.stopping {
		return
	}
	if current {
		c.slot.cur = nil
		m.crashLocked(c.slot)
	}
	m.rebalanceLocked()
}

// takeEntryLocked reserves a free entry of the connection table for a new
// worker; -1 if there is no table or no free entry. m.mu must be held.
func (m *Master) takeEntryLocked() int {
	for i, used := range m.entryUsed {
		if !used {
			m.entryUsed[i] = true
			return i
		}
	}
	return -1
}

// releaseEntryLocked zeroes and frees the entry of a worker that has exited
// (or never started), so that its count of connections does not linger.
// m.mu must be held.
func (m *Master) releaseEntryLocked(i int) {
	if i < 0 || m.conns == nil {
		return
	}
	m.conns.Reset(i)
	m.entryUsed[i] = false
}

// setLiveLocked marks c's entry of the connection table live or not.
// m.mu must be held.
func (m *Master) setLiveLocked(c *child, live bool) {
	if c.entry >= 0 && m.conns != nil {
		m.conns.SetLive(c.entry, live)
	}
}

// adoptable reports whether workers are given every slot's socket, to
// accept for a slot whose worker is dead.
func (m *Master) adoptable() bool {
	return !m.opts.SharedSocket && len(m.sockets) > 1 && len(m.sockets) <= maxAdoptSlots
}

// rebalanceLocked makes sure that every slot that has been served and now
// has no ready worker (it died, it is in restart backoff) is accepted for by
// a ready worker of another slot, and that a slot whose own worker is ready
// again is released. Without it, connections the kernel hashes to an
// orphaned slot's socket would wait there until its worker is back. m.mu
// must be held.
func (m *Master) rebalanceLocked() {
	if m.stopping || !m.adoptable() {
		return
	}
	usable := func(c *child) bool { return c != nil && c.isReady && !c.retiring && !c.gone }
	for _, s := range m.slots {
		healthy := usable(s.cur)
		if a := s.adopter; a != nil && (healthy || !usable(a)) {
			s.adopter = nil
			a.adopted--
			if !a.gone {
				m.tell(a, "release", s.id)
			}
			if healthy {
				m.log.Info("slot served by its own worker again", "worker", s.id, "worker_pid", s.cur.pid, "adopter_pid", a.pid)
			}
		}
		if healthy || s.adopter != nil || !s.served {
			continue
		}
		var best *child
		for _, t := range m.slots {
			if t != s && usable(t.cur) && (best == nil || t.cur.adopted < best.adopted) {
				best = t.cur
			}
		}
		if best == nil {
			m.log.Warn("slot has no worker and no healthy worker can adopt it; its connections wait", "worker", s.id)
			continue
		}
		s.adopter = best
		best.adopted++
		m.tell(best, "adopt", s.id)
		m.log.Warn("worker adopts orphaned slot until its worker is back", "worker", s.id, "adopter", best.slot.id, "adopter_pid", best.pid)
	}
}

// tell writes one command line on c's lifeline. The worker reads its
// lifeline all the time; the deadline only guards against a stuck worker.
func (m *Master) tell(c *child, verb string, slot int) {
	_ = c.lifeline.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := fmt.Fprintf(c.lifeline, "%s %d\n", verb, slot); err != nil {
		m.log.Warn("tell worker", "worker", c.slot.id, "worker_pid", c.pid, "cmd", verb, "slot", slot, "err", err)
	}
}

// crashLocked records a crash of slot s and schedules a restart after a
// delay that grows with the crashes in the window. m.mu must be held.
func (m *Master) crashLocked(s *slot) {
	s.crashes = recordCrash(s.crashes, time.Now(), m.opts.CrashWindow)
	delay := backoff(len(s.crashes), m.opts.MaxBackoff)
	m.log.Warn("restarting worker", "worker", s.id, "delay", delay, "crashes_in_window", len(s.crashes), "window", m.opts.CrashWindow)
	m.wg.Go(func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-m.done:
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.fillLocked(s, true)
	})
}

// recordCrash appends now to crashes and drops those older than window, so
// that only recent crashes count: rare crashes over weeks never add up.
func recordCrash(crashes []time.Time, now time.Time, window time.Duration) []time.Time {
	kept := crashes[:0]
	for _, t := range crashes {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	return append(kept, now)
}

// backoff is the restart delay after the k-th crash in the window: 0 for
// the first, then 100ms doubling, capped.
func backoff(k int, limit time.Duration) time.Duration {
	if k <= 1 {
		return 0
	}
	d := 100 * time.Millisecond
	for i := 2; i < k && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// rollingReload replaces every slot's worker: start the new one, wait until
// it is ready, make it current, then stop the old one and wait for it. A new
// worker that is not ready in time aborts the reload; the old ones keep
// serving.
func (m *Master) rollingReload(ctx context.Context) {
	start := time.Now()
	m.log.Info("rolling reload started", "workers", len(m.slots))
	for _, s := range m.slots {
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		if m.stopping {
			m.mu.Unlock()
			return
		}
		nc, err := m.spawnLocked(s)
		m.mu.Unlock()
		if err != nil {
			m.log.Error("rolling reload aborted", "worker", s.id, "err", err)
			return
		}
		timeout := time.NewTimer(m.opts.ReadyTimeout)
		ok := false
		select {
		case <-nc.ready:
			ok = true
		case <-nc.exited:
		case <-timeout.C:
		case <-ctx.Done():
		}
		timeout.Stop()
		if !ok {
			m.log.Error("rolling reload aborted: new worker not ready", "worker", s.id, "worker_pid", nc.pid, "timeout", m.opts.ReadyTimeout)
			m.terminate(nc)
			return
		}
		m.mu.Lock()
		prev := s.cur
		s.cur = nc
		if prev != nil {
			prev.retiring = true         // its adoptions move to a worker that stays
			m.setLiveLocked(prev, false) // draining: no longer in the fair share
		}
		m.rebalanceLocked()
		m.mu.Unlock()
		m.log.Info("worker replaced", "worker", s.id, "old_pid", pidOf(prev), "new_pid", nc.pid)
		if prev != nil {
			m.terminate(prev)
		}
	}
	m.reloads.Add(1)
	m.log.Info("rolling reload finished", "took", time.Since(start).Round(time.Millisecond))
}

func pidOf(c *child) int {
	if c == nil {
		return 0
	}
	return c.pid
}

// terminate sends SIGTERM to c and waits for it to exit, sending SIGKILL
// after StopTimeout.
func (m *Master) terminate(c *child) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(m.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		m.log.Warn("worker did not stop in time; killing it", "worker", c.slot.id, "worker_pid", c.pid)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// stop ends every worker and closes the sockets.
func (m *Master) stop(force <-chan struct{}) error {
	m.mu.Lock()
	m.stopping = true
	close(m.done)
	kids := make([]*child, 0, len(m.children))
	for c := range m.children {
		kids = append(kids, c)
	}
	m.mu.Unlock()
	m.log.Info("master stopping", "workers", len(kids))
	for _, c := range kids {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	t := time.NewTimer(m.opts.StopTimeout)
	defer t.Stop()
	var forced error
	for _, c := range kids {
		select {
		case <-c.exited:
		case <-t.C:
			forced = errors.New("workers did not stop within the stop timeout; killed")
			m.killAll(kids)
		case <-force:
			forced = errors.New("forced stop: workers killed")
			m.killAll(kids)
		}
	}
	m.wg.Wait()
	for _, f := range m.sockets {
		_ = f.Close()
	}
	if m.privDir != "" {
		_ = os.RemoveAll(m.privDir)
	}
	m.log.Info("master stopped")
	return forced
}

func (m *Master) killAll(kids []*child) {
	for _, c := range kids {
		_ = c.cmd.Process.Kill()
	}
	for _, c := range kids {
		<-c.exited
	}
}
