package balancepage

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/lbserver/lbserver/internal/respond"
)

//go:embed assets
var assets embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// route maps the last segment of a request path to the embedded file that
// answers it. "balance" is the page itself.
var route = map[string]struct{ file, contentType string }{
	"balance":  {"assets/balance.html", "text/html; charset=utf-8"},
	"app.css":  {"assets/app.css", "text/css; charset=utf-8"},
	"app.js":   {"assets/app.js", "text/javascript; charset=utf-8"},
	"icon.svg": {"assets/icon.svg", "image/svg+xml"},
}

// Handler returns the handler of the balancing page. Mount it for the page
// and for its assets, e.g.
//
//	mux.Handle("GET /balance", balancepage.Handler())
//	mux.Handle("GET /balance/", balancepage.Handler())
//
// It answers a path ending in /balance with the page, /balance/ with a
// relative redirect to it, /balance/app.css, /balance/app.js and
// /balance/icon.svg with the assets, and anything else with 404.
func Handler() http.Handler {
	files := make(map[string]asset, len(route))
	for seg, r := range route {
		b, err := fs.ReadFile(assets, r.file)
		if err != nil {
			// The files are embedded at build time: a missing one is a
			// programming error caught by the package tests.
			panic(fmt.Sprintf("balancepage: %v", err))
		}
		sum := sha256.Sum256(b)
		files[seg] = asset{body: b, contentType: r.contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return &handler{files: files}
}

type handler struct {
	files map[string]asset // by last path segment; read-only after Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		respond.Error(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; allowed: GET, HEAD")
		return
	}
	p := r.URL.Path
	if strings.HasSuffix(p, "/balance/") {
		// The page's relative links assume it sits at .../balance.
		w.Header().Set("Location", "../balance")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	seg := p[strings.LastIndexByte(p, '/')+1:]
	if seg != "balance" && !strings.HasSuffix(p, "/balance/"+seg) {
		seg = "" // an asset name outside .../balance/ is not ours
	}
	a, ok := h.files[seg]
	if !ok {
		respond.Error(w, http.StatusNotFound, "no such file "+r.URL.Path+"; the balance page is at .../balance")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Content-Security-Policy", respond.CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	// no-cache: revalidate each time (cheap, thanks to the ETag), so a
	// rebuilt binary's page is picked up at once.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	http.ServeContent(w, r, seg, time.Time{}, bytes.NewReader(a.body))
}
