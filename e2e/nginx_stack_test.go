package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ngxMake runs `make target` in the repository with the binary and the run
// folder in the test's temporary folder, and returns its output.
func ngxMake(t *testing.T, bin, runDir, target string, vars ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append([]string{"-C", repoRoot(), "--no-print-directory", target, "BIN=" + bin, "RUN_DIR=" + runDir}, vars...)
	out, err := exec.CommandContext(ctx, "make", args...).CombinedOutput()
	return string(out), err
}

func ngxMustMake(t *testing.T, bin, runDir, target string, vars ...string) string {
	t.Helper()
	out, err := ngxMake(t, bin, runDir, target, vars...)
	if err != nil {
		t.Fatalf("make %s %v: %v\n%s", target, vars, err, out)
	}
	return out
}

// ngxPortOf is the X-Server-Port of GET url, or "" on error.
func ngxPortOf(url string) string {
	r, err := Get(url)
	if err != nil {
		return ""
	}
	return r.Header.Get("X-Server-Port")
}

// make stack-a, stack-a again, stack-status, stack-b, demo, stack-down, with
// the shipped configs on port 80, then stack-a with NGINX_PORT=8088.
func TestNginxStackMakeTargets(t *testing.T) {
	if !ngxInNamespace(t) {
		return
	}
	requireTool(t, "make")
	tmp := t.TempDir()
	bin, runDir := filepath.Join(tmp, "lbserver"), filepath.Join(tmp, "run")
	t.Cleanup(func() {
		if out, err := ngxMake(t, bin, runDir, "stack-down"); err != nil {
			t.Logf("make stack-down in cleanup: %v\n%s", err, out)
		}
	})
	conf := filepath.Join(runDir, "nginx", "conf", "nginx.conf")
	sameAsShipped := func(name string) {
		t.Helper()
		got, _ := os.ReadFile(conf)
		want, _ := os.ReadFile(ngxConf(name))
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("nginx runs %s, which is not the shipped %s", conf, name)
		}
	}

	out := ngxMustMake(t, bin, runDir, "stack-a")
	for _, want := range []string{"topology A is up", "http://127.0.0.1/api/randoms?cant=1000", "http://127.0.0.1/info"} {
		if !strings.Contains(out, want) {
			t.Errorf("make stack-a output lacks %q:\n%s", want, out)
		}
	}
	sameAsShipped("topology-a.conf")
	if got := ngxPortOf("http://127.0.0.1/api/randoms?cant=10"); got != "8081" {
		t.Errorf("after make stack-a, /api/randoms answered by %q, want 8081", got)
	}
	if got := ngxPortOf("http://127.0.0.1/info"); got != "8080" {
		t.Errorf("after make stack-a, /info answered by %q, want 8080", got)
	}
	procsA := ngxOtherProcs()
	// nginx master + 2 workers, FORK 8080, CLUSTER master + its workers.
	if len(procsA) < 6 {
		t.Errorf("after make stack-a: %d processes, want at least 6:\n%s", len(procsA), strings.Join(procsA, "\n"))
	}

	out = ngxMustMake(t, bin, runDir, "stack-a")
	if got := ngxOtherProcs(); strings.Join(got, "\n") != strings.Join(procsA, "\n") {
		t.Errorf("make stack-a twice changed the processes:\nbefore:\n%s\nafter:\n%s\noutput:\n%s",
			strings.Join(procsA, "\n"), strings.Join(got, "\n"), out)
	}
	if strings.Count(out, "already runs") != 3 {
		t.Errorf("make stack-a twice should say 'already runs' for 8080, 8081 and nginx:\n%s", out)
	}

	out = ngxMustMake(t, bin, runDir, "stack-status")
	for _, want := range []string{"topology A", "lbserver :8080  pid", "lbserver :8081  pid", "workers (ps --ppid"} {
		if !strings.Contains(out, want) {
			t.Errorf("make stack-status lacks %q:\n%s", want, out)
		}
	}

	fork := MustGet(t, "http://127.0.0.1:8080/healthz").Header.Get("X-Server-Pid")
	ngxMustMake(t, bin, runDir, "stack-b")
	sameAsShipped("topology-b.conf")
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:8081", time.Second); err == nil {
		conn.Close()
		t.Error("after make stack-b, the topology A instance on 8081 still runs")
	}
	if got := MustGet(t, "http://127.0.0.1:8080/healthz").Header.Get("X-Server-Pid"); got != fork {
		t.Errorf("make stack-b restarted the instance on 8080 (pid %s, was %s)", got, fork)
	}

	out = ngxMustMake(t, bin, runDir, "demo", "DEMO_REQUESTS=200")
	counts := regexp.MustCompile(`(?m)^\s+(808[2-5])\s+(\d+)$`).FindAllStringSubmatch(out, -1)
	if len(counts) != 4 {
		t.Errorf("make demo printed %d port counts, want 4:\n%s", len(counts), out)
	}
	for _, m := range counts {
		if m[2] != "50" {
			t.Errorf("make demo: port %s answered %s of 200, want 50:\n%s", m[1], m[2], out)
		}
	}
	for _, want := range []string{"failed  0", "/info was answered by port 8080"} {
		if !strings.Contains(out, want) {
			t.Errorf("make demo output lacks %q:\n%s", want, out)
		}
	}

	ngxMustMake(t, bin, runDir, "stack-down")
	if left := ngxOtherProcs(); len(left) > 0 {
		t.Errorf("make stack-down left processes:\n%s", strings.Join(left, "\n"))
	}
	if pids, _ := filepath.Glob(filepath.Join(runDir, "pids", "*.pid")); len(pids) > 0 {
		t.Errorf("make stack-down left pid files %v", pids)
	}
	if out := ngxMustMake(t, bin, runDir, "stack-down"); !strings.Contains(out, "nothing was running") {
		t.Errorf("a second make stack-down should say nothing was running:\n%s", out)
	}
	// Nothing up is an answer, not an error: one clear line, exit 0.
	if out, err := ngxMake(t, bin, runDir, "stack-status"); err != nil || !strings.Contains(out, "nothing is up") {
		t.Errorf("make stack-status with no stack up: %v, want exit 0 and 'nothing is up':\n%s", err, out)
	}

	// Another port for nginx: the shipped config with only `listen` changed.
	ngxMustMake(t, bin, runDir, "stack-a", "NGINX_PORT=8088")
	got, _ := os.ReadFile(conf)
	want, _ := os.ReadFile(ngxConf("topology-a.conf"))
	if diff := ngxDiffLines(string(want), string(got)); len(diff) != 1 || strings.TrimSpace(diff[0]) != "listen 8088 default_server;" {
		t.Errorf("with NGINX_PORT=8088 the config differs from the shipped one in %q, want only the listen line", diff)
	}
	if got := ngxPortOf("http://127.0.0.1:8088/api/randoms?cant=10"); got != "8081" {
		t.Errorf("with NGINX_PORT=8088, /api/randoms answered by %q, want 8081", got)
	}
	ngxMustMake(t, bin, runDir, "stack-down")
	if left := ngxOtherProcs(); len(left) > 0 {
		t.Errorf("make stack-down left processes:\n%s", strings.Join(left, "\n"))
	}
}

// Without nginx the stack says how to install it, in one line, exits
// non-zero, and starts nothing.
func TestNginxStackWithoutNginx(t *testing.T) {
	runDir := filepath.Join(t.TempDir(), "run")
	cmd := exec.CommandContext(cmdCtx(t, time.Minute), filepath.Join(repoRoot(), "scripts", "stack.sh"), "up", "a")
	cmd.Env = append(os.Environ(), "NGINX=/nonexistent/nginx", "LBSERVER_BIN="+binPath, "RUN_DIR="+runDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatal("stack.sh up a without nginx exited 0")
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "apt-get install -y nginx") {
		t.Errorf("stderr %q, want one line with `apt-get install -y nginx`", stderr.String())
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Errorf("%s exists: something was started (%v)", runDir, err)
	}
}
