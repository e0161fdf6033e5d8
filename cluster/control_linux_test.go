package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Reload, from another process's point of view: it reaches the master on
// its control socket (this test process's pid), returns only once the
// reload has ended, and says when it was aborted.
func TestReloadCommandWaitsForTheEnd(t *testing.T) {
	h := newHarness(t, Config{Workers: 1})
	stop, err := h.l.serveControl()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop) // every command below is answered before the test ends
	ps := h.startAll()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reload := func() chan error {
		done := make(chan error, 1)
		go func() { done <- Reload(ctx, os.Getpid()) }()
		return done
	}

	done := reload()
	n := h.spawned()
	select {
	case err := <-done:
		t.Fatalf("Reload returned %v before the new worker was ready", err)
	default:
	}
	h.ready(n)
	h.exit(ps[0], nil)
	if err := <-done; err != nil {
		t.Errorf("Reload of a reload that finished = %v, want nil", err)
	}

	done = reload()
	h.exit(h.spawned(), errors.New("exit status 3"))
	err = <-done
	if !errors.Is(err, ErrReloadAborted) || !strings.Contains(err.Error(), "new worker exited before it was ready") {
		t.Errorf("Reload of an aborted reload = %v, want ErrReloadAborted saying why", err)
	}
	t.Logf("aborted: %v", err)

	if err := Reload(ctx, 1<<22+7); err == nil || !strings.Contains(err.Error(), "no cluster master with pid") {
		t.Errorf("Reload of a pid with no master = %v, want 'no cluster master'", err)
	}
}

// flakyListener fails its first Accept with err, then accepts as ln does.
type flakyListener struct {
	net.Listener
	err  error
	once sync.Once
}

func (f *flakyListener) Accept() (net.Conn, error) {
	var err error
	f.once.Do(func() { err = f.err })
	if err != nil {
		return nil, err
	}
	return f.Listener.Accept()
}

// A master that ran out of file descriptors for a moment (EMFILE from
// accept) still answers reload commands afterwards: temporary accept
// errors are retried, as net/http does.
func TestControlSocketSurvivesEMFILE(t *testing.T) {
	h := newHarness(t, Config{Workers: 1})
	ln, err := net.Listen("unix", controlAddr(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	emfile := &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	t.Cleanup(h.l.serveControlOn(&flakyListener{Listener: ln, err: emfile}))
	ps := h.startAll()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Reload(ctx, os.Getpid()) }()
	// The reload starts only if the command got through: wait for its new worker.
	got := make(chan *fakeProc, 1)
	go func() {
		select {
		case p := <-h.started:
			got <- p
		case <-ctx.Done():
			got <- nil
		}
	}()
	p := <-got
	if p == nil {
		t.Fatalf("no reload started: the control socket stopped accepting after one EMFILE (Reload: %v)", <-done)
	}
	p.onReady()
	h.exit(ps[0], nil)
	if err := <-done; err != nil {
		t.Errorf("Reload after an EMFILE = %v, want nil", err)
	}
}

// A control command is a short line: one that goes on without a newline
// is cut off after a few bytes with an error, not read into memory until
// the deadline.
func TestControlCommandLengthIsCapped(t *testing.T) {
	h := newHarness(t, Config{Workers: 1})
	stop, err := h.l.serveControl()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	c, err := net.Dial("unix", controlAddr(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(4 * time.Second)) // the master's own read deadline is 5s
	go func() {
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 16 { // 1 MiB, no newline
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	line, err := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "error ") || !strings.Contains(line, "too long") {
		t.Fatalf("answer to 1 MiB without a newline = %q (%v), want an 'error ... too long' line before the deadline", line, err)
	}
}
