package main

import (
	"net"
	"net/http"
)

// masterOnly lets through, on a worker's private socket, only what the
// master asks for there: /metrics, which --master-metrics gathers from
// every worker. lbserver's public sockets are TCP (systemd's unix sockets
// are refused), so a request that came in on a unix socket came in on the
// private one; every other route there is 404.
func masterOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, private := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr); private && r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
