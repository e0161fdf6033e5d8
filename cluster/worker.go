package cluster

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

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
	ready          *os.File         // the ready pipe; nil once used, or in-process
	lifeline       *os.File         // the master's commands; EOF when it is gone; nil in-process
	slots          map[int]*os.File // every slot's socket, by slot, for adoption
	readyMu        sync.Mutex       // guards ready
	mu             sync.Mutex       // guards srv, want, adopted
	srv            *drain.Server    // what adopted sockets are served by, once Serve runs
	want           map[int]bool     // slots the master asked this worker to adopt
	adopted        map[int]func()   // slots served now, and how to stop
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
// calls Ready.
func (w *Worker) Listeners() []net.Listener { return w.lns }

// Ready tells the master that this worker serves. During a rolling reload
// the master stops the old worker of a slot only once the new one is ready.
// Serve calls it; later calls do nothing.
func (w *Worker) Ready() error {
	w.readyMu.Lock()
	defer w.readyMu.Unlock()
	if w.ready == nil {
		return nil
	}
	_, err := w.ready.Write([]byte{1})
	_ = w.ready.Close()
	w.ready = nil
	return err
}

// Serve serves srv on the slot's listeners until ctx is done, reports ready
// once it accepts, then drains with package drain (close the listeners
// first, finish every request, then shut down) within Config.DrainTimeout;
// Config.Force cuts the drain short (Serve then returns drain.ErrForced).
// It also serves srv on the slots the master asks this worker to adopt and,
// with Config.Private, on the worker's private socket. Serve takes srv over
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
	if w.balancer != nil && w.cfg.Balance {
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
// it returns true) or until ctx is done. Meanwhile it obeys "adopt K" (also
// serve slot K's socket: its worker is down) and "release K" (stop that).
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
		w.dropSlots()
		return true
	case <-ctx.Done():
		_ = w.lifeline.Close()
		<-gone
		return false
	}
}

// dropSlots closes this worker's copies of every slot's socket once the
// master is gone: no slot can be adopted any more, and a master started
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

// obey reads the master's commands until EOF or an error.
func (w *Worker) obey() {
	sc := bufio.NewScanner(w.lifeline)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		k, err := strconv.Atoi(arg)
		if verb == "workers" && err == nil && k > 0 {
			w.workers.Store(int64(k))
			continue
		}
		if err != nil || w.slots[k] == nil || k == w.id {
			continue
		}
		w.mu.Lock()
		switch verb {
		case "adopt":
			if w.want == nil {
				w.want = map[int]bool{}
			}
			w.want[k] = true
			w.adoptLocked(k)
		case "release":
			delete(w.want, k)
			if stop := w.adopted[k]; stop != nil {
				stop()
				delete(w.adopted, k)
			}
		}
		w.mu.Unlock()
	}
}

// adoptLocked serves slot k's socket, once Serve has a server. w.mu is held.
func (w *Worker) adoptLocked(k int) {
	if w.srv == nil || w.adopted[k] != nil {
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
	w.adopted[k] = w.srv.ServeListener(ln)
}

// errNotWorker: the environment does not name this process a worker.
var errNotWorker = errors.New("cluster: not a worker")
