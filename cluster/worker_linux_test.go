package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
}

func tcpSocket(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := plainFile(ln.(*net.TCPListener))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

func (w *Worker) adoptedSlots() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for k := range w.adopted {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The lifeline carries "adopted K...", the whole set of other slots to
// serve: the worker serves exactly those sockets, ignores its own slot,
// unknown slots and junk; EOF on the
// lifeline (the master is gone, however it died) ends the worker's ctx, and
// the worker drains and returns.
func TestWorkerAdoptsReleasesAndDrainsWhenTheMasterIsGone(t *testing.T) {
	slots := map[int]*os.File{}
	addrs := map[int]string{}
	for k := 1; k <= 3; k++ {
		slots[k], addrs[k] = tcpSocket(t)
	}
	own, err := net.FileListener(slots[1])
	if err != nil {
		t.Fatal(err)
	}
	r, lw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	logs := &syncBuffer{}
	cfg := &Config{Workers: 3, DrainTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	w := &Worker{id: 1, cfg: cfg, lns: []net.Listener{own}, lifeline: r, slots: slots}
	served := make(chan error, 1)
	go func() {
		served <- runWorker(context.Background(), cfg, w, func(ctx context.Context, w *Worker) error {
			return w.Serve(ctx, &http.Server{Handler: okHandler()})
		})
	}()
	step := func(cmds string, want ...int) {
		t.Helper()
		if _, err := fmt.Fprint(lw, cmds); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !slices.Equal(w.adoptedSlots(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("after %q adopted %v, want %v", cmds, w.adoptedSlots(), want)
			}
			time.Sleep(time.Millisecond) // polling a state another goroutine changes
		}
	}
	step("adopted 2\n", 2)
	resp, err := http.Get("http://" + addrs[2] + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET on the adopted slot: %v", err)
	}
	resp.Body.Close()
	step("adopted 2\nadopted 1 2 9\nbogus\nadopted x\n", 2) // own slot and unknown ignored, junk skipped
	step("adopted 2 3\n", 2, 3)
	step("adopted 3\n", 3)
	step("adopted\n")
	lw.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("worker after the master was gone = %v, want nil (drained)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not stop when its lifeline closed")
	}
	if !strings.Contains(logs.String(), "master is gone; draining") {
		t.Errorf("log lacks %q:\n%s", "master is gone; draining", logs)
	}
}

// The worker's ctx ending (SIGTERM) leaves the lifeline watch without
// taking the master for gone.
func TestWatchMasterCancel(t *testing.T) {
	r, lw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	w := &Worker{id: 1, lifeline: r, slots: map[int]*os.File{}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w.watchMaster(ctx) {
		t.Error("watchMaster after cancel = true, want false")
	}
}

// A process its master did not start is not a worker.
func TestNotAWorker(t *testing.T) {
	t.Setenv("X_WORKER_ID", "")
	cfg := &Config{EnvPrefix: "X_"}
	if _, err := workerFromEnv(cfg); err != errNotWorker {
		t.Errorf("workerFromEnv without the variable = %v, want errNotWorker", err)
	}
	if id := WorkerIDFor(cfg.EnvPrefix); id != 0 {
		t.Errorf("WorkerIDFor = %d, want 0", id)
	}
}

// Once the master is gone, its workers let go of every slot's socket at
// once, so that a master started again on the same port can bind it while
// they are still draining.
func TestMasterGoneReleasesSlotSockets(t *testing.T) {
	files, addr, err := listenSockets("127.0.0.1:0", 2, false, true)
	if err != nil {
		t.Fatal(err)
	}
	r, lw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &Worker{id: 1, lifeline: r, slots: map[int]*os.File{1: files[0], 2: files[1]}}
	lw.Close() // the master is gone
	if !w.watchMaster(context.Background()) {
		t.Fatal("watchMaster at EOF = false, want true")
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("bind %s after the master was gone: %v, want the port free", addr, err)
	}
	ln.Close()
}

// A worker that drains (its ctx is done) lets go of every slot's socket at
// once: once the master has closed its copies too, new connections to the
// port are refused instead of waiting for the drain to end.
func TestDrainReleasesSlotSockets(t *testing.T) {
	files, addr, err := listenSockets("127.0.0.1:0", 2, false, true)
	if err != nil {
		t.Fatal(err)
	}
	r, lw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	w := &Worker{id: 1, lifeline: r, slots: map[int]*os.File{1: files[0], 2: files[1]}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w.watchMaster(ctx) {
		t.Fatal("watchMaster after cancel = true, want false")
	}
	if _, err := net.Dial("tcp", addr.String()); err == nil {
		t.Fatalf("dial %s once the worker drains: connected, want refused", addr)
	}
}

// "stopping" on the lifeline closes Stopping and leaves the worker serving
// (its ctx goes on); so does EOF, which also ends the ctx.
func TestLifelineStoppingClosesStopping(t *testing.T) {
	for _, eof := range []bool{false, true} {
		r, lw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w := &Worker{id: 1, lifeline: r, slots: map[int]*os.File{}}
		ctx, cancel := context.WithCancel(context.Background())
		gone := make(chan bool, 1)
		go func() { gone <- w.watchMaster(ctx) }()
		select {
		case <-w.Stopping():
			t.Fatal("Stopping closed before the master said so")
		default:
		}
		if eof {
			lw.Close()
		} else if _, err := lw.WriteString("adopted stopping\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.Stopping():
		case <-time.After(10 * time.Second):
			t.Fatalf("eof=%v: Stopping not closed", eof)
		}
		if !eof {
			select {
			case <-gone:
				t.Fatal("\"stopping\" ended the lifeline watch; the worker must serve on")
			default:
			}
			cancel()
		}
		if got := <-gone; got != eof {
			t.Errorf("eof=%v: watchMaster = %v, want %v", eof, got, eof)
		}
		cancel()
		lw.Close()
	}
}
