package cluster

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The descriptors a worker starts with. The names of the environment
// variables below are Config.EnvPrefix followed by these.
const (
	fdListener = 3 // the slot's listening socket
	fdReady    = 4 // write end of the ready pipe
	fdLifeline = 5 // read end of the lifeline pipe

	envWorkerID       = "WORKER_ID"       // the slot, 1..Workers
	envMasterPID      = "MASTER_PID"      // for the logs; never polled
	envSlots          = "SLOTS"           // N: fds 6..5+N are the sockets of slots 1..N
	envPrivateFD      = "PRIVATE_FD"      // the worker's private listener
	envConnTableFD    = "CONNTABLE_FD"    // the connection table (a memfd)
	envConnTableEntry = "CONNTABLE_ENTRY" // "i/n": this worker's entry i of the table's n
	envMessagesFD     = "MESSAGES_FD"     // the worker's end of its message channel
)

var envNames = []string{envWorkerID, envMasterPID, envSlots, envPrivateFD, envConnTableFD, envConnTableEntry, envMessagesFD}

// fill starts a worker for slot s if it has none; a worker that cannot be
// started counts as a crash, retried after its backoff.
func (l *loop) fill(s *slot, restart bool) {
	if l.stopping || s.cur != nil {
		return
	}
	c, err := l.spawn(s)
	if err != nil {
		l.log.Error("start worker", "worker", s.id, "err", err)
		if !l.failedStart(s, err.Error()) {
			l.crash(s)
		}
		return
	}
	s.cur = c
	if restart {
		l.stats.Restarts++
	}
}

// spawn starts a worker process for slot s; the caller decides its role
// (current worker, or a reload's new worker).
func (l *loop) spawn(s *slot) (*child, error) {
	env := func(name, v string) string { return l.cfg.EnvPrefix + name + "=" + v }
	spec := spawnSpec{Slot: s.id, Files: []*os.File{s.sock}, Env: []string{
		env(envWorkerID, strconv.Itoa(s.id)),
		env(envMasterPID, strconv.Itoa(os.Getpid())),
	}}
	if n := l.workerProcs(); n > 0 {
		spec.Env = append(spec.Env, "GOMAXPROCS="+strconv.Itoa(n))
	}
	if l.cfg.WorkerEnv != nil {
		spec.Env = append(spec.Env, l.cfg.WorkerEnv(s.id)...)
	}
	add := func(name string, f *os.File) {
		spec.Env = append(spec.Env, env(name, strconv.Itoa(fdOf(len(spec.Files)))))
		spec.Files = append(spec.Files, f)
	}
	if l.adoptable() {
		// fds 6.. are every slot's socket, in slot order, so that this
		// worker can accept for a slot whose worker is down (rebalance).
		spec.Files = append(spec.Files, l.sockets...)
		spec.Env = append(spec.Env, env(envSlots, strconv.Itoa(len(l.sockets))))
	}
	entry := l.takeEntry()
	if entry >= 0 {
		add(envConnTableFD, l.table.file)
		spec.Env = append(spec.Env, env(envConnTableEntry, strconv.Itoa(entry)+"/"+strconv.Itoa(l.table.entries)))
	}
	var private string
	if l.cfg.PrivateSockets && l.sys.listenPrivate != nil {
		f, addr, err := l.sys.listenPrivate(s.id)
		if err != nil {
			l.log.Warn("worker without a private socket", "worker", s.id, "err", err)
		} else {
			defer f.Close() // the worker has its copy once started; the name lives as long as it
			add(envPrivateFD, f)
			private = addr
		}
	}
	var msgs net.Conn
	if l.cfg.Messages {
		conn, f, err := messagePair()
		if err != nil {
			l.log.Warn("worker without a message channel", "worker", s.id, "err", err)
		} else {
			defer f.Close() // the worker has its copy once started
			add(envMessagesFD, f)
			msgs = conn
		}
	}
	c := &child{slot: s, entry: entry, private: private, msgs: msgs}
	p, err := l.sys.start(spec, func() { l.send(evReady{c}) }, func(err error, words string) { l.send(evExited{c, err, words}) })
	if err != nil {
		closeMessages(c)
		l.releaseEntry(entry)
		return nil, fmt.Errorf("start worker %d: %w", s.id, err)
	}
	c.proc, c.pid, c.started = p, p.Pid(), l.sys.now()
	l.children[c] = struct{}{}
	c.readyBy = l.after(l.cfg.ReadyTimeout, func(t *timer) event { return evReadyTimeout{c, t} })
	l.stats.Starts++
	if msgs != nil {
		l.readMessages(c)
	}
	l.log.Info("worker started", "worker", s.id, "worker_pid", c.pid)
	l.emit(Event{Kind: EventSpawned, Slot: s.id, Pid: c.pid})
	return c, nil
}

// workerProcs is the GOMAXPROCS a new worker gets in its environment, or 0
// for none: Config.WorkerProcs, by default the CPUs shared out over the
// slots, rounded up; none when Config.Env names GOMAXPROCS already (the
// caller's choice), when WorkerProcs is negative or the CPUs are unknown.
func (l *loop) workerProcs() int {
	if slices.ContainsFunc(l.cfg.Env, func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") }) {
		return 0
	}
	switch n := l.cfg.WorkerProcs; {
	case n > 0:
		return n
	case n < 0 || l.sys.cpus < 1:
		return 0
	}
	workers := max(1, len(l.slots))
	return (l.sys.cpus + workers - 1) / workers
}

// withoutWorkerEnv drops the variables a master sets for its workers from
// env, so that a worker's own children (or a master started by a worker)
// never take them for theirs.
func withoutWorkerEnv(env []string, prefix string) []string {
	names := make([]string, len(envNames))
	for i, n := range envNames {
		names[i] = prefix + n
	}
	return withoutVars(env, names...)
}

// withoutVars returns env ("NAME=value" entries) without the variables
// named.
func withoutVars(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, name) {
			out = append(out, kv)
		}
	}
	return out
}
