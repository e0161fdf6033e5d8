package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// The descriptor layout and environment a worker is started with.
const (
	EnvWorkerID  = "LBSERVER_WORKER_ID"
	EnvMasterPID = "LBSERVER_MASTER_PID"
	fdListener   = 3
	fdReady      = 4
	fdLifeline   = 5
)

// Worker is this process's side of the hand-off, when it was started by a master.
type Worker struct {
	ID       int
	Listener net.Listener
	ready    *os.File
	lifeline *os.File
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
	return &Worker{
		ID:       id,
		Listener: ln,
		ready:    os.NewFile(fdReady, "ready"),
		lifeline: os.NewFile(fdLifeline, "lifeline"),
	}, true, nil
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
// is done, and reports whether the master is gone. Run it in a goroutine the
// caller owns; it returns promptly when ctx is done.
func (w *Worker) WatchMaster(ctx context.Context) bool {
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, w.lifeline) // returns at EOF, or when Close below interrupts it
		close(gone)
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
