package server

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lbserver/lbserver/internal/respond"
)

// facts are the process facts /info shows. All but RSS and uptime are
// computed once at start; the JSON prefix is encoded once too.
type facts struct {
	Args      []string `json:"args"`
	Platform  string   `json:"platform"`
	GoVersion string   `json:"goVersion"`
	ExecPath  string   `json:"execPath"`
	Host      string   `json:"host"`
	Pid       int      `json:"pid"`
	Ppid      int      `json:"ppid"`
	Cwd       string   `json:"cwd"`
	CPUs      int      `json:"cpus"`
	Mode      string   `json:"mode"`
	WorkerID  int      `json:"workerId"`
	Port      int      `json:"port"`
	Build     string   `json:"build"`
	StartedAt string   `json:"startedAt"`

	started    time.Time
	jsonPrefix []byte   // the static facts as a JSON object without its closing brace
	rss        rssCache // the resident set size, refreshed at most every rssMaxAge
}

func newFacts(o Options, now time.Time) *facts {
	exe, err := os.Executable()
	if err != nil {
		exe = "unknown: " + err.Error()
	}
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "unknown: " + err.Error()
	}
	args := o.Args
	if args == nil {
		args = []string{}
	}
	f := &facts{
		Args:      args,
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion: runtime.Version(),
		ExecPath:  exe,
		Host:      o.HostName,
		Pid:       os.Getpid(),
		Ppid:      os.Getppid(),
		Cwd:       cwd,
		CPUs:      runtime.NumCPU(),
		Mode:      o.Mode,
		WorkerID:  o.WorkerID,
		Port:      o.Port,
		Build:     o.Build,
		StartedAt: now.UTC().Format(time.RFC3339),
		started:   now,
	}
	b, _ := json.Marshal(f) // plain strings and ints: cannot fail
	f.jsonPrefix = b[:len(b)-1]
	f.rss.val.Store(rssBytes())
	f.rss.next.Store(now.Add(rssMaxAge).UnixNano())
	return f
}

// rssMaxAge is how stale the RSS shown by /info and /api/info may be.
const rssMaxAge = 100 * time.Millisecond

// rssCache keeps the last RSS read from /proc. Reading /proc/self/statm
// costs about 3 µs (open, read, close, and the poller's attempt to register
// the file): half of /api/info's own CPU time. With the cache the hot path
// is an atomic load; one request per rssMaxAge pays for a fresh read.
type rssCache struct {
	next atomic.Int64 // unix nanoseconds after which val is stale
	val  atomic.Int64 // bytes
}

// get returns the RSS, reading it again first if it is older than rssMaxAge.
func (c *rssCache) get(now time.Time) int64 {
	n := now.UnixNano()
	if next := c.next.Load(); n >= next && c.next.CompareAndSwap(next, n+int64(rssMaxAge)) {
		c.val.Store(rssBytes())
	}
	return c.val.Load()
}

// appendJSON appends the facts with the live RSS and uptime.
func (f *facts) appendJSON(dst []byte, rss int64, uptime time.Duration) []byte {
	dst = append(dst, f.jsonPrefix...)
	dst = append(dst, `,"rssBytes":`...)
	dst = strconv.AppendInt(dst, rss, 10)
	dst = append(dst, `,"uptimeSeconds":`...)
	dst = strconv.AppendFloat(dst, uptime.Seconds(), 'f', 3, 64)
	return append(dst, '}')
}

// rssBytes reads the resident set size from /proc/self/statm (one small
// read, no parsing of the long status file); -1 where it is not available.
func rssBytes() int64 {
	var buf [128]byte
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return -1
	}
	n, _ := f.Read(buf[:])
	f.Close()
	fields := bytes.Fields(buf[:n])
	if len(fields) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

func (s *Server) handleAPIInfo(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, 0, 1024)
	now := time.Now()
	buf = s.facts.appendJSON(buf, s.facts.rss.get(now), now.Sub(s.facts.started))
	if n := s.workers.Load(); n != nil {
		buf = append(buf[:len(buf)-1], `,"workers":`...)
		buf = strconv.AppendInt(buf, int64((*n)()), 10)
		buf = append(buf, '}')
	}
	respond.JSON(w, http.StatusOK, buf)
}

//go:embed info.html
var infoHTML string

// The live values of /info stand in the template as functions that return
// these markers. They are template.HTML, so html/template writes them as
// they are; the same text in the data (an argument, a path) is escaped
// ("<" becomes "&lt;"), so a marker in the rendered page can only be one of
// these.
const (
	markUptime   = "<!--lbserver:uptime-->"
	markRSSMiB   = "<!--lbserver:rss-mib-->"
	markRSSBytes = "<!--lbserver:rss-bytes-->"
)

var infoTmpl = template.Must(template.New("info").Funcs(template.FuncMap{
	"uptime":   func() template.HTML { return markUptime },
	"rssMiB":   func() template.HTML { return markRSSMiB },
	"rssBytes": func() template.HTML { return markRSSBytes },
}).Parse(infoHTML))

// live are the values of /info that change between requests.
type live struct {
	rss    int64
	uptime time.Duration
}

// infoPage is /info rendered once, at start: html/template escapes every
// fact a single time, and a request only copies the pieces and writes the
// RSS and the uptime (numbers and unit letters, nothing to escape) between
// them. Rendering the template per request cost 30x /api/info's CPU time.
type infoPage struct {
	parts [][]byte                          // the static text; one more piece than fills
	fills []func(dst []byte, v live) []byte // what goes after parts[i]
	size  int                               // total length of parts
}

func newInfoPage(f *facts) (*infoPage, error) {
	var buf bytes.Buffer
	if err := infoTmpl.Execute(&buf, f); err != nil {
		return nil, err
	}
	fill := map[string]func([]byte, live) []byte{
		markUptime:   func(dst []byte, v live) []byte { return append(dst, v.uptime.Round(time.Second).String()...) },
		markRSSMiB:   func(dst []byte, v live) []byte { return appendMiB(dst, v.rss) },
		markRSSBytes: func(dst []byte, v live) []byte { return strconv.AppendInt(dst, v.rss, 10) },
	}
	p := &infoPage{}
	rest := buf.Bytes()
	for {
		at, mark := -1, ""
		for m := range fill {
			if i := bytes.Index(rest, []byte(m)); i >= 0 && (at < 0 || i < at) {
				at, mark = i, m
			}
		}
		if at < 0 {
			break
		}
		p.parts = append(p.parts, rest[:at])
		p.fills = append(p.fills, fill[mark])
		rest = rest[at+len(mark):]
	}
	p.parts = append(p.parts, rest)
	for _, b := range p.parts {
		p.size += len(b)
	}
	return p, nil
}

// appendMiB appends b bytes in MiB with one decimal: "11.5 MiB".
func appendMiB(dst []byte, b int64) []byte {
	return append(strconv.AppendFloat(dst, float64(b)/(1<<20), 'f', 1, 64), " MiB"...)
}

// appendHTML appends the page with the live values v.
func (p *infoPage) appendHTML(dst []byte, v live) []byte {
	for i, b := range p.parts {
		dst = append(dst, b...)
		if i < len(p.fills) {
			dst = p.fills[i](dst, v)
		}
	}
	return dst
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	if wantsJSON(r) {
		s.handleAPIInfo(w, r)
		return
	}
	now := time.Now()
	body := s.info.appendHTML(make([]byte, 0, s.info.size+64), live{rss: s.facts.rss.get(now), uptime: now.Sub(s.facts.started)})
	setHTMLHeaders(w)
	h := w.Header()
	h["Vary"] = varyAccept
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	_, _ = w.Write(body)
}

var varyAccept = []string{"Accept"}

// wantsJSON reports whether the client prefers JSON over HTML.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

//go:embed home.html
var homeHTML string

var homeTmpl = template.Must(template.New("home").Parse(homeHTML))

// newHomePage renders / once: nothing on it changes while the process runs.
func newHomePage(f *facts, defaultCant int64) ([]byte, error) {
	var buf bytes.Buffer
	v := struct {
		*facts
		DefaultCant int64
	}{f, defaultCant}
	if err := homeTmpl.Execute(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	setHTMLHeaders(w)
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(s.home))}
	_, _ = w.Write(s.home)
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		respond.Error(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	respond.JSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

// handleLivez is Kubernetes' liveness: the process's serving loop runs (it
// accepted and routed this request). It says nothing of readiness: a
// process that stops or is not ready yet is alive, and restarting it would
// not help.
func (s *Server) handleLivez(w http.ResponseWriter, r *http.Request) {
	respond.JSON(w, http.StatusOK, []byte(`{"status":"alive"}`))
}

// handleReadyz is Kubernetes' readiness, and what HAProxy's `option httpchk`
// or a Consul HTTP check asks: whether this process (a CLUSTER worker: the
// cluster) takes traffic. 503 before it serves and from the start of a
// stop, while it still serves through --shutdown-delay.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.stopping.Load():
		respond.Error(w, http.StatusServiceUnavailable, "stopping")
	case !s.ready.Load():
		respond.Error(w, http.StatusServiceUnavailable, "not ready")
	default:
		respond.JSON(w, http.StatusOK, []byte(`{"status":"ready"}`))
	}
}
