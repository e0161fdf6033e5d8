// Package e2e holds end-to-end tests: they build the real lbserver binary,
// start it (and nginx, pm2, ... in other files) on loopback ports, wait for
// readiness by polling, and kill every process they started, even on failure.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the lbserver binary under test, built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	// The outer copy of the binary only supervises the inner one, which runs
	// the tests (reaper_linux_test.go): nothing the run starts outlives it.
	if code, ok := superviseRun(); ok {
		os.Exit(code)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if p := os.Getenv("LBSERVER_BIN"); p != "" {
		binPath = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "lbserver-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "lbserver")
	if err := buildBinary(binPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// buildBinary compiles ./cmd/lbserver to out.
func buildBinary(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/lbserver")
	cmd.Dir = repoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, b)
	}
	return nil
}

// cmdCtx bounds a command the test runs to completion: it is killed after d
// (and at the end of the test at the latest).
func cmdCtx(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// repoRoot is the module root (the parent of this e2e folder).
func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

// inCI reports whether the tests run under CI: CI is set to anything but
// "", "0", "false" or "no" (CI=true, CI=1, CI=yes... all count; GitHub,
// GitLab and most runners set CI=true). Under CI a missing tool or missing
// root is a failure, never a skip.
func inCI() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("CI"))) {
	case "", "0", "false", "no":
		return false
	}
	return true
}

// requireTool returns the path of a tool, or skips the test when it is
// missing — except under CI (inCI), where a missing tool is a failure.
func requireTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if inCI() {
		tb.Fatalf("%s is not installed; CI must install it (make test does)", name)
	}
	tb.Skipf("%s is not installed (make test installs it)", name)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that is free now, that no other
// FreePort call of this run has returned, and that lies below the kernel's
// ephemeral range: the port is released before the server binds it, and a
// port from bind(0) could meanwhile be taken by any outgoing connection (the
// load generators open thousands) or handed to the next FreePort call.
func FreePort(tb testing.TB) int {
	tb.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := 10000, ephemeralLow()-1
	if hi-lo < 1000 { // an unusual ephemeral range: use the ports above it
		lo, hi = ephemeralHigh()+1, 65535
	}
	for range 1000 {
		p := lo + rand.IntN(hi-lo+1)
		if portsGiven[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[p] = true
		return p
	}
	tb.Fatalf("no free port found in %d-%d", lo, hi)
	return 0
}

var (
	portMu     sync.Mutex // guards portsGiven
	portsGiven = map[int]bool{}
)

// ephemeralLow and ephemeralHigh are the kernel's range for outgoing
// connections and bind(0) (net.ipv4.ip_local_port_range).
func ephemeralLow() int  { lo, _ := ephemeralRange(); return lo }
func ephemeralHigh() int { _, hi := ephemeralRange(); return hi }

func ephemeralRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	f := strings.Fields(string(b))
	if err != nil || len(f) != 2 {
		return 32768, 60999 // Linux's default
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 32768, 60999
	}
	return lo, hi
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is a started process (and its process group).
type Proc struct {
	Cmd    *exec.Cmd
	Output *syncBuffer // stdout and stderr together
	done   chan struct{}
	err    error // set before done is closed
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error; valid after Done.
func (p *Proc) Err() error { <-p.done; return p.err }

// Wait waits up to d for the process to exit and reports whether it did.
func (p *Proc) Wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// StartLB starts the lbserver binary with args.
func StartLB(tb testing.TB, args ...string) *Proc {
	tb.Helper()
	return StartCmd(tb, exec.Command(binPath, args...))
}

// StartCmd starts cmd in a process group of its own, with a parent-death
// SIGKILL (it dies with the test process, even when no cleanup runs), and
// registers a cleanup that SIGKILLs the whole group and waits for the
// leader. On failure the process output is logged.
func StartCmd(tb testing.TB, cmd *exec.Cmd) *Proc {
	tb.Helper()
	p := &Proc{Cmd: cmd, Output: &syncBuffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Output
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Output
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := startTied(cmd); err != nil {
		tb.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	pgid := cmd.Process.Pid
	tb.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
		if tb.Failed() {
			tb.Logf("output of %s:\n%s", strings.Join(cmd.Args, " "), p.Output.String())
		}
	})
	return p
}

// Resp is an HTTP answer read whole.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// client has no keep-alive so that each request is a new connection unless a
// test builds its own client.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// Get fetches url and reads the whole body.
func Get(url string) (Resp, error) {
	return Do(client, url)
}

// Do fetches url with c and reads the whole body.
func Do(c *http.Client, url string) (Resp, error) {
	r, err := c.Get(url)
	if err != nil {
		return Resp{}, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return Resp{Status: r.StatusCode, Header: r.Header, Body: b}, err
}

// MustGet is Get that fails the test on a transport error.
func MustGet(tb testing.TB, url string) Resp {
	tb.Helper()
	r, err := Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return r
}

// WaitHTTP polls url until it answers 200, the process exits, or timeout.
// p may be nil.
func WaitHTTP(tb testing.TB, p *Proc, url string, timeout time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		r, err := Get(url)
		if err == nil && r.Status == http.StatusOK {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "status " + strconv.Itoa(r.Status)
		}
		var done <-chan struct{}
		if p != nil {
			done = p.Done()
		}
		select {
		case <-done:
			tb.Fatalf("process exited (%v) before %s answered; output:\n%s", p.err, url, p.Output.String())
		case <-ctx.Done():
			tb.Fatalf("%s did not answer 200 within %s (last: %s)", url, timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Eventually polls cond every 20ms until it returns true or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pids lists, in ascending order, the live (not zombie) processes for which
// keep returns true.
func Pids(keep func(pid int) bool) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !keep(pid) || !Alive(pid) {
			continue
		}
		out = append(out, pid)
	}
	slices.Sort(out)
	return out
}

// ParentPid is pid's parent from /proc, or 0 if pid is gone.
func ParentPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// stat: pid (comm) state ppid ...; comm may hold spaces, so cut after ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}

// ChildPids lists the live pids whose parent is ppid.
func ChildPids(ppid int) []int {
	return Pids(func(pid int) bool { return ParentPid(pid) == ppid })
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// StopAndCheck sends SIGTERM to p, requires it to exit with status 0 within
// timeout, and requires that none of workers (its children before the
// signal) outlives it.
func StopAndCheck(tb testing.TB, p *Proc, workers []int, timeout time.Duration) {
	tb.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	if !p.Wait(timeout) {
		tb.Fatalf("still running %s after SIGTERM", timeout)
	}
	if err := p.Err(); err != nil {
		tb.Fatalf("exit after SIGTERM: got %v, want status 0", err)
	}
	for _, w := range workers {
		if Alive(w) {
			tb.Errorf("worker %d still alive after its master exited", w)
		}
	}
}

// copyRepo copies the repository's regular files into dst, leaving out
// what skip names (rel is the path in the repository; a folder skipped is
// skipped whole).
func copyRepo(dst string, skip func(rel string, d fs.DirEntry) bool) error {
	src := repoRoot()
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// readableCopy copies the repository files rels (slash-separated, relative
// to the repository) into a fresh temporary folder that every user can enter
// and read (folders 0755, files 0644, or 0755 when the owner may execute
// them), and returns that folder. A test that runs something as another user
// (nobody) runs the copy: the checkout itself may sit under a folder only its
// owner can enter, such as root's home (0700).
func readableCopy(tb testing.TB, rels ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	// t.TempDir makes its folder and the one above it 0700; chmod beats the umask.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, rel := range rels {
		src := filepath.Join(repoRoot(), filepath.FromSlash(rel))
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		info, err := os.Stat(src)
		if err != nil {
			tb.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			tb.Fatal(err)
		}
		for d := filepath.Dir(dst); d != dir; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		mode := os.FileMode(0o644)
		if info.Mode()&0o100 != 0 {
			mode = 0o755
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chmod(dst, mode); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
