package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The master's loop driven with fake children and a fake clock: no real
// process, no sleep. A test acts as the children (ready, exit) and the
// clock (advance), and h.sync waits until the loop has handled everything
// sent before it.

type fakeClock struct {
	mu     sync.Mutex // guards now, timers
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) time() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) afterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// due takes the earliest timer due by until, moving the clock to it.
func (c *fakeClock) due(until time.Time) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	for i, t := range c.timers {
		if t.stopped {
			continue
		}
		if t.at.After(until) {
			break
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		t.stopped = true
		if t.at.After(c.now) {
			c.now = t.at
		}
		return t
	}
	c.now = until
	return nil
}

type fakeProc struct {
	pid     int
	slot    int
	spec    spawnSpec
	onReady func()
	onExit  func(error, string)

	exited bool     // set by harness.exit
	msgs   net.Conn // the worker's end of its message channel (Config.Messages); nil if none

	mu    sync.Mutex // guards sigs, lines
	sigs  []os.Signal
	lines []string
}

func (p *fakeProc) Pid() int { return p.pid }
func (p *fakeProc) Signal(s os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sigs = append(p.sigs, s)
	return nil
}
func (p *fakeProc) Tell(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, line)
}

func (p *fakeProc) signals() []os.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sigs)
}

func (p *fakeProc) told() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// deltas are the changes the whole-state lines told to the worker make,
// one by one: "adopt K", "release K", "workers N", "stopping".
func (p *fakeProc) deltas() []string {
	var out []string
	var prev lifelineState
	for _, line := range p.told() {
		st, ok := parseState(line)
		if !ok {
			panic("bad lifeline line " + line)
		}
		for _, k := range st.slots {
			if !slices.Contains(prev.slots, k) {
				out = append(out, "adopt "+strconv.Itoa(k))
			}
		}
		for _, k := range prev.slots {
			if !slices.Contains(st.slots, k) {
				out = append(out, "release "+strconv.Itoa(k))
			}
		}
		if st.workers != prev.workers && st.workers != 0 {
			out = append(out, "workers "+strconv.Itoa(st.workers))
		}
		if st.stopping && !prev.stopping {
			out = append(out, lineStopping)
		}
		prev = st
	}
	return out
}

// adopts is the set of slots the worker was last told to adopt (nil: it
// was told nothing).
func (p *fakeProc) adopts() []int {
	lines := p.told()
	if len(lines) == 0 {
		return nil
	}
	slots, ok := parseLifeline(lines[len(lines)-1])
	if !ok {
		panic("bad lifeline line " + lines[len(lines)-1])
	}
	return append([]int{}, slots...)
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type harness struct {
	t        *testing.T
	l        *loop
	clock    *fakeClock
	started  chan *fakeProc
	events   chan Event
	logs     *syncBuffer
	cancel   context.CancelFunc
	force    chan struct{}
	m        *Master        // Master.Reload
	hup      chan os.Signal // the SIGHUP channel
	done     chan error
	failNext bool // guarded by the loop: set only between syncs
	nextPid  int
	all      []*fakeProc // every worker started; appended by the loop, read by the test after a sync
	listened []*os.File  // sockets made to listen (Scale); appended by the loop
}

// newHarness starts a master of cfg.Workers fake workers (default 2).
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, nil)
}

// newHarnessWith is newHarness with setup run on the loop before it starts.
func newHarnessWith(t *testing.T, cfg Config, setup func(*loop)) *harness {
	t.Helper()
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	h := &harness{t: t, clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		started: make(chan *fakeProc, 100), events: make(chan Event, 1000), logs: &syncBuffer{},
		force: make(chan struct{}), hup: make(chan os.Signal, 1), done: make(chan error, 1), nextPid: 100}
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, nil))
	cfg.OnEvent = func(e Event) { h.events <- e }
	cfg.Exe, cfg.Args, cfg.Env = "worker", []string{}, []string{}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	s := sys{
		start: func(spec spawnSpec, onReady func(), onExit func(error, string)) (process, error) {
			if h.failNext {
				h.failNext = false
				return nil, errors.New("exec: no such file")
			}
			h.nextPid++
			p := &fakeProc{pid: h.nextPid, slot: spec.Slot, spec: spec, onReady: onReady, onExit: onExit}
			p.msgs = fakeMessages(t, spec)
			h.started <- p
			h.all = append(h.all, p)
			return p, nil
		},
		now:       h.clock.time,
		afterFunc: h.clock.afterFunc,
		wait:      func() {},
		listen: func(f *os.File) error {
			h.listened = append(h.listened, f)
			return nil
		},
	}
	n := cfg.MaxWorkers
	if cfg.SharedSocket {
		n = 1
	}
	// Stand-ins for the sockets: real files (a pipe's read end), so that
	// each is a distinct value; the loop only hands them on.
	socks := make([]*os.File, n)
	for i := range socks {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		socks[i] = r
		t.Cleanup(func() { r.Close() })
	}
	// A connection table, as the master makes one by default, so that the
	// harness checks what the loop does with it.
	var table *connTable
	if cfg.Workers > 1 {
		var err error
		if table, err = createTable(min(maxEntries, 4*cfg.Workers)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { table.close() })
	}
	h.l = newLoop(cfg, s, socks, table)
	h.l.hup = h.hup
	h.m = &Master{l: h.l}
	if setup != nil {
		setup(h.l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.l.run(ctx, h.force) }()
	t.Cleanup(func() {
		cancel()
		// Once the loop has seen the stop, it starts no more workers: every
		// one left is told to exit.
		var left []*fakeProc
		for stopped := false; !stopped; {
			select {
			case <-h.l.done:
				stopped = true
			default:
				h.inspect(func(l *loop) {
					stopped = l.stopping
					left = nil
					for _, p := range h.all {
						if !p.exited {
							left = append(left, p)
						}
					}
				})
			}
		}
		for _, p := range left {
			p.onExit(nil, "")
		}
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("the loop did not end")
		}
		if t.Failed() {
			t.Logf("master log:\n%s", h.logs.String())
		}
	})
	return h
}

// sync returns once the loop has handled every event sent before it.
func (h *harness) sync() { h.inspect(nil) }

// inspect runs f in the loop, between two events, once the loop has handled
// every event sent before.
func (h *harness) inspect(f func(*loop)) {
	done := make(chan struct{})
	h.l.send(evSync{done, f})
	select {
	case <-done:
	case <-h.l.done: // the loop has returned: nothing more will be handled
	}
}

// spawned is the next worker the master started.
func (h *harness) spawned() *fakeProc {
	h.t.Helper()
	select {
	case p := <-h.started:
		h.sync() // the loop is done with what started it (its timers are set)
		return p
	case <-time.After(5 * time.Second):
		h.t.Fatal("no worker started")
		return nil
	}
}

// noSpawn fails if the master started a worker.
func (h *harness) noSpawn(why string) {
	h.t.Helper()
	h.sync()
	select {
	case p := <-h.started:
		h.t.Fatalf("%s: worker %d started for slot %d", why, p.pid, p.slot)
	default:
	}
}

func (h *harness) ready(p *fakeProc)           { p.onReady(); h.sync() }
func (h *harness) exit(p *fakeProc, err error) { p.exited = true; p.onExit(err, ""); h.sync() }

// exitSaying is exit with the worker's last words.
func (h *harness) exitSaying(p *fakeProc, err error, words string) {
	p.exited = true
	p.onExit(err, words)
	h.sync()
}
func (h *harness) advance(d time.Duration) {
	until := h.clock.time().Add(d)
	for t := h.clock.due(until); t != nil; t = h.clock.due(until) {
		t.f()
		h.sync()
	}
	h.sync()
}

// fireLate fires the timers due within d, moving the clock, without
// delivering their events: the caller calls their f later, as a timer
// whose event is still on its way to the loop.
func (h *harness) fireLate(d time.Duration) []*fakeTimer {
	until := h.clock.time().Add(d)
	var out []*fakeTimer
	for t := h.clock.due(until); t != nil; t = h.clock.due(until) {
		out = append(out, t)
	}
	return out
}

// startAll starts and readies every slot's first worker.
func (h *harness) startAll() []*fakeProc {
	h.t.Helper()
	var ps []*fakeProc
	for range h.l.slots {
		ps = append(ps, h.spawned())
	}
	for _, p := range ps {
		h.ready(p)
	}
	h.waitEvent(EventServing)
	return ps
}

// waitEvent reads events until one of kind k, and returns it.
func (h *harness) waitEvent(k EventKind) Event {
	h.t.Helper()
	for {
		select {
		case e := <-h.events:
			if e.Kind == k {
				h.sync() // the loop is done with what it was doing when it emitted e
				return e
			}
		case <-time.After(5 * time.Second):
			h.t.Fatalf("no %s event", k)
		}
	}
}

// drainEvents returns the events so far.
func (h *harness) drainEvents() []EventKind {
	h.sync()
	var out []EventKind
	for {
		select {
		case e := <-h.events:
			out = append(out, e.Kind)
		default:
			return out
		}
	}
}

func (h *harness) stop() {
	h.cancel()
	h.waitEvent(EventStopping)
}

func (h *harness) result() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		return err
	case <-time.After(5 * time.Second):
		h.t.Fatal("the master did not return")
		return nil
	}
}

func has(sigs []os.Signal, s os.Signal) bool { return slices.Contains(sigs, s) }

var (
	sigterm = os.Signal(syscall.SIGTERM)
	sigkill = os.Kill
)

func (h *harness) logCount(s string) int { return strings.Count(h.logs.String(), s) }

// pending is how many timers have not fired nor been stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// settle waits until the loop has taken every request from ch (asks,
// signals), then until it has handled them.
func settle[T any](h *harness, ch chan T) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(ch) > 0 {
		if time.Now().After(deadline) {
			h.t.Fatal("the loop did not take its requests")
		}
		time.Sleep(time.Millisecond)
	}
	h.sync()
}

// fakeMessages is the worker's end of its message channel, if spec hands
// one on (a duplicate: the master closes its copy once started).
func fakeMessages(t *testing.T, spec spawnSpec) net.Conn {
	for _, kv := range spec.Env {
		_, v, ok := strings.Cut(kv, envMessagesFD+"=")
		if !ok {
			continue
		}
		fd, _ := strconv.Atoi(v)
		f := spec.Files[fd-fdLifeline]
		nfd, err := syscall.Dup(int(f.Fd()))
		if err != nil {
			t.Error(err)
			return nil
		}
		c, err := messageConn(nfd)
		if err != nil {
			t.Error(err)
			return nil
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return nil
}
