package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/lbserver/lbserver/cluster"
)

func messagesConfig(force <-chan struct{}) cluster.Config {
	return cluster.Config{Addr: "127.0.0.1:0", Workers: 2, Force: force, EnvPrefix: "EXMSG_", Stdout: io.Discard, Messages: true}
}

// flusher is what every worker of ExampleMaster_Broadcast runs: it serves
// from a cache, and empties it when the master says "flush", then says so.
func flusher(ctx context.Context, w *cluster.Worker) error {
	var mu sync.Mutex // guards cache
	cache := map[string]string{}
	var wg sync.WaitGroup
	defer wg.Wait() // Messages closes once this function has returned
	msgs := w.Messages()
	wg.Go(func() {
		for msg := range msgs {
			if string(msg) == "flush" {
				mu.Lock()
				clear(cache)
				mu.Unlock()
				_ = w.Send([]byte("flushed"))
			}
		}
	})
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		v, ok := cache[r.URL.Path]
		if !ok {
			v = fmt.Sprintf("page %s from worker %d", r.URL.Path, w.ID())
			cache[r.URL.Path] = v
		}
		fmt.Fprintln(rw, v)
	})
	return w.Serve(ctx, &http.Server{Handler: h})
}

// The master broadcasts "flush" to every worker once they all serve (a
// cache flush, as after a deploy of new content); each worker answers
// with a message of its own, which the master's OnMessage counts.
func ExampleMaster_Broadcast() {
	ctx, force, stop := cluster.Signals(context.Background())
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := messagesConfig(force)
	var m *cluster.Master
	cfg.OnMaster = func(master *cluster.Master) (func(), error) {
		m = master
		return nil, nil
	}
	cfg.OnEvent = func(e cluster.Event) {
		if e.Kind == cluster.EventServing {
			if err := m.Broadcast([]byte("flush")); err != nil {
				fmt.Println(err)
				cancel()
			}
		}
	}
	flushed := map[int]bool{}
	cfg.OnMessage = func(msg cluster.Message) {
		if string(msg.Data) == "flushed" {
			flushed[msg.Slot] = true
			if len(flushed) == 2 {
				fmt.Println("both workers flushed their cache")
				cancel()
			}
		}
	}
	err := cluster.Run(ctx, cfg, flusher)
	fmt.Println("stopped:", err)
	// Output:
	// both workers flushed their cache
	// stopped: <nil>
}
