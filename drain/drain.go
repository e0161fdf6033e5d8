// Package drain serves an http.Server on a listener and, when asked to stop,
// drains so that no request that reached the process fails.
//
// net/http's Shutdown alone is not enough: a connection accepted before
// Shutdown whose first request is read after it can be closed without a
// response, and closing idle keep-alive connections races with a client that
// is sending its next request on one at that moment (the client sees the
// connection reset, although its request reached the process). Drain
// therefore runs in steps:
//
//  1. close the listener and any added with ServeListener (in a cluster
//     worker, only this process's copies: the master's copies keep the
//     sockets and their accept queues alive);
//  2. answer every further request with "Connection: close";
//  3. wait until no connection is new (accepted, not yet read) or active, and
//     give idle keep-alive connections IdleGrace to send their next request
//     (answered, then closed by us) or to close;
//  4. only then Shutdown, under what is left of DrainTimeout; past it, Close.
//
// A second stop signal (force) ends the drain at once; Serve then returns
// ErrForced, so that the process exits non-zero.
package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Server. Zero values take the documented defaults. The
// http.Server's own timeouts are left as they are: set them there.
type Options struct {
	DrainTimeout time.Duration // whole drain budget; default 10s
	IdleGrace    time.Duration // how long idle keep-alive conns get to send again; default 1s
	// MaxConnRequests is how many requests one keep-alive connection
	// carries before the server answers with "Connection: close" (like
	// nginx's keepalive_requests). With one SO_REUSEPORT socket per worker
	// the kernel picks a worker once per connection, so a few long-lived
	// connections would pin their load to the workers they first hit;
	// reconnecting every N requests spreads them again, for one handshake
	// per N requests. Default 1000 (nginx's default); negative means
	// unlimited. A cluster worker with a Balancer needs no recycling for
	// the spread and keeps the default.
	MaxConnRequests int
	// Balancer, if set, is told of every connection this server opens and
	// closes, and asked after each request whether this process holds more
	// than its share of the cluster's connections; if so the answer closes
	// the connection and the client reconnects, to a worker the kernel
	// picks again (the cluster package's connection table implements it).
	Balancer Balancer
	Logger   *slog.Logger // nil: discard
}

// Balancer keeps the connection counts that spread keep-alive connections
// across the worker processes of a cluster.
type Balancer interface {
	Opened()       // a connection was accepted
	Left()         // a connection closed (never called for one TryShed took)
	TryShed() bool // true: close this connection, it is already counted as gone
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.DrainTimeout, 10*time.Second)
	def(&o.IdleGrace, time.Second)
	if o.MaxConnRequests == 0 {
		o.MaxConnRequests = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrForced is returned by Serve when force cut the drain short: requests
// still running were dropped, so the process must not report success.
var ErrForced = errors.New("drain cut short by a second stop signal")

// Server is an http.Server with a drain that loses nothing. Make it with New.
type Server struct {
	opts     Options
	srv      *http.Server
	draining atomic.Bool

	mu      sync.Mutex // guards conns (and each conn's state), extra, and the draining flag's transition
	conns   map[net.Conn]*conn
	extra   map[net.Listener]struct{} // listeners added by ServeListener, not yet stopped
	extraWG sync.WaitGroup            // one per ServeListener's Serve goroutine
}

// conn is what the server knows of one connection. It is made by
// ConnContext (before net/http reports StateNew) and reaches the handler
// through the request's context, so a request needs no lock to find it.
type conn struct {
	state    http.ConnState // guarded by Server.mu
	requests atomic.Int64   // requests read on it
	leaving  atomic.Bool    // not (or no longer) counted by the Balancer: closing, told to close, or not a TCP client
}

// connKey keys a connection's *conn in its context.
type connKey struct{}

// New returns a Server that serves srv. It takes srv over: its Handler,
// ConnState and ConnContext are wrapped (the ones already set still run),
// and srv must not be served or shut down by anyone else.
func New(srv *http.Server, opts Options) *Server {
	opts.setDefaults()
	s := &Server{opts: opts, srv: srv, conns: make(map[net.Conn]*conn), extra: make(map[net.Listener]struct{})}
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = s.wrap(h)
	userState, userContext := srv.ConnState, srv.ConnContext
	srv.ConnState = func(nc net.Conn, st http.ConnState) {
		s.track(nc, st)
		if userState != nil {
			userState(nc, st)
		}
	}
	srv.ConnContext = func(ctx context.Context, nc net.Conn) context.Context {
		if userContext != nil {
			ctx = userContext(ctx, nc)
		}
		return s.connContext(ctx, nc)
	}
	return s
}

// ServeListener also serves on ln (e.g. an orphaned slot's socket a cluster
// worker adopts) until stop is called or the server drains; either closes
// ln. Connections it accepted are drained like the others.
func (s *Server) ServeListener(ln net.Listener) (stop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		_ = ln.Close()
		return func() {}
	}
	s.extra[ln] = struct{}{}
	s.extraWG.Go(func() { _ = s.srv.Serve(ln) })
	return func() {
		s.mu.Lock()
		delete(s.extra, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}
}

// Draining reports whether the server has begun to stop.
func (s *Server) Draining() bool { return s.draining.Load() }

func (s *Server) wrap(h http.Handler) http.Handler {
	maxReqs := int64(s.opts.MaxConnRequests)
	bal := s.opts.Balancer
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		closeConn := s.draining.Load()
		if c, ok := r.Context().Value(connKey{}).(*conn); ok {
			n := c.requests.Add(1)
			closeConn = closeConn || maxReqs > 0 && n >= maxReqs
			if bal != nil && !c.leaving.Load() {
				switch {
				case closeConn:
					c.leaving.Store(true)
					bal.Left()
				case bal.TryShed():
					c.leaving.Store(true)
					closeConn = true
				}
			}
		}
		if closeConn {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// connContext registers a connection net/http has just accepted.
func (s *Server) connContext(ctx context.Context, nc net.Conn) context.Context {
	c := &conn{state: http.StateNew}
	s.mu.Lock()
	s.conns[nc] = c
	s.mu.Unlock()
	if s.opts.Balancer != nil {
		if _, tcp := nc.LocalAddr().(*net.TCPAddr); tcp {
			s.opts.Balancer.Opened()
		} else {
			// A unix socket (a cluster master's private one) is not a
			// client's connection: never counted, never shed.
			c.leaving.Store(true)
		}
	}
	return context.WithValue(ctx, connKey{}, c)
}

// track follows connection states, and tells the Balancer when a
// connection it counts has closed.
func (s *Server) track(nc net.Conn, st http.ConnState) {
	s.mu.Lock()
	c := s.conns[nc]
	gone := st == http.StateClosed || st == http.StateHijacked
	switch {
	case c == nil:
	case gone:
		delete(s.conns, nc)
	default:
		c.state = st
	}
	s.mu.Unlock()
	if gone && c != nil && s.opts.Balancer != nil && !c.leaving.Swap(true) {
		s.opts.Balancer.Left()
	}
}

// counts returns how many tracked connections are new/active and idle.
func (s *Server) counts() (busy, idle int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if c.state == http.StateIdle {
			idle++
		} else {
			busy++
		}
	}
	return busy, idle
}

// Serve serves on ln until ctx is done, then drains and returns. force, when
// closed, cuts the drain short (a second signal). It returns nil after a
// clean drain. ready, if not nil, is called once the server is accepting.
func (s *Server) Serve(ctx context.Context, force <-chan struct{}, ln net.Listener, ready func()) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.srv.Serve(ln) }()
	if ready != nil {
		ready()
	}
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	start := time.Now()
	deadline := start.Add(s.opts.DrainTimeout)
	s.mu.Lock()
	s.draining.Store(true)
	for l := range s.extra {
		_ = l.Close()
	}
	s.mu.Unlock()
	_ = ln.Close()
	// Once Serve has returned, every connection it accepted has been tracked
	// (net/http sets StateNew before it starts the connection's goroutine).
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		s.opts.Logger.Warn("serve ended", "err", err)
	}
	s.extraWG.Wait()
	idleUntil := start.Add(s.opts.IdleGrace)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		busy, idle := s.counts()
		now := time.Now()
		if busy == 0 && (idle == 0 || now.After(idleUntil)) || now.After(deadline) {
			break
		}
		select {
		case <-tick.C:
		case <-force:
			return errors.Join(ErrForced, s.srv.Close())
		}
	}
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func() {
		select {
		case <-force:
			cancel()
		case <-sctx.Done():
		}
	}()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
		select {
		case <-force:
			return ErrForced
		default:
		}
		return fmt.Errorf("drain: %w", err)
	}
	s.opts.Logger.Info("drained", "took", time.Since(start).Round(time.Millisecond))
	return nil
}
