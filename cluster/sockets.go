package cluster

import (
	"context"
	"net"
	"net/http"
)

// PrivateTransport is an http.RoundTripper that reaches a worker on its
// private socket: the request's URL host is ignored, the connection goes
// to addr (a WorkerInfo.PrivateAddr).
func PrivateTransport(addr string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		},
		DisableKeepAlives: true,
	}
}
