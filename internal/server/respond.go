package server

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSON writes body (already JSON) with status.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var (
	jsonType = []string{"application/json"}
	htmlType = []string{"text/html; charset=utf-8"}
	noStore  = []string{"no-store"}
)

// writeError answers {"error": msg} with status. Clients see a message that
// says what is allowed; internal details stay in the log.
func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg}) // a struct of one string cannot fail to encode
	writeJSON(w, status, b)
}

// setHTMLHeaders sets the headers every HTML page carries.
func setHTMLHeaders(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = htmlType
	h["Content-Security-Policy"] = []string{"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"}
	h["X-Frame-Options"] = []string{"DENY"}
	h["Referrer-Policy"] = []string{"no-referrer"}
	h["Cache-Control"] = noStore
}
