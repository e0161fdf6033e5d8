package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func get(t *testing.T, addr, path string) (int, error) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	_, err = io.Copy(io.Discard, r.Body)
	return r.StatusCode, err
}

// slowHandler answers /slow after release is closed, everything else at once.
func slowHandler(started chan<- struct{}, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})
}

// A request running when the drain starts completes; an extra listener
// (ServeListener) is served until stopped and is closed by the drain.
func TestDrainFinishesInFlightAndExtraListener(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	s := New(&http.Server{Handler: slowHandler(started, release)}, Options{DrainTimeout: 10 * time.Second, IdleGrace: 50 * time.Millisecond})
	ln, extra, extra2 := listen(t), listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- s.Serve(ctx, nil, ln, func() { close(ready) }) }()
	<-ready
	s.ServeListener(extra)
	stop2 := s.ServeListener(extra2)
	for _, a := range []string{ln.Addr().String(), extra.Addr().String(), extra2.Addr().String()} {
		if code, err := get(t, a, "/"); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", a, code, err)
		}
	}
	stop2()
	if _, err := get(t, extra2.Addr().String(), "/"); err == nil {
		t.Error("a stopped extra listener still answers")
	}
	slow := make(chan error, 1)
	go func() {
		code, err := get(t, extra.Addr().String(), "/slow")
		if err == nil && code != 200 {
			err = errors.New(http.StatusText(code))
		}
		slow <- err
	}()
	<-started
	cancel()
	// Draining: the listeners close, the running request goes on.
	deadline := time.Now().Add(5 * time.Second)
	for !s.Draining() || !refused(ln.Addr().String()) || !refused(extra.Addr().String()) {
		if time.Now().After(deadline) {
			t.Fatal("listeners still open 5s after the drain began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("request in flight at drain: %v, want 200", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after a clean drain = %v, want nil", err)
	}
	if !refusedSoon(t, s) {
		t.Error("ServeListener after the drain must close the listener")
	}
}

func refusedSoon(t *testing.T, s *Server) bool {
	t.Helper()
	ln := listen(t)
	s.ServeListener(ln)
	return refused(ln.Addr().String())
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

// A second signal (force) during the drain ends it at once with ErrForced.
func TestForceEndsDrainWithErrForced(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	s := New(&http.Server{Handler: slowHandler(started, release)}, Options{DrainTimeout: time.Minute})
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	force := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, force, ln, nil) }()
	go func() { _, _ = get(t, ln.Addr().String(), "/slow") }()
	<-started
	cancel()
	close(force)
	select {
	case err := <-done:
		if !errors.Is(err, ErrForced) {
			t.Errorf("Serve after force = %v, want ErrForced", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("force did not end the drain within 5s")
	}
}

// A keep-alive connection carries MaxConnRequests requests, the last one
// answered with "Connection: close"; the client then opens a new one.
func TestMaxConnRequestsRecyclesConnections(t *testing.T) {
	s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })},
		Options{MaxConnRequests: 3})
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, nil, ln, nil) }()
	defer func() { cancel(); <-done }()

	dials := 0
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	closes := getCloses(t, c, "http://"+ln.Addr().String()+"/", 7)
	want := []bool{false, false, true, false, false, true, false}
	for i := range want {
		if closes[i] != want[i] {
			t.Fatalf("Connection: close on responses %v, want %v", closes, want)
		}
	}
	if dials != 3 {
		t.Errorf("7 requests with at most 3 per connection used %d connections, want 3", dials)
	}
}

// fakeBalancer sheds while shed > 0 and counts what the server tells it.
type fakeBalancer struct {
	mu                   sync.Mutex
	open, opened, shed   int
	leftCalls, shedCalls int
}

func (b *fakeBalancer) Opened() { b.mu.Lock(); b.open++; b.opened++; b.mu.Unlock() }
func (b *fakeBalancer) Left()   { b.mu.Lock(); b.open--; b.leftCalls++; b.mu.Unlock() }
func (b *fakeBalancer) TryShed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shed == 0 {
		return false
	}
	b.shed--
	b.open--
	b.shedCalls++
	return true
}

// The Balancer sees every connection open and leave exactly once, whether
// it closed by itself, was shed, or was recycled by MaxConnRequests; a shed
// connection's answer carries "Connection: close".
func TestBalancerCountsEachConnectionOnce(t *testing.T) {
	b := &fakeBalancer{shed: 1}
	s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })},
		Options{MaxConnRequests: 4, Balancer: b})
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, nil, ln, nil) }()

	tr := &http.Transport{}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	closes := getCloses(t, c, "http://"+ln.Addr().String()+"/", 6)
	tr.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Request 1 is shed; the second connection carries 4 (the 4th recycled);
	// the third carries the last one and is closed by the client.
	want := []bool{true, false, false, false, true, false}
	if fmt.Sprint(closes) != fmt.Sprint(want) {
		t.Errorf("Connection: close on responses %v, want %v", closes, want)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opened != 3 || b.open != 0 || b.shedCalls != 1 || b.leftCalls != 2 {
		t.Errorf("balancer: %d opened, %d still counted, %d shed, %d left; want 3, 0, 1, 2", b.opened, b.open, b.shedCalls, b.leftCalls)
	}
}

// Connections on a unix socket (the master's private one) are served but
// not counted by the Balancer, and never shed.
func TestBalancerIgnoresUnixSockets(t *testing.T) {
	b := &fakeBalancer{shed: 100}
	s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })},
		Options{Balancer: b})
	path := t.TempDir() + "/s.sock"
	uln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stop := s.ServeListener(uln)
	defer stop()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	if closes := getCloses(t, c, "http://private/", 3); slices.Contains(closes, true) {
		t.Errorf("answers on the unix socket asked to close the connection: %v", closes)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opened != 0 || b.shedCalls != 0 || b.leftCalls != 0 {
		t.Errorf("balancer saw %d opened, %d shed, %d left on a unix socket; want none", b.opened, b.shedCalls, b.leftCalls)
	}
}

// getCloses GETs url n times with c and returns, for each answer, whether
// it asked to close the connection.
func getCloses(t *testing.T, c *http.Client, url string, n int) []bool {
	t.Helper()
	var closes []bool
	for range n {
		r, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		closes = append(closes, r.Close)
	}
	return closes
}
