package cluster

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Where workers cannot be processes, Run serves in-process as worker 1,
// says so, and drains when ctx ends.
func TestRunInProcess(t *testing.T) {
	logs := &syncBuffer{}
	cfg := &Config{Addr: "127.0.0.1:0", Workers: 4, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runInProcess(ctx, cfg, func(ctx context.Context, w *Worker) error {
			if w.ID() != 1 || len(w.Listeners()) != 1 {
				t.Errorf("in-process worker: ID %d, %d listeners; want 1, 1", w.ID(), len(w.Listeners()))
			}
			addr <- w.Listeners()[0].Addr().String()
			return w.Serve(ctx, &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(rw, "ok")
			})})
		})
	}()
	resp, err := http.Get("http://" + <-addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("in-process Run after ctx ended = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-process worker did not drain")
	}
	if !strings.Contains(logs.String(), "serving in this process as one worker") {
		t.Errorf("log does not say it serves in-process:\n%s", logs)
	}
}
