package cluster

import (
	"errors"
	"os"
	"slices"
	"strconv"
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
