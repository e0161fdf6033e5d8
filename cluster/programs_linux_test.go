package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbserver/lbserver/cluster"
)

// Programs built on cluster the way its users build them, each a few lines,
// run as real processes: the test binary started again with programEnv
// naming the program (TestMain). A program's workers are the test binary
// too (the master starts its own executable), so they run the same program.
const (
	programEnv = "CLUSTER_TEST_PROGRAM" // which program runProgram runs
	dirEnv     = "CLUSTER_TEST_DIR"     // where a program leaves what a test reads
)

// programs are the worker functions, by name.
var programs = map[string]func(ctx context.Context, w *cluster.Worker) error{
	// slow never calls cluster.Signals: GET /slow is answered only once the
	// worker's ctx is done (it drains), with "drained".
	"slow": func(ctx context.Context, w *cluster.Worker) error {
		mux := http.NewServeMux()
		mux.HandleFunc("/slow", func(rw http.ResponseWriter, r *http.Request) {
			note("inflight", strconv.Itoa(os.Getpid()))
			select {
			case <-ctx.Done():
				fmt.Fprint(rw, "drained")
			case <-time.After(time.Minute):
				fmt.Fprint(rw, "not drained")
			}
		})
		return w.Serve(ctx, &http.Server{Handler: mux})
	},
	// sigign runs a child process of its own and leaves its SigIgn line.
	"sigign": func(ctx context.Context, w *cluster.Worker) error {
		out, err := exec.Command("grep", "SigIgn", "/proc/self/status").Output()
		if err != nil {
			return err
		}
		note("sigign-"+strconv.Itoa(w.ID()), strings.TrimSpace(string(out)))
		return w.Serve(ctx, &http.Server{Handler: http.NotFoundHandler()})
	},
	// echo is a TCP server on Listeners, without Serve: it answers each
	// line with "worker ID: line". A worker started while the file
	// hold-ID exists waits until it is gone before it accepts.
	"echo": func(ctx context.Context, w *cluster.Worker) error {
		hold := filepath.Join(os.Getenv(dirEnv), "hold-"+strconv.Itoa(w.ID()))
		for {
			if _, err := os.Stat(hold); err != nil {
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond): // polling a file the test removes
			}
		}
		ln := w.Listeners()[0]
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		defer stop()
		if err := w.Ready(); err != nil {
			return err
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "worker %d: %s\n", w.ID(), sc.Text())
				}
			}()
		}
	},
	// procs leaves its GOMAXPROCS in procs-ID.
	"procs": func(ctx context.Context, w *cluster.Worker) error {
		note("procs-"+strconv.Itoa(w.ID()), strconv.Itoa(runtime.GOMAXPROCS(0)))
		return w.Serve(ctx, &http.Server{Handler: http.NotFoundHandler()})
	},
	// exe answers every request with the executable it runs.
	"exe": func(ctx context.Context, w *cluster.Worker) error {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		return w.Serve(ctx, &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprint(rw, exe)
		})})
	},
}

// programConfig is the Config every program's master and workers build.
func programConfig() cluster.Config {
	return cluster.Config{Addr: "127.0.0.1:0", EnvPrefix: "PROG_", Workers: 2, DrainTimeout: 20 * time.Second}
}

// note leaves value in the file name of the program's directory.
func note(name, value string) {
	_ = os.WriteFile(filepath.Join(os.Getenv(dirEnv), name+".tmp"), []byte(value), 0o600)
	_ = os.Rename(filepath.Join(os.Getenv(dirEnv), name+".tmp"), filepath.Join(os.Getenv(dirEnv), name))
}

// runProgram is main for the program name: master or worker, as Run
// decides. Started as a master by a test, it writes "run" on stdout just
// before it calls Run, then "addr ADDR" once bound; SIGTERM stops it, with
// no call to Signals.
func runProgram(name string) int {
	fn := programs[name]
	if fn == nil {
		fmt.Fprintln(os.Stderr, "no program", name)
		return 2
	}
	cfg := programConfig()
	ctx := context.Background()
	if cluster.WorkerIDFor(cfg.EnvPrefix) == 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
		cfg.OnMaster = func(m *cluster.Master) (func(), error) {
			fmt.Println("addr", m.Addr())
			return nil, nil
		}
		fmt.Println("run")
	}
	if err := cluster.Run(ctx, cfg, fn); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// readNote waits until the program left name in dir, and returns it.
func readNote(t *testing.T, dir, name string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the program left no %s: %v", name, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a file another process writes
	}
}

// programMaster runs program's master in this process (its workers are
// processes) until the test ends; it returns the master once every worker
// is ready, and the master's events.
func programMaster(t *testing.T, program string, cfg cluster.Config) (*cluster.Master, string, <-chan cluster.Event) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv(programEnv, program)
	t.Setenv(dirEnv, dir)
	events := make(chan cluster.Event, 1000)
	ms := make(chan *cluster.Master, 1)
	cfg.OnMaster = func(m *cluster.Master) (func(), error) { ms <- m; return nil, nil }
	cfg.OnEvent = func(e cluster.Event) { events <- e }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cluster.Run(ctx, cfg, programs[program]) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after the stop = %v, want nil", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("the master did not stop")
		}
	})
	var m *cluster.Master
	select {
	case m = <-ms:
	case err := <-done:
		t.Fatalf("Run = %v before the master started", err)
	}
	waitEvent(t, events, cluster.EventServing, 0)
	return m, dir, events
}

// waitEvent waits for the next event of kind k (about pid, unless 0).
func waitEvent(t *testing.T, events <-chan cluster.Event, k cluster.EventKind, pid int) cluster.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == k && (pid == 0 || e.Pid == pid) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", k)
		}
	}
}

// A worker of a program that never calls cluster.Signals drains on SIGTERM
// (an operator's kill, systemctl kill): its request in flight is answered,
// and it exits with status 0.
func TestWorkerDrainsOnSIGTERMWithoutSignals(t *testing.T) {
	m, dir, events := programMaster(t, "slow", programConfig())
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + m.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	pid, err := strconv.Atoi(readNote(t, dir, "inflight"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || r.body != "drained" {
			t.Errorf("the request in flight at SIGTERM got %q, %v; want \"drained\"", r.body, r.err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the request in flight at SIGTERM got no answer")
	}
	if e := waitEvent(t, events, cluster.EventExited, pid); e.Err != nil {
		t.Errorf("the worker SIGTERMed exited with %v, want status 0 (drained)", e.Err)
	}
}

// sigIgn is the SigIgn mask of a /proc/PID/status line.
func sigIgn(t *testing.T, line string) uint64 {
	t.Helper()
	_, hex, ok := strings.Cut(line, ":")
	v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
	if !ok || err != nil {
		t.Fatalf("SigIgn line %q: %v", line, err)
	}
	return v
}

// A worker's own child processes start with the signal dispositions the
// master had: the worker ignoring SIGINT and SIGHUP (so that a terminal's
// Ctrl-C reaches it only as the master's SIGTERM) must not make its
// children ignore them, as an ignored signal stays ignored across exec.
func TestWorkersChildrenDoNotInheritIgnoredSignals(t *testing.T) {
	_, dir, _ := programMaster(t, "sigign", programConfig())
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var own uint64
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "SigIgn:") {
			own = sigIgn(t, sc.Text())
		}
	}
	const hupInt = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGINT-1)
	for id := 1; id <= 2; id++ {
		line := readNote(t, dir, "sigign-"+strconv.Itoa(id))
		if extra := sigIgn(t, line) &^ own & hupInt; extra != 0 {
			t.Errorf("worker %d's child: %s; it ignores %#x (SIGHUP=0x1, SIGINT=0x2) which the master did not", id, line, extra)
		}
	}
}

// masterProcess starts program's master as a process of its own (exe: the
// test binary again), in the directory env names (dirEnv) if any, reading
// its stdout lines; the test ends it and its workers, whatever happens.
func masterProcess(t *testing.T, program string, exe string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(exe)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, dirEnv+"="); ok {
			cmd.Dir = v // a relative exe is relative to it
		}
	}
	cmd.Env = append(os.Environ(), append([]string{programEnv + "=" + program}, env...)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // master and workers: one group
		if err := cmd.Wait(); err != nil && t.Failed() {
			t.Logf("the master: %v", err)
		}
	})
	return cmd, bufio.NewScanner(out)
}

// line waits for the master's next stdout line starting with prefix and
// returns the rest.
func line(t *testing.T, sc *bufio.Scanner, prefix string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				got <- strings.TrimSpace(rest)
				return
			}
		}
		close(got)
	}()
	select {
	case s, ok := <-got:
		if !ok {
			t.Fatalf("the master ended before it wrote %q", prefix) // its exit status: see the cleanup
		}
		return s
	case <-time.After(30 * time.Second):
		t.Fatalf("the master did not write %q", prefix)
	}
	return ""
}

var (
	_ = errors.New
	_ net.Listener
)

// alive reports whether process pid exists (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// The master learns of a worker's exit from the process itself, not from
// the pipes it shares with its own children: a worker that exits and
// leaves a child holding its stdout, ready pipe and lifeline (sh -c 'sleep
// 60 & exit 0') is restarted while that child still lives.
func TestExitSeenWhileAGrandchildHoldsThePipes(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	t.Cleanup(func() { // every sleep the workers left
		b, _ := os.ReadFile(pids)
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	events := make(chan cluster.Event, 1000)
	cfg := cluster.Config{Addr: "127.0.0.1:0", Workers: 1, NoSystemd: true,
		Exe: "/bin/sh", Args: []string{"-c", `sleep 60 & echo $! >> "$0"; exit 0`, pids},
		Stdout:  &strings.Builder{}, // not a file: the master copies it through a pipe
		OnEvent: func(e cluster.Event) { events <- e }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cluster.Run(ctx, cfg, nil) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the master did not stop")
		}
	}()
	first := waitEvent(t, events, cluster.EventSpawned, 0)
	timeout := time.After(20 * time.Second)
	for restarted := false; !restarted; {
		select {
		case e := <-events:
			restarted = e.Kind == cluster.EventSpawned
		case <-timeout:
			t.Fatal("the worker that exited while its child held its pipes was not restarted in 20s")
		}
	}
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	if !alive(grandchild) {
		t.Errorf("worker %d's child %d is gone: the restart did not come while it held the pipes", first.Pid, grandchild)
	}
}

// A symlink deploy: the program started as current/app with current ->
// releases/a; then current is pointed at releases/b and the master gets
// SIGHUP: the new workers run releases/b/app. The path the program was
// started by is followed again at every start of a worker.
func TestReloadFollowsTheSymlinkTheProgramWasStartedBy(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, r := range []string{"a", "b"} {
		app := filepath.Join(dir, "releases", r, "app")
		if err := os.MkdirAll(filepath.Dir(app), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(self, app); err != nil { // a copy would do; a link is cheaper
			b, err := os.ReadFile(self)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(app, b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	point := func(release string) { // ln -sfn releases/R current
		tmp := filepath.Join(dir, "current.new")
		if err := os.Symlink(filepath.Join("releases", release), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "current")); err != nil {
			t.Fatal(err)
		}
	}
	point("a")
	cmd, out := masterProcess(t, "exe", "./current/app", dirEnv+"="+dir) // started in dir
	addr := line(t, out, "addr ")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func() string {
		t.Helper()
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got, want := get(), filepath.Join(dir, "releases", "a", "app"); got != want {
		t.Fatalf("before the deploy a worker runs %s, want %s", got, want)
	}
	point("b")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "releases", "b", "app")
	deadline := time.Now().Add(30 * time.Second)
	for inARow := 0; inARow < 20; { // both workers, many times over
		got := get()
		inARow++
		if got != want {
			inARow = 0
			if time.Now().After(deadline) {
				t.Fatalf("30s after the deploy and SIGHUP a worker runs %s, want %s", got, want)
			}
			time.Sleep(20 * time.Millisecond) // polling the reload under way
		}
	}
}

// A worker built on Listeners, without Serve (a TCP echo server), adopts
// the slot of a worker that died: while the dead worker's replacement is
// not accepting yet, every connection, also those the kernel hashes to the
// orphaned slot's socket, is answered, by the other worker.
func TestListenersAdoptAnOrphanedSlot(t *testing.T) {
	m, dir, events := programMaster(t, "echo", programConfig())
	var victim cluster.WorkerInfo
	for _, w := range m.Workers() {
		if w.Slot == 1 {
			victim = w
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "hold-1"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, events, cluster.EventAdopted, 0); e.Slot != 1 {
		t.Fatalf("adopted slot %d, want 1", e.Slot)
	}
	const conns = 24 // new connections: the kernel hashes about half to slot 1's socket
	answers := make(chan string, conns)
	for i := range conns {
		go func() {
			c, err := net.Dial("tcp", m.Addr().String())
			if err != nil {
				answers <- err.Error()
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(15 * time.Second))
			fmt.Fprintf(c, "hello %d\n", i)
			reply, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				answers <- fmt.Sprintf("connection %d: no answer: %v", i, err)
				return
			}
			answers <- strings.TrimSpace(reply)
		}()
	}
	for range conns {
		if a := <-answers; !strings.HasPrefix(a, "worker 2: hello ") {
			t.Errorf("while slot 1 was orphaned: %s, want worker 2's echo", a)
		}
	}
	if err := os.Remove(filepath.Join(dir, "hold-1")); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, cluster.EventReleased, 0)
}

// A master started by a systemd that does not read its notifications
// (NOTIFY_SOCKET names a socket nobody reads) still serves, reloads and
// stops: a full notification socket drops messages, it never blocks the
// master's loop.
func TestMasterNeverBlocksOnANotifySocketNobodyReads(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // never read
	t.Setenv("NOTIFY_SOCKET", sock)
	m, _, events := programMaster(t, "sigign", programConfig())
	for i := range 3 { // every reload sends 4 notifications: with the start, more than the queue (10) holds
		m.Reload()
		if e := waitEvent(t, events, cluster.EventReloaded, 0); e.Kind != cluster.EventReloaded {
			t.Fatalf("reload %d did not finish", i+1)
		}
	}
}

// Real workers run with the GOMAXPROCS the package doc promises: the
// master's CPUs shared out over the workers, rounded up, unless the
// environment the workers start with says otherwise.
func TestWorkersGOMAXPROCS(t *testing.T) {
	share := strconv.Itoa((runtime.GOMAXPROCS(0) + 1) / 2)
	for _, tc := range []struct {
		name, env, want string // env: the master's GOMAXPROCS variable, "" for none
	}{
		{"default", "", share},
		{"the caller's GOMAXPROCS", "3", "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.env) // restored after the test; read by the runtime only at start
			if tc.env == "" {
				os.Unsetenv("GOMAXPROCS")
			}
			_, dir, _ := programMaster(t, "procs", programConfig())
			for id := 1; id <= programConfig().Workers; id++ {
				if got := readNote(t, dir, "procs-"+strconv.Itoa(id)); got != tc.want {
					t.Errorf("worker %d runs GOMAXPROCS %s, want %s", id, got, tc.want)
				}
			}
		})
	}
}
