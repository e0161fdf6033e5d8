package cluster

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A worker gets its slot's socket first (fd 3), then every slot's socket
// (fds 6..), then the connection table, and its slot, the slot count and
// its table entry in its environment.
func TestSpawnLayout(t *testing.T) {
	h := newHarness(t, Config{Workers: 3, MaxWorkers: 3, EnvPrefix: "T_"})
	ps := h.startAll()
	p := ps[1]
	if p.slot != 2 {
		t.Fatalf("slot %d, want 2", p.slot)
	}
	wantEnv := []string{"T_WORKER_ID=2", "T_SLOTS=3", "T_CONNTABLE_FD=9", "T_CONNTABLE_ENTRY=1/12"}
	for _, kv := range wantEnv {
		if !slices.Contains(p.spec.Env, kv) {
			t.Errorf("env %v lacks %s", p.spec.Env, kv)
		}
	}
	if len(p.spec.Files) != 5 {
		t.Fatalf("%d files, want the slot's socket, 3 slots' sockets and the table", len(p.spec.Files))
	}
	if p.spec.Files[0] != h.l.slots[1].sock || !slices.Equal(p.spec.Files[1:4], h.l.sockets) || p.spec.Files[4] != h.l.table.file {
		t.Error("files are not: the slot's socket, then every slot's socket in order, then the table")
	}
	if fdOf(0) != 3 || fdOf(1) != 6 || fdOf(3) != 8 {
		t.Errorf("fdOf: %d %d %d, want 3 6 8", fdOf(0), fdOf(1), fdOf(3))
	}
}

// The private socket's fd is named in the environment, after the slots'
// and the table's.
func TestSpawnPrivateSocket(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, MaxWorkers: 2, PrivateSockets: true, EnvPrefix: "T_"})
	r, w, err := os.Pipe() // stands for a socket: only its place matters
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h.inspect(func(l *loop) {
		l.sys.listenPrivate = func(int) (*os.File, string, error) { return r, "@test", nil }
	})
	ps := h.startAll()
	h.exit(ps[0], errors.New("signal: killed"))
	p := h.spawned()
	if !slices.Contains(p.spec.Env, "T_PRIVATE_FD=9") || p.spec.Files[4] != r {
		t.Errorf("env %v, files %v: want T_PRIVATE_FD=9 and the socket at fd 9 (after the table's)", p.spec.Env, p.spec.Files)
	}
	var got string
	h.inspect(func(l *loop) { got = l.slots[0].cur.private })
	if got != "@test" {
		t.Errorf("the master knows the worker's private address as %q, want @test", got)
	}
}

func TestWithoutWorkerEnv(t *testing.T) {
	env := []string{"PATH=/bin", "T_WORKER_ID=3", "T_SLOTS=2", "T_CONNTABLE_FD=9", "OTHER_WORKER_ID=1", "T_WORKER_IDX=1"}
	got := withoutWorkerEnv(env, "T_")
	want := []string{"PATH=/bin", "OTHER_WORKER_ID=1", "T_WORKER_IDX=1"}
	if !slices.Equal(got, want) {
		t.Errorf("withoutWorkerEnv = %v, want %v", got, want)
	}
}

// Config.WorkerEnv gives each slot's worker its own variables, at every
// start of that slot.
func TestWorkerEnv(t *testing.T) {
	h := newHarness(t, Config{Workers: 2, WorkerEnv: func(slot int) []string {
		return []string{"SHARD=" + strconv.Itoa(slot*10)}
	}})
	ps := h.startAll()
	for i, p := range ps {
		if want := "SHARD=" + strconv.Itoa((i+1)*10); !slices.Contains(p.spec.Env, want) {
			t.Errorf("worker of slot %d: env %v, want %s", p.slot, p.spec.Env, want)
		}
	}
	h.exit(ps[1], errors.New("signal: killed"))
	if n := h.spawned(); !slices.Contains(n.spec.Env, "SHARD=20") {
		t.Errorf("restarted worker of slot 2: env %v, want SHARD=20", n.spec.Env)
	}
}

// A worker's GOMAXPROCS is the CPUs shared out over the workers, rounded
// up (package doc, "GOMAXPROCS"); Config.WorkerProcs sets it, negative
// leaves it to Go, and a GOMAXPROCS in the caller's environment wins.
func TestSpawnGOMAXPROCS(t *testing.T) {
	for _, tc := range []struct {
		name          string
		cpus, workers int
		procs         int
		env           []string
		want          string // "" when the master must not set GOMAXPROCS
	}{
		{name: "2 CPUs, 2 workers", cpus: 2, workers: 2, want: "GOMAXPROCS=1"},
		{name: "2 CPUs, 1 worker", cpus: 2, workers: 1, want: "GOMAXPROCS=2"},
		{name: "8 CPUs, 3 workers", cpus: 8, workers: 3, want: "GOMAXPROCS=3"},
		{name: "2 CPUs, 4 workers", cpus: 2, workers: 4, want: "GOMAXPROCS=1"},
		{name: "Config.WorkerProcs asks for more", cpus: 2, workers: 2, procs: 2, want: "GOMAXPROCS=2"},
		{name: "negative: Go's default", cpus: 2, workers: 2, procs: -1},
		{name: "caller's GOMAXPROCS wins", cpus: 2, workers: 2, procs: 1, env: []string{"HOME=/", "GOMAXPROCS=2"}},
		{name: "CPUs unknown", cpus: 0, workers: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, Config{Workers: tc.workers, WorkerProcs: tc.procs}, func(l *loop) {
				l.sys.cpus = tc.cpus
				if tc.env != nil {
					l.cfg.Env = tc.env
				}
			})
			for _, p := range h.startAll() {
				var got []string
				for _, kv := range p.spec.Env {
					if strings.HasPrefix(kv, "GOMAXPROCS=") {
						got = append(got, kv)
					}
				}
				switch {
				case tc.want == "" && len(got) > 0:
					t.Errorf("worker %d: master set %v, want the caller's environment (or Go) to decide", p.slot, got)
				case tc.want != "" && !slices.Equal(got, []string{tc.want}):
					t.Errorf("worker %d: got %v, want %s", p.slot, got, tc.want)
				}
			}
		})
	}
}
