package e2e

// Helpers for the process-manager tests (PM2, Forever, nodemon, systemd).
// Every name starts with pm so that it never collides with the other e2e files.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pmTool returns the path of a process manager installed by `npm ci --prefix
// tools` (tools/node_modules/.bin/NAME). Like requireTool, it skips when the
// tool is missing, except under CI=true where that is a failure.
func pmTool(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(repoRoot(), "tools", "node_modules", ".bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if inCI() {
		tb.Fatalf("%s is not installed; CI must install it (make deps runs npm ci --prefix tools)", p)
	}
	tb.Skipf("%s is not installed (run: make deps, or npm ci --prefix tools)", p)
	return ""
}

// pmStage copies the binary under test to DIR/bin/lbserver, so that a test
// can rebuild it in place without touching the binary other tests use.
// It returns DIR (a fresh temporary folder) and the staged binary's path.
func pmStage(tb testing.TB) (dir, bin string) {
	tb.Helper()
	dir = tb.TempDir()
	bin = filepath.Join(dir, "bin", "lbserver")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		tb.Fatal(err)
	}
	src, err := os.Open(binPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		tb.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatal(err)
	}
	// Whatever happens, no process started from this folder outlives the test.
	tb.Cleanup(func() { pmKillExeUnder(tb, dir) })
	return dir, bin
}

// pmRebuild runs `go build -o out ./cmd/lbserver` from the repository, as a
// user does after changing the code. The -X stamp changes the linker flags,
// hence the build id embedded in the file, hence the file's hash: the new
// binary reports a different `build` in /api/info.
func pmRebuild(tb testing.TB, out, stamp string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.pmRebuildStamp="+stamp, "-o", out, "./cmd/lbserver")
	cmd.Dir = repoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, b)
	}
}

// pmBuildOf runs `BIN --version` and returns the build id it prints.
func pmBuildOf(tb testing.TB, bin string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		tb.Fatalf("%s --version: %v", bin, err)
	}
	// "lbserver build 7e9b8bcfd707 (go1.26.8, linux/amd64)"
	f := strings.Fields(string(out))
	if len(f) < 3 || f[1] != "build" {
		tb.Fatalf("%s --version printed %q, want \"lbserver build ID ...\"", bin, out)
	}
	return f[2]
}

// pmInfo is the part of /api/info the process-manager tests look at.
type pmInfo struct {
	Pid      int    `json:"pid"`
	Ppid     int    `json:"ppid"`
	Mode     string `json:"mode"`
	WorkerID int    `json:"workerId"`
	Port     int    `json:"port"`
	Build    string `json:"build"`
	ExecPath string `json:"execPath"`
}

// pmGetInfo fetches http://127.0.0.1:PORT/api/info on a new connection.
func pmGetInfo(port int) (pmInfo, error) {
	var in pmInfo
	r, err := Get(fmt.Sprintf("http://127.0.0.1:%d/api/info", port))
	if err != nil {
		return in, err
	}
	if r.Status != 200 {
		return in, fmt.Errorf("GET /api/info on port %d: status %d", port, r.Status)
	}
	if err := json.Unmarshal(r.Body, &in); err != nil {
		return in, fmt.Errorf("GET /api/info on port %d: %w", port, err)
	}
	return in, nil
}

// pmSample asks /api/info on port up to n times (one new connection each) and
// returns what each answering pid said last. Failed requests are counted.
func pmSample(port, n int) (byPid map[int]pmInfo, failed int) {
	byPid = map[int]pmInfo{}
	for range n {
		in, err := pmGetInfo(port)
		if err != nil {
			failed++
			continue
		}
		byPid[in.Pid] = in
	}
	return byPid, failed
}

// pmAllServe reports whether every pid in pids answered on port with build
// within up to n requests (the kernel picks the process for each connection,
// so it may take a few tries to reach them all). It returns a description of
// what was seen for the failure message.
func pmAllServe(port int, pids []int, build string, n int) (bool, string) {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	seen := map[int]string{}
	for range n {
		in, err := pmGetInfo(port)
		if err != nil {
			continue
		}
		seen[in.Pid] = in.Build
		ok := len(pids) > 0
		for p := range want {
			if seen[p] != build {
				ok = false
			}
		}
		if ok {
			return true, fmt.Sprint(seen)
		}
	}
	return false, fmt.Sprintf("want pids %v with build %s, seen pid->build %v", pids, build, seen)
}

// pmExePids lists the live processes whose executable file lies under dir
// (a replaced binary shows as "PATH (deleted)" and still counts).
func pmExePids(dir string) []int {
	return Pids(func(pid int) bool {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		return err == nil && strings.HasPrefix(exe, dir+string(os.PathSeparator))
	})
}

// pmKillExeUnder SIGKILLs, by pid, every process whose executable lies under
// dir: the safety net behind each manager's own stop command.
func pmKillExeUnder(tb testing.TB, dir string) {
	pids := pmExePids(dir)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(pids) > 0 {
		tb.Logf("cleanup: killed leftover processes from %s: %v", dir, pids)
	}
}

// pmKillPidFile SIGKILLs the pid written in file, if the file exists and the
// process is alive (used for the PM2 daemon and forever monitors).
func pmKillPidFile(file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 && Alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pmCmd runs name with args in dir, with env added to the environment (minus
// PORT and MODE, which lbserver would read), and returns stdout+stderr.
// The command is bounded by timeout.
func pmCmd(tb testing.TB, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(pmBaseEnv(), env...)
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %s: %w", name, strings.Join(args, " "), timeout, ctx.Err())
	}
	return buf.String(), err
}

// pmMust is pmCmd that fails the test on error.
func pmMust(tb testing.TB, timeout time.Duration, dir string, env []string, name string, args ...string) string {
	tb.Helper()
	out, err := pmCmd(tb, timeout, dir, env, name, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// pmBaseEnv is the test's environment without PORT and MODE.
func pmBaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PORT=") || strings.HasPrefix(kv, "MODE=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

var pmANSI = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// pmPlain removes terminal colour codes.
func pmPlain(s string) string { return pmANSI.ReplaceAllString(s, "") }

// pmFreePortRun returns the first of n consecutive TCP ports on 127.0.0.1
// that were all free a moment ago (PM2's increment_var gives instance i the
// port first+i).
func pmFreePortRun(tb testing.TB, n int) int {
	tb.Helper()
	for range 50 {
		first := FreePort(tb)
		if first+n-1 > 65535 {
			continue
		}
		ok := true
		for p := first; p < first+n; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			portMu.Lock()
			for p := first; p < first+n; p++ {
				portsGiven[p] = true // FreePort must not hand them out again
			}
			portMu.Unlock()
			return first
		}
	}
	tb.Fatalf("no run of %d free consecutive ports found", n)
	return 0
}

// pmEqualSets reports whether a and b hold the same ints.
func pmEqualSets(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	x := append([]int(nil), a...)
	y := append([]int(nil), b...)
	sort.Ints(x)
	sort.Ints(y)
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

// pmWaitGone waits until no process runs from dir.
func pmWaitGone(tb testing.TB, dir string, timeout time.Duration) {
	tb.Helper()
	Eventually(tb, timeout, "no lbserver process left from "+dir, func() bool { return len(pmExePids(dir)) == 0 })
}

// errPMNotFound is returned by lookups that find no process.
var errPMNotFound = errors.New("not found")
