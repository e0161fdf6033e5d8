package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// A worker's private socket (a unix socket, for its master) serves only
// /metrics, which the master gathers there; the public port serves every
// route.
func TestPrivateSocketServesOnlyMetrics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "route "+r.URL.Path) })
	srv := httpServer(masterOnly(mux), slog.New(slog.NewTextHandler(io.Discard, nil)))
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "private")
	unix, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tcp)
	go srv.Serve(unix)
	t.Cleanup(func() { srv.Close() })
	overUnix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	for _, c := range []struct {
		client *http.Client
		base   string
		path   string
		want   int
	}{
		{http.DefaultClient, "http://" + tcp.Addr().String(), "/api/info", 200},
		{http.DefaultClient, "http://" + tcp.Addr().String(), "/metrics", 200},
		{overUnix, "http://worker", "/metrics", 200},
		{overUnix, "http://worker", "/api/info", 404},
		{overUnix, "http://worker", "/", 404},
		{overUnix, "http://worker", "/metrics/../api/info", 404},
	} {
		resp, err := c.client.Get(c.base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s%s = %d, want %d", c.base, c.path, resp.StatusCode, c.want)
		}
	}
}
