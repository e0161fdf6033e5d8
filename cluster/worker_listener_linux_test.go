package cluster

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// listenerPair is two sockets like two slots' (separate ports here; only
// where a connection is queued matters).
func listenerPair(t *testing.T) (own, other net.Listener) {
	t.Helper()
	var lns [2]net.Listener
	for i := range lns {
		f, _ := tcpSocket(t)
		ln, err := net.FileListener(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns[i] = ln
	}
	return lns[0], lns[1]
}

func acceptOne(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	select {
	case c := <-got:
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("Accept got no connection in 10s")
	}
	return nil
}

// The merged listener accepts on the slot's own socket and on an adopted
// one; a released slot's queued connection stays queued on that socket
// (its own worker takes it), and Close ends an Accept, pending or to come,
// with net.ErrClosed.
func TestSlotListenerAdoptReleaseClose(t *testing.T) {
	own, other := listenerPair(t)
	l := newSlotListener(own)
	c1, err := net.Dial("tcp", own.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if c := acceptOne(t, l); c == nil || c.LocalAddr().String() != own.Addr().String() {
		t.Fatalf("accepted %v, want the connection to the own socket", c)
	}
	dup, err := net.FileListener(mustFile(t, other))
	if err != nil {
		t.Fatal(err)
	}
	release := l.adopt(2, dup)
	c2, err := net.Dial("tcp", other.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c := acceptOne(t, l); c == nil || c.LocalAddr().String() != other.Addr().String() {
		t.Fatalf("accepted %v, want the connection to the adopted socket", c)
	}
	release()
	c3, err := net.Dial("tcp", other.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	// Released: the connection waits for the slot's own worker (Accept
	// on the merged listener would block now).
	if c := acceptOne(t, other); c == nil {
		t.Fatal("the connection queued on the released slot was not there for its own worker")
	}
	errs := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
		}
		errs <- err
	}()
	if err := l.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a pending Accept")
	}
}

// mustFile is a duplicate of ln's socket, as a worker inherits a slot's.
func mustFile(t *testing.T, ln net.Listener) *os.File {
	t.Helper()
	f, err := plainFile(ln.(*net.TCPListener))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
