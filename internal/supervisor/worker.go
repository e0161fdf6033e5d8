package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/lbserver/lbserver/internal/connbalance"
)

// The descriptor layout and environment a worker is started with.
const (
	EnvWorkerID  = "LBSERVER_WORKER_ID"
	EnvMasterPID = "LBSERVER_MASTER_PID"
	EnvSlots     = "LBSERVER_SLOTS"      // when set to N, fds 6..5+N are the sockets of slots 1..N
	EnvPrivateFD = "LBSERVER_PRIVATE_FD" // the fd of the worker's private listener (a unix socket only the master uses)
	// EnvConnTableFD is the fd of the connection table (connbalance), and
	// EnvConnTableEntry "i/n": this worker's entry i of the table's n.
	EnvConnTableFD    = "LBSERVER_CONNTABLE_FD"
	EnvConnTableEntry = "LBSERVER_CONNTABLE_ENTRY"
	fdListener        = 3
	fdReady           = 4
	fdLifeline        = 5
	fdSlots           = 6
)

// maxAdoptSlots bounds the sockets every worker inherits for adoption; with
// more slots than this, orphaned slots wait for their own worker.
const maxAdoptSlots = 64

// Adopter serves an extra listener until stop is called (graceful.Server
// does). A worker uses it to accept on an orphaned slot's socket.
type Adopter interface {
	ServeListener(ln net.Listener) (stop func())
}

// Worker is this process's side of the hand-off, when it was started by a master.
type Worker struct {
	ID       int
	Listener net.Listener
	// Private is a unix socket listener only the master connects to (to
	// gather this worker's /metrics); nil when the master gave none.
	Private net.Listener
	// Conns is this worker's entry in the cluster's connection table, to
	// keep keep-alive connections even across workers; nil without one.
	Conns    *connbalance.Member
	ready    *os.File
	lifeline *os.File
	slots    map[int]*os.File // every slot's socket, by slot id, for adoption
}

// FromEnv returns the Worker this process is, or ok=false when it was not
// started by a master.
func FromEnv(getenv func(string) string) (w *Worker, ok bool, err error) {
	v := getenv(EnvWorkerID)
	if v == "" {
		return nil, false, nil
	}
	id, err := strconv.Atoi(v)
	if err != nil || id < 1 {
		return nil, true, fmt.Errorf("bad %s=%q", EnvWorkerID, v)
	}
	lf := os.NewFile(fdListener, "listener")
	ln, err := net.FileListener(lf)
	if err != nil {
		return nil, true, fmt.Errorf("worker %d: inherited listener: %w", id, err)
	}
	_ = lf.Close() // FileListener holds its own duplicate
	// Non-blocking, so that the runtime poller owns the lifeline and Close
	// interrupts a pending Read.
	if err := syscall.SetNonblock(fdLifeline, true); err != nil {
		return nil, true, fmt.Errorf("worker %d: lifeline: %w", id, err)
	}
	w = &Worker{
		ID:       id,
		Listener: ln,
		ready:    os.NewFile(fdReady, "ready"),
		lifeline: os.NewFile(fdLifeline, "lifeline"),
		slots:    map[int]*os.File{},
	}
	if v := getenv(EnvPrivateFD); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil || fd <= fdLifeline {
			return nil, true, fmt.Errorf("bad %s=%q", EnvPrivateFD, v)
		}
		pf := os.NewFile(uintptr(fd), "private")
		if w.Private, err = net.FileListener(pf); err != nil {
			return nil, true, fmt.Errorf("worker %d: private listener: %w", id, err)
		}
		_ = pf.Close()
	}
	if v := getenv(EnvConnTableFD); v != "" {
		if w.Conns, err = openConnTable(v, getenv(EnvConnTableEntry)); err != nil {
			return nil, true, fmt.Errorf("worker %d: %w", id, err)
		}
	}
	if v := getenv(EnvSlots); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAdoptSlots {
			return nil, true, fmt.Errorf("bad %s=%q", EnvSlots, v)
		}
		for k := 1; k <= n; k++ {
			fd := fdSlots + k - 1
			syscall.CloseOnExec(fd)
			w.slots[k] = os.NewFile(uintptr(fd), "slot "+strconv.Itoa(k))
		}
	}
	return w, true, nil
}

// openConnTable maps the connection table at fd fdv and returns the entry
// named by entry ("i/n").
func openConnTable(fdv, entry string) (*connbalance.Member, error) {
	fd, err := strconv.Atoi(fdv)
	if err != nil || fd <= fdLifeline {
		return nil, fmt.Errorf("bad %s=%q", EnvConnTableFD, fdv)
	}
	is, ns, _ := strings.Cut(entry, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil || i < 0 || i >= n {
		return nil, fmt.Errorf("bad %s=%q", EnvConnTableEntry, entry)
	}
	f := os.NewFile(uintptr(fd), "connection table")
	defer f.Close() // the mapping outlives the descriptor
	t, err := connbalance.Open(f, n)
	if err != nil {
		return nil, err
	}
	return t.Member(i) // the mapping lives as long as the process
}

// Ready tells the master this worker is serving.
func (w *Worker) Ready() error {
	if w.ready == nil {
		return errors.New("ready already sent")
	}
	_, err := w.ready.Write([]byte{1})
	_ = w.ready.Close()
	w.ready = nil
	return err
}

// WatchMaster blocks until the master is gone (EOF on the lifeline) or ctx
// is done, and reports whether the master is gone. Meanwhile it obeys the
// master's lines on the lifeline: "adopt K" makes a also accept on slot K's
// socket (its worker is dead), "release K" stops that. a may be nil. Run it
// in a goroutine the caller owns; it returns promptly when ctx is done.
func (w *Worker) WatchMaster(ctx context.Context, a Adopter) bool {
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		w.obey(a) // returns at EOF, or when Close below interrupts the read
	}()
	select {
	case <-gone:
		return true
	case <-ctx.Done():
		_ = w.lifeline.Close()
		<-gone
		return false
	}
}

// obey reads the master's commands until EOF or an error.
func (w *Worker) obey(a Adopter) {
	adopted := map[int]func(){} // slot id -> stop
	sc := bufio.NewScanner(w.lifeline)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		k, err := strconv.Atoi(arg)
		f := w.slots[k]
		if err != nil || f == nil || a == nil || k == w.ID {
			continue
		}
		switch verb {
		case "adopt":
			if adopted[k] != nil {
				continue
			}
			ln, err := net.FileListener(f) // a duplicate: closing it leaves the master's socket open
			if err != nil {
				continue
			}
			adopted[k] = a.ServeListener(ln)
		case "release":
			if stop := adopted[k]; stop != nil {
				stop()
				delete(adopted, k)
			}
		}
	}
}
