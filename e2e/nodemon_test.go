package e2e

// nodemon end to end: the repository's nodemon.json, run by the pinned
// nodemon in a temporary copy of the repository, rebuilds and restarts
// lbserver when a source file or a template changes, and the old server
// drains (one signal) before the new one starts.

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pmCopyRepo copies the repository (without .git, bin, run, artifacts and
// node_modules) into a temporary folder and returns it.
func pmCopyRepo(tb testing.TB) string {
	tb.Helper()
	dst := tb.TempDir()
	skip := map[string]bool{".git": true, "bin": true, "run": true, "artifacts": true, "node_modules": true}
	err := copyRepo(dst, func(rel string, d fs.DirEntry) bool { return d.IsDir() && skip[d.Name()] })
	if err != nil {
		tb.Fatalf("copy the repository: %v", err)
	}
	tb.Cleanup(func() { pmKillExeUnder(tb, dst) })
	return dst
}

// nodemonStart runs nodemon in dir (where nodemon.json is) with lbserver's
// arguments after `--`, and waits until lbserver answers on port.
func nodemonStart(tb testing.TB, dir string, port int, args ...string) *Proc {
	tb.Helper()
	bin := pmTool(tb, "nodemon")
	cmd := exec.Command(bin, append([]string{"--"}, args...)...)
	cmd.Dir = dir
	cmd.Env = pmBaseEnv()
	p := StartCmd(tb, cmd)
	// The first run compiles the copy: give it time on a busy machine.
	WaitHTTP(tb, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 4*time.Minute)
	return p
}

// pmEdit replaces old with new in the file rel under dir (old must occur).
func pmEdit(tb testing.TB, dir, rel, old, new string) {
	tb.Helper()
	path := filepath.Join(dir, rel)
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		tb.Fatalf("%s does not contain %q; the test needs a new anchor", rel, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// pmDrained reports whether output holds lbserver's "drained" log line for pid.
func pmDrained(output string, role string, pid int) bool {
	re := regexp.MustCompile(`msg=drained role=` + role + ` pid=` + strconv.Itoa(pid) + `\b`)
	return re.MatchString(output)
}

// TestNodemonForkRebuildsOnTemplateEdit: FORK under nodemon is one lbserver
// process; editing the home page template rebuilds and restarts it, the old
// one drains (a request in flight is answered), and the new page is served.
func TestNodemonForkRebuildsOnTemplateEdit(t *testing.T) {
	dir := pmCopyRepo(t)
	port := FreePort(t)
	nm := nodemonStart(t, dir, port, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "FORK")
	in1, err := pmGetInfo(port)
	if err != nil {
		t.Fatal(err)
	}
	if got := pmExePids(dir); !pmEqualSets(got, []int{in1.Pid}) {
		t.Fatalf("lbserver processes under nodemon: %v, want exactly the one answering (%d)", got, in1.Pid)
	}

	// A request in flight across the restart: its first line is sent now,
	// the rest once the old server has stopped accepting. It must still be
	// answered by the old process (a drain, not a kill).
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n"); err != nil {
		t.Fatal(err)
	}

	marker := fmt.Sprintf("nodemon-edit-%d", time.Now().UnixNano())
	pmEdit(t, dir, "internal/server/home.html", "</body>", "<p>"+marker+"</p>\n</body>")
	Eventually(t, time.Minute, "the old lbserver stops accepting (nodemon signalled it)", func() bool {
		_, err := pmGetInfo(port)
		return err != nil
	})
	if _, err := io.WriteString(conn, "Connection: close\r\n\r\n"); err != nil {
		t.Fatalf("finish the in-flight request: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight during the restart got no answer (the old server was killed, not drained): %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Server-Pid") != strconv.Itoa(in1.Pid) {
		t.Fatalf("in-flight request: status %d from pid %s, want 200 from the old pid %d",
			resp.StatusCode, resp.Header.Get("X-Server-Pid"), in1.Pid)
	}
	var in2 pmInfo
	Eventually(t, 4*time.Minute, "the edited home page is served", func() bool {
		r, err := Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil || !strings.Contains(string(r.Body), marker) {
			return false
		}
		in2, err = pmGetInfo(port)
		return err == nil
	})
	if in2.Pid == in1.Pid || in2.Build == in1.Build {
		t.Fatalf("after the edit: pid %d build %s; want a new process (was %d) and a new build (was %s)",
			in2.Pid, in2.Build, in1.Pid, in1.Build)
	}
	if !pmDrained(nm.Output.String(), "fork", in1.Pid) {
		t.Errorf("the old lbserver (pid %d) did not log a clean drain; nodemon output:\n%s", in1.Pid, nm.Output.String())
	}
	Eventually(t, 20*time.Second, "exactly one lbserver after the restart", func() bool {
		return pmEqualSets(pmExePids(dir), []int{in2.Pid})
	})

	// Stopping nodemon stops lbserver too.
	if err := nm.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !nm.Wait(30 * time.Second) {
		t.Fatal("nodemon did not exit within 30s of SIGTERM")
	}
	pmWaitGone(t, dir, 30*time.Second)
}

// TestNodemonClusterRebuildsOnGoEdit: CLUSTER under nodemon is one master and
// its workers; editing a Go file rebuilds and restarts the master, and every
// new worker serves the new build.
func TestNodemonClusterRebuildsOnGoEdit(t *testing.T) {
	dir := pmCopyRepo(t)
	port := FreePort(t)
	nm := nodemonStart(t, dir, port, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "CLUSTER", "--workers", "2")
	in1, err := pmGetInfo(port)
	if err != nil {
		t.Fatal(err)
	}
	master := in1.Ppid
	var workers []int
	Eventually(t, 20*time.Second, "1 master + 2 workers", func() bool {
		workers = ChildPids(master)
		return len(workers) == 2 && pmEqualSets(pmExePids(dir), append([]int{master}, workers...))
	})

	pmEdit(t, dir, "cmd/lbserver/main.go", "package main", "package main\n\n// "+fmt.Sprintf("nodemon edit %d", time.Now().UnixNano()))
	var master2 int
	var workers2 []int
	Eventually(t, 4*time.Minute, "a new master whose 2 workers serve a new build", func() bool {
		in, err := pmGetInfo(port)
		if err != nil || in.Ppid == master || in.Build == in1.Build {
			return false
		}
		master2 = in.Ppid
		workers2 = ChildPids(master2)
		if len(workers2) != 2 {
			return false
		}
		ok, _ := pmAllServe(port, workers2, in.Build, 50)
		return ok
	})
	Eventually(t, 30*time.Second, "the old master and workers are gone; 3 lbserver processes", func() bool {
		return pmEqualSets(pmExePids(dir), append([]int{master2}, workers2...))
	})
	for _, w := range workers {
		if !pmDrained(nm.Output.String(), "worker", w) {
			t.Errorf("old worker %d did not log a clean drain", w)
		}
	}
	if t.Failed() {
		t.Logf("nodemon output:\n%s", nm.Output.String())
	}

	if err := nm.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !nm.Wait(40 * time.Second) {
		t.Fatal("nodemon did not exit within 40s of SIGTERM")
	}
	pmWaitGone(t, dir, 40*time.Second)
}
