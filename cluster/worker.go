package cluster

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/lbserver/lbserver/drain"
)

// Worker is one worker process's side of the cluster: the slot's
// listener(s), the readiness report, and the master's lifeline. Run gives
// it to the function it runs in each worker.
type Worker struct {
	id             int
	cfg            *Config
	lns            []net.Listener
	private        net.Listener     // served for the master only; nil if none
	balancer       *member          // this worker's connection table entry; nil if none
	ready          *os.File         // the report pipe (report.go); nil once closed, or in-process
	said           bool             // ready was reported
	lifeline       *os.File         // the master's commands; EOF when it is gone; nil in-process
	slots          map[int]*os.File // every slot's socket, by slot, for adoption
	readyMu        sync.Mutex       // guards ready
	mu             sync.Mutex       // guards srv, accepting, want, adopted
	srv            *drain.Server    // what adopted sockets are served by, once Serve runs
	accepts        *slotListener    // what Listeners returned, once called; adopted sockets are accepted there without Serve
	want           map[int]bool     // slots the master asked this worker to adopt
	adopted        map[int]func()   // slots served now, and how to stop
	stopping       stopSignal       // closed when the cluster stops (Stopping)
	workers        atomic.Int64     // the cluster's worker count, as the master last said; 0: Config.Workers
	workerMessages                  // Config.Messages: the channel to the master (message.go)
}

// ID is the worker's slot, 1 to Config.Workers. A slot's worker keeps its
// ID across restarts and reloads.
func (w *Worker) ID() int { return w.id }

// Workers is the number of workers (slots) of the cluster now: the
// master tells its workers when Master.Scale, SIGTTIN or SIGTTOU change it.
func (w *Worker) Workers() int {
	if n := w.workers.Load(); n > 0 {
		return int(n)
	}
	return w.cfg.Workers
}

// Listeners are the slot's listening sockets, to serve on (never to close
// early: the master keeps its copies, and the port stays open). Serve
// uses them; a worker serving another protocol accepts on them itself and
// calls Ready. Their Accept also yields the connections of the slots the
// master has this worker adopt (their workers are down), as Serve serves
// them: any server built on Listeners adopts.
func (w *Worker) Listeners() []net.Listener {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.accepts == nil {
		w.accepts = newSlotListener(w.lns[0])
		for k := range w.want {
			w.adoptLocked(k)
		}
	}
	return append([]net.Listener{w.accepts}, w.lns[1:]...)
}

// closeListeners closes what Listeners returned, if it was called: its
// goroutines end with the worker.
func (w *Worker) closeListeners() {
	w.mu.Lock()
	l := w.accepts
	w.mu.Unlock()
	if l != nil {
		_ = l.Close()
	}
}

// Ready tells the master that this worker serves. During a rolling reload
// the master stops the old worker of a slot only once the new one is ready.
// Serve calls it; later calls do nothing.
func (w *Worker) Ready() error {
	w.readyMu.Lock()
	defer w.readyMu.Unlock()
	if w.ready == nil || w.said {
		return nil
	}
	w.said = true
	_, err := w.ready.Write([]byte{recReady})
	return err
}

// farewell tells the master the worker's last words ("" says nothing)
// and closes the report pipe; Ready does nothing afterwards.
func (w *Worker) farewell(words string) {
	w.readyMu.Lock()
	defer w.readyMu.Unlock()
	if w.ready == nil {
		return
	}
	if words != "" {
		_, _ = w.ready.Write(lastWordsRecord(words))
	}
	_ = w.ready.Close()
	w.ready = nil
}

// Serve serves srv on the slot's listeners until ctx is done, reports ready
// once it accepts, then drains with package drain (close the listeners
// first, finish every request, then shut down) within Config.DrainTimeout;
// Config.Force cuts the drain short (Serve then returns drain.ErrForced).
// It also serves srv on the slots the master asks this worker to adopt and,
// with Config.PrivateSockets, on the worker's private socket. Serve takes srv over
// (see drain.New).
func (w *Worker) Serve(ctx context.Context, srv *http.Server) error {
	opts := drain.Options{DrainTimeout: w.cfg.DrainTimeout, MaxConnRequests: w.cfg.MaxConnRequests, Logger: w.cfg.Logger}
	if w.balancer != nil && w.cfg.MaxRequests > 0 && srv.Handler != nil {
		// The master reads the count in the connection table (MaxRequests).
		h, m := srv.Handler, w.balancer
		srv.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			m.served()
			h.ServeHTTP(rw, r)
		})
	}
	if w.balancer != nil && !w.cfg.NoSpread {
		opts.Balancer = w.balancer
	} else if w.cfg.Workers > 1 && opts.MaxConnRequests == 0 {
		// No connection table: keep-alive connections are spread again by
		// recycling them, every 100 requests.
		opts.MaxConnRequests = 100
	}
	ds := drain.New(srv, opts)
	for _, ln := range w.lns[1:] {
		ds.ServeListener(ln)
	}
	if w.private != nil {
		ds.ServeListener(w.private)
	}
	w.mu.Lock()
	w.srv = ds
	for k := range w.want {
		w.adoptLocked(k)
	}
	w.mu.Unlock()
	return ds.Serve(ctx, w.cfg.Force, w.lns[0], func() {
		if err := w.Ready(); err != nil {
			w.cfg.Logger.Error("tell master ready", "err", err)
		}
	})
}

// watchMaster reads the master's lifeline until EOF (the master is gone:
// it returns true) or until ctx is done. Meanwhile it obeys the set of
// other slots to accept for (their workers are down).
func (w *Worker) watchMaster(ctx context.Context) bool {
	if w.lifeline == nil {
		<-ctx.Done()
		return false
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		w.obey() // returns at EOF, or when Close below interrupts the read
	}()
	select {
	case <-gone:
		w.stopping.fire()
		w.dropSlots()
		return true
	case <-ctx.Done():
		_ = w.lifeline.Close()
		<-gone
		w.dropSlots() // draining: no more adoption, and a stopping master's sockets close
		return false
	}
}

// dropSlots closes this worker's copies of every slot's socket once the
// worker drains or the master is gone: no slot can be adopted any more, a
// stopping master's sockets close (new connections are refused), and a master started
// again on the same port (by systemd, PM2, forever) must not find it held
// by the workers of the dead one while they drain. Adopted slots are
// served on duplicates, which the drain closes.
func (w *Worker) dropSlots() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, f := range w.slots {
		_ = f.Close()
		delete(w.slots, k)
	}
}

// obey reads the master's commands until EOF or an error: each line is the
// whole set of other slots to accept for (lifeline.go).
func (w *Worker) obey() {
	sc := bufio.NewScanner(w.lifeline)
	for sc.Scan() {
		st, ok := parseState(sc.Text())
		if !ok {
			continue
		}
		if st.stopping {
			w.stopping.fire()
		}
		if st.workers > 0 {
			w.workers.Store(int64(st.workers))
		}
		w.mu.Lock()
		want := map[int]bool{}
		for _, k := range st.slots {
			if w.slots[k] != nil && k != w.id {
				want[k] = true
			}
		}
		for k, stop := range w.adopted {
			if !want[k] {
				stop()
				delete(w.adopted, k)
			}
		}
		w.want = want
		for k := range want {
			w.adoptLocked(k)
		}
		w.mu.Unlock()
	}
}

// adoptLocked serves slot k's socket, once Serve has a server, or accepts
// on it in what Listeners returned, once that was called. w.mu is held.
func (w *Worker) adoptLocked(k int) {
	if (w.srv == nil && w.accepts == nil) || w.adopted[k] != nil {
		return
	}
	ln, err := net.FileListener(w.slots[k]) // a duplicate: closing it leaves the master's socket open
	if err != nil {
		w.cfg.Logger.Warn("adopt slot", "slot", k, "err", err)
		return
	}
	if w.adopted == nil {
		w.adopted = map[int]func(){}
	}
	if w.srv != nil {
		w.adopted[k] = w.srv.ServeListener(ln)
	} else {
		w.adopted[k] = w.accepts.adopt(k, ln)
	}
}

// errNotWorker: the environment does not name this process a worker.
var errNotWorker = errors.New("cluster: not a worker")

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
	defer context.AfterFunc(ctx, w.closeMessages)()
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
	w.closeMessages()
	cancel()
	close(done)
	owned.Wait()
	w.closeListeners()
	w.farewell(lastWords(stopped.Load() || parent.Err() != nil, err))
	return err
}
