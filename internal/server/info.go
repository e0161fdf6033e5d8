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
	writeJSON(w, http.StatusOK, s.facts.appendJSON(buf, s.facts.rss.get(now), now.Sub(s.facts.started)))
}

//go:embed info.html
var infoHTML string

var infoTmpl = template.Must(template.New("info").Funcs(template.FuncMap{
	"mib": func(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" },
}).Parse(infoHTML))

// infoView is what info.html renders.
type infoView struct {
	*facts
	RSSBytes int64
	Uptime   string
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	if wantsJSON(r) {
		s.handleAPIInfo(w, r)
		return
	}
	var buf bytes.Buffer
	v := infoView{facts: s.facts, RSSBytes: s.facts.rss.get(time.Now()), Uptime: time.Since(s.facts.started).Round(time.Second).String()}
	if err := infoTmpl.Execute(&buf, v); err != nil {
		s.log.Error("render info", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	setHTMLHeaders(w)
	w.Header().Set("Vary", "Accept")
	_, _ = w.Write(buf.Bytes())
}

// wantsJSON reports whether the client prefers JSON over HTML.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

//go:embed home.html
var homeHTML string

var homeTmpl = template.Must(template.New("home").Parse(homeHTML))

func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := homeTmpl.Execute(&buf, s.facts); err != nil {
		s.log.Error("render home", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	setHTMLHeaders(w)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}
