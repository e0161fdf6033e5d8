// Package respond holds what every lbserver handler answers the same way:
// JSON bodies, JSON errors and the Content-Security-Policy of its pages.
package respond

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// CSP is the Content-Security-Policy of every page lbserver serves and of
// its assets: everything from the page's own origin, nothing inline, no
// plugins, no framing.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
)

// JSON writes body (already JSON) with status, never cached.
func JSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Error answers {"error": msg} with status. Clients see a message that says
// what is allowed; internal details stay in the log.
func Error(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg}) // a struct of one string cannot fail to encode
	JSON(w, status, b)
}
