package server

import (
	"net/http"

	"github.com/lbserver/lbserver/internal/respond"
)

var (
	htmlType = []string{"text/html; charset=utf-8"}
	noStore  = []string{"no-store"}
	csp      = []string{respond.CSP}
)

// setHTMLHeaders sets the headers every HTML page carries.
func setHTMLHeaders(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = htmlType
	h["Content-Security-Policy"] = csp
	h["X-Frame-Options"] = []string{"DENY"}
	h["Referrer-Policy"] = []string{"no-referrer"}
	h["Cache-Control"] = noStore
}
