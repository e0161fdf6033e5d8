package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A run folder given to the scripts (LAB_RUN_DIR, RUN_DIR) that holds
// something and that they did not make (no marker of theirs) is refused:
// nothing in it is deleted or written, whatever it is (/etc, a home).
func TestScriptsRefuseAFolderNotTheirs(t *testing.T) {
	relRequireRoot(t)
	for _, c := range []struct {
		script string
		args   []string
		envVar string
	}{
		{"lab.sh", []string{"up"}, "LAB_RUN_DIR"},
		{"lab.sh", []string{"down"}, "LAB_RUN_DIR"},
		{"stack.sh", []string{"down"}, "RUN_DIR"},
	} {
		dir := t.TempDir()
		keep := []string{"keep.txt", "nginx/conf/nginx.conf", "nginx/logs/nginx.pid", "pids/host1.pid", "pids/lbserver-8080.pid", "topology", "nginx-port"}
		for _, f := range keep {
			p := filepath.Join(dir, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("999999\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.CommandContext(cmdCtx(t, 2*time.Minute), filepath.Join(repoRoot(), "scripts", c.script), c.args...)
		// NGINX=/bin/false: were the script to go on, nginx -t fails at once.
		cmd.Env = append(os.Environ(), c.envVar+"="+dir, "LAB_PREFIX=ltown-", "LAB_NET=10.219", "NGINX=/bin/false", "LBSERVER_BIN=/bin/true")
		out, err := cmd.CombinedOutput()
		what := c.script + " " + strings.Join(c.args, " ") + " with " + c.envVar + "=" + dir
		if err == nil {
			t.Errorf("%s: exit 0, want a refusal\n%s", what, out)
		}
		if !strings.Contains(string(out), dir) || !strings.Contains(string(out), "not") {
			t.Errorf("%s: output %q, want it to name the folder and refuse it", what, out)
		}
		for _, f := range keep {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %s is gone (%v)\n%s", what, f, err, out)
			}
		}
	}
}

// startStranger starts a process that is not ours but whose command line
// looks like one of our lbserver's (bash -c LOOP lbserver ARGS...), in a
// process group of its own; it is killed when the test ends.
func startStranger(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"-c", "while :; do sleep 0.2; done", "lbserver"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	return cmd
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// A pid file that names a stranger whose command line merely contains
// lbserver and the expected arguments (pid reused, or a pid file written by
// someone else) is not trusted: stack.sh down and lab.sh down leave that
// process alone.
func TestScriptsStopOnlyTheirOwnProcesses(t *testing.T) {
	relRequireRoot(t)
	for _, c := range []struct {
		script, envVar, marker, pidFile string
		stranger                        []string
	}{
		{"stack.sh", "RUN_DIR", ".lbserver-stack-run", "pids/lbserver-8085.pid", []string{"--port", "8085", "x"}},
		{"lab.sh", "LAB_RUN_DIR", ".lbserver-lab-run", "pids/host2.pid", []string{"--host-name", "host2", "x"}},
	} {
		s := startStranger(t, c.stranger...)
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "pids"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.marker), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.pidFile), []byte(strconv.Itoa(s.Process.Pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(cmdCtx(t, 2*time.Minute), filepath.Join(repoRoot(), "scripts", c.script), "down")
		cmd.Env = append(os.Environ(), c.envVar+"="+dir, "LAB_PREFIX=ltown-", "LAB_NET=10.219")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("%s down: %v", c.script, err)
		}
		if !alive(s.Process.Pid) {
			t.Errorf("%s down killed a stranger (pid %d: bash -c ... lbserver %s) its pid file named\n%s",
				c.script, s.Process.Pid, strings.Join(c.stranger, " "), out)
		}
	}
}

// stop_group (scripts/procs.sh) on a process that leads no process group
// says "stopped" only once that process is gone.
func TestStopGroupWaitsForANonLeader(t *testing.T) {
	relRequireRoot(t)
	script := `set -euo pipefail
say() { printf 'say: %s\n' "$*"; }
die() { printf 'die: %s\n' "$*" >&2; exit 1; }
source "$1"
# A child in our own process group, that takes a second to exit on SIGTERM.
bash -c 'trap "sleep 1; exit 0" TERM; while :; do sleep 0.1; done' &
pid=$!
sleep 0.3
stop_group "$pid" stranger TERM 10
if [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat")" != Z ]; then
  echo "STILL ALIVE $pid"
fi
kill -KILL "$pid" 2>/dev/null || true
`
	out, err := exec.CommandContext(cmdCtx(t, time.Minute), "bash", "-c", script, "x", filepath.Join(repoRoot(), "scripts", "procs.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), "STILL ALIVE") {
		t.Errorf("stop_group returned while the process still ran:\n%s", out)
	}
	if !strings.Contains(string(out), "stopped stranger") {
		t.Errorf("stop_group output %q, want 'stopped stranger'", out)
	}
}
