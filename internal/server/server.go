// Package server is lbserver's http.Handler: the whole URL surface of one
// serving process (a FORK process or a CLUSTER worker). It knows nothing of
// the supervisor beyond the facts a worker is told at start (its id).
package server

import (
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbserver/lbserver/internal/admission"
	"github.com/lbserver/lbserver/internal/respond"
)

// Options are the facts and limits a Server is built with.
type Options struct {
	Mode        string // "FORK" or "CLUSTER"
	WorkerID    int    // 0 in a plain FORK process, 1..N for supervised workers
	Port        int
	HostName    string // sent as X-Server-Host; "" means os.Hostname()
	Args        []string
	Build       string // build id of the executable
	MaxCant     int64
	DefaultCant int64
	Slots       int // compute slots for /api/randoms
	Queue       int // heavy requests waiting for a slot
	Logger      *slog.Logger
	// Extra routes mounted as they are (e.g. "GET /balance/" -> the live page).
	Extra map[string]http.Handler
}

// Server answers every route. Build it with New.
type Server struct {
	opts     Options
	mux      *http.ServeMux
	limiter  *admission.Limiter
	facts    *facts
	info     *infoPage // /info, rendered at start
	home     []byte    // /, rendered at start
	metrics  *metrics
	ready    atomic.Bool                // /healthz and /readyz: the process serves
	stopping atomic.Bool                // /readyz: a stop began; it serves on, but wants no new traffic
	workers  atomic.Pointer[func() int] // the cluster's worker count, for /api/info; nil outside a cluster
	log      *slog.Logger

	portHeader, pidHeader, workerHeader, hostHeader []string // precomputed header values
}

// New returns a Server; it reports ready on /healthz and /readyz once
// SetReady(true), and not ready on /readyz from SetStopping on.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:    opts,
		mux:     http.NewServeMux(),
		limiter: admission.New(opts.Slots, opts.Queue),
		log:     opts.Logger,
	}
	if s.opts.HostName == "" {
		s.opts.HostName = hostName(os.Hostname)
	}
	s.facts = newFacts(s.opts, time.Now())
	var err error
	if s.info, err = newInfoPage(s.facts); err != nil {
		panic("server: render info.html: " + err.Error()) // the template is embedded: a bug, caught by the tests
	}
	if s.home, err = newHomePage(s.facts, opts.DefaultCant); err != nil {
		panic("server: render home.html: " + err.Error())
	}
	s.metrics = newMetrics(s.limiter)
	s.portHeader = []string{strconv.Itoa(opts.Port)}
	s.pidHeader = []string{strconv.Itoa(s.facts.Pid)}
	s.workerHeader = []string{strconv.Itoa(opts.WorkerID)}
	s.hostHeader = []string{s.opts.HostName}
	s.routes()
	return s
}

// hostName is the machine's hostname, or "unknown" when the OS cannot tell.
func hostName(osHostname func() (string, error)) string {
	if h, err := osHostname(); err == nil && h != "" {
		return h
	}
	return "unknown"
}

// SetWorkers makes /api/info and /metrics show the cluster's worker count,
// as n reports it now (it changes when the cluster is scaled). Call it
// once, before serving.
func (s *Server) SetWorkers(n func() int) {
	s.workers.Store(&n)
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lbserver_cluster_workers", Help: "Workers of the cluster this worker belongs to, now.",
	}, func() float64 { return float64(n()) }))
}

// SetReady sets what /healthz answers, and /readyz until SetStopping.
func (s *Server) SetReady(v bool) { s.ready.Store(v) }

// SetStopping makes /readyz answer 503 from now on, while every other route
// is served as before: a stop has begun, and a balancer that checks /readyz
// stops sending new requests before the drain closes the listener. It is
// never undone: a process that stopping reaches does not take traffic again.
func (s *Server) SetStopping() { s.stopping.Store(true) }

// routes is the whole URL surface.
func (s *Server) routes() {
	s.handle("GET /{$}", s.handleHome)
	s.handle("GET /info", s.handleInfo)
	s.handle("GET /api/info", s.handleAPIInfo)
	s.handle("GET /api/randoms", s.handleRandoms)
	s.handle("GET /healthz", s.handleHealthz)
	s.handle("GET /livez", s.handleLivez)
	s.handle("GET /readyz", s.handleReadyz)
	s.mux.Handle("GET /metrics", s.metrics.handler())
	for pattern, h := range s.opts.Extra {
		s.mux.Handle(pattern, h)
	}
}

func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.mux.Handle(pattern, h)
	s.metrics.prepare(pattern)
}

// ServeHTTP sets the headers every response carries, routes, records
// metrics, and turns the mux's own 404 and 405 into JSON errors.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	hdr := w.Header()
	hdr["X-Server-Port"] = s.portHeader
	hdr["X-Server-Pid"] = s.pidHeader
	hdr["X-Worker-Id"] = s.workerHeader
	hdr["X-Server-Host"] = s.hostHeader
	hdr["X-Content-Type-Options"] = nosniff
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h, pattern := s.mux.Handler(r)
	route := pattern
	if pattern == "" {
		route = "unmatched"
		h = http.HandlerFunc(s.muxError(h))
	}
	h.ServeHTTP(sw, r)
	s.metrics.observe(route, sw.status, time.Since(start))
}

var nosniff = []string{"nosniff"}

// muxError runs the mux's not-found or method-not-allowed handler only to
// learn its status (and Allow header), then answers with a JSON error.
func (s *Server) muxError(h http.Handler) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		probe := &headerOnly{h: w.Header(), status: http.StatusNotFound}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			respond.Error(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; allowed: "+w.Header().Get("Allow"))
		default:
			respond.Error(w, http.StatusNotFound, "no route "+r.URL.Path+"; routes: / /info /api/info /api/randoms?cant=N /healthz /livez /readyz /metrics /balance")
		}
	}
}

// headerOnly captures a status and header changes, and drops the body.
type headerOnly struct {
	h      http.Header
	status int
}

func (p *headerOnly) Header() http.Header         { return p.h }
func (p *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerOnly) WriteHeader(code int)        { p.status = code }

// statusWriter remembers the status written, for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
