package e2e

// scripts/stack.sh's status and down with what a user leaves behind: pid
// files of processes that are gone, and instances started by hand as
// docs/COMMANDS.md shows (their pid files under run/pids). These need no
// nginx and no fixed port.

import (
	"context"
	"fmt"
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

// stackMake runs `make TARGET RUN_DIR=runDir` and returns its output and
// exit code.
func stackMake(t *testing.T, runDir, target string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", repoRoot(), "--no-print-directory", target, "RUN_DIR="+runDir, "BIN="+binPath)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	return string(out), code
}

// bashError is what bash prints for a failed redirection or command.
var bashError = regexp.MustCompile(`line [0-9]+:|No such file or directory|command not found`)

// stackMarkRunDir marks dir as a run folder scripts/stack.sh made: it
// refuses, untouched, a RUN_DIR holding files that has no such mark.
func stackMarkRunDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, ".lbserver-stack-run"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A dead pid in a pid file: status and down say so in their own words.
func TestStackStalePidFiles(t *testing.T) {
	requireTool(t, "make")
	runDir := t.TempDir()
	pids := filepath.Join(runDir, "pids")
	if err := os.MkdirAll(pids, 0o755); err != nil {
		t.Fatal(err)
	}
	stackMarkRunDir(t, runDir)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"8082", "8083"} {
		if err := os.WriteFile(filepath.Join(pids, "lbserver-"+port+".pid"), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := stackMake(t, runDir, "stack-status")
	if bashError.MatchString(out) || code != 0 || !strings.Contains(out, "NOT RUNNING (stale pid file") || !strings.Contains(out, "nothing is up") {
		t.Errorf("make stack-status with stale pid files: exit %d, output:\n%s\nwant exit 0, 'stale pid file', 'nothing is up', and no bash error", code, out)
	}
	// With a topology recorded (a stack that was up, then killed).
	if err := os.WriteFile(filepath.Join(runDir, "topology"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = stackMake(t, runDir, "stack-status")
	if bashError.MatchString(out) || !strings.Contains(out, "NOT RUNNING") {
		t.Errorf("make stack-status, topology B recorded, nothing running:\n%s\nwant NOT RUNNING lines and no bash error", out)
	}
	out, code = stackMake(t, runDir, "stack-down")
	if bashError.MatchString(out) || code != 0 {
		t.Errorf("make stack-down with stale pid files: exit %d:\n%s", code, out)
	}
	if left, _ := filepath.Glob(filepath.Join(pids, "*.pid")); len(left) != 0 {
		t.Errorf("make stack-down left pid files: %v", left)
	}
}

// Nothing up at all: a clear sentence and exit 0 (make prints no Error).
func TestStackStatusNothingUp(t *testing.T) {
	requireTool(t, "make")
	out, code := stackMake(t, filepath.Join(t.TempDir(), "run"), "stack-status")
	if code != 0 || strings.Contains(out, "Error") || !strings.Contains(out, "nothing is up") {
		t.Errorf("make stack-status with nothing up: exit %d:\n%s\nwant exit 0 and 'nothing is up'", code, out)
	}
}

// An instance started by hand as COMMANDS.md does (setsid, a pid file under
// run/pids) is listed by make stack-status, with its pid and health.
func TestStackStatusSeesInstancesStartedByHand(t *testing.T) {
	requireTool(t, "make")
	requireTool(t, "setsid")
	runDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(runDir, "pids"), 0o755); err != nil {
		t.Fatal(err)
	}
	stackMarkRunDir(t, runDir)
	port := FreePort(t)
	p := StartLB(t, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--mode", "CLUSTER", "--workers", "2")
	WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 15*time.Second)
	pidFile := filepath.Join(runDir, "pids", fmt.Sprintf("lbserver-%d.pid", port))
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(p.Pid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := stackMake(t, runDir, "stack-status")
	want := fmt.Sprintf("lbserver :%d  pid %d, health 200", port, p.Pid())
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "workers (ps --ppid") || bashError.MatchString(out) {
		t.Errorf("make stack-status with a CLUSTER instance started by hand: exit %d:\n%s\nwant exit 0 and %q with its workers", code, out, want)
	}
	if strings.Contains(out, "nothing is up") {
		t.Errorf("make stack-status says nothing is up while pid %d serves port %d:\n%s", p.Pid(), port, out)
	}
	// make stack-down stops it too (it reads the same pid files).
	out, code = stackMake(t, runDir, "stack-down")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("stopped lbserver :%d", port)) {
		t.Errorf("make stack-down: exit %d:\n%s", code, out)
	}
	if !p.Wait(20 * time.Second) {
		_ = p.Signal(syscall.SIGKILL)
		t.Fatalf("the instance started by hand still runs after make stack-down")
	}
}
