package e2e

// The convenience targets of mk/pm.mk, run as a user runs them, on the fixed
// ports (8080-8085) inside a private network namespace (`unshare -n`, root
// only) so that they never collide with anything else on the machine, in a
// copy of the repository (the targets build bin/lbserver: the repository's
// own binary is never replaced, and every process started from the copy is
// killed by the copy's cleanup, even when the test fails).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// pmMakeRepo is a copy of the repository for the make targets, with a copy
// of the installed process managers (tools/node_modules: a link to the
// original would let the copy's `make pm-tools` rewrite it).
func pmMakeRepo(t *testing.T) string {
	t.Helper()
	pmTool(t, "pm2")
	dir := pmCopyRepo(t)
	src := filepath.Join(repoRoot(), "tools", "node_modules")
	if out, err := exec.CommandContext(cmdCtx(t, 2*time.Minute), "cp", "-a", src, filepath.Join(dir, "tools")).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v\n%s", src, err, out)
	}
	return dir
}

// pmNetnsScript runs a bash script in a new network namespace with loopback
// up, from dir (a copy of the repository), with env added; it returns the
// output.
func pmNetnsScript(t *testing.T, dir string, env []string, script string) string {
	t.Helper()
	relRequireRoot(t)
	requireTool(t, "unshare")
	requireTool(t, "ip")
	requireTool(t, "curl")
	requireTool(t, "make")
	out, err := pmCmd(t, 5*time.Minute, dir, env, "unshare", "-n", "bash", "-c",
		"set -euo pipefail\nip link set lo up\n"+script)
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, out)
	}
	return pmPlain(out)
}

// pmWaitPorts is a bash snippet that waits (at most 20 s) until each port answers /healthz.
func pmWaitPorts(ports ...string) string {
	return `for p in ` + strings.Join(ports, " ") + `; do
  for _ in $(seq 1 200); do curl -sf -o /dev/null "http://127.0.0.1:$p/healthz" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$p/healthz" || { echo "port $p does not answer"; exit 1; }
  echo "port $p answers"
done
`
}

// TestPM2MakeTargets: make pm2-a, pm2-status, pm2-down, pm2-b, pm2-down.
func TestPM2MakeTargets(t *testing.T) {
	repo := pmMakeRepo(t)
	p := pm2Start(t, repo)
	out := pmNetnsScript(t, repo, p.env, `
make -s pm2-a
`+pmWaitPorts("8080", "8081")+`
make -s pm2-status
make -s pm2-down
make -s pm2-b
`+pmWaitPorts("8080", "8082", "8083", "8084", "8085")+`
make -s pm2-down
echo "jlist after pm2-down: $(tools/node_modules/.bin/pm2 jlist)"
`)
	for _, want := range []string{"port 8081 answers", "lbserver-cluster", "port 8085 answers", "jlist after pm2-down: []"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// pm2-down stopped every lbserver this PM2 started (they carry its
	// PM2_HOME); only the daemon itself, a node process, may remain.
	bin := filepath.Join(repo, "bin")
	Eventually(t, 30*time.Second, "no lbserver of this PM2 left after make pm2-down", func() bool {
		for _, pid := range pmEnvPids("PM2_HOME=" + p.home) {
			if slices.Contains(pmExePids(bin), pid) {
				return false
			}
		}
		return true
	})
}

// TestForeverMakeTargets: make forever-a, forever-b, forever-down back to
// back, then forever-a, forever-status, forever-b, forever-down with each
// topology answering in between, every forever monitor starting 3 s late, as
// on a loaded machine. `forever start` returns before its monitors are
// listed, and a `forever stop` in that window does not see them: before the
// targets waited for them, forever-down left a monitor and its lbserver on
// 8080 running. When each forever-down returns, no monitor of this
// FOREVER_ROOT and no lbserver of the copy may be left.
func TestForeverMakeTargets(t *testing.T) {
	repo := pmMakeRepo(t)
	f := foreverStart(t, repo)
	slow := filepath.Join(t.TempDir(), "slow-monitor.js")
	if err := os.WriteFile(slow, []byte(`// forever's monitors (not the CLI) start 3 s late.
if (/forever\/bin\/monitor$/.test(process.argv[1] || '')) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(slices.Clone(f.env), "NODE_OPTIONS=--require "+slow)
	// Right after forever-down returns: no forever monitor of this
	// FOREVER_ROOT (found by its environment, listed or not; its lbserver
	// carries the same environment) and no process run from the copy's bin/.
	nothingLeft := func(after string) {
		t.Helper()
		if pids := pmEnvPids("FOREVER_ROOT=" + f.root); len(pids) > 0 {
			t.Errorf("after %s, processes of this FOREVER_ROOT are left: %v", after, pmDescribe(pids))
		}
		if pids := pmExePids(filepath.Join(repo, "bin")); len(pids) > 0 {
			t.Errorf("after %s, lbserver processes are left: %v", after, pmDescribe(pids))
		}
	}
	// The sequence of the report, back to back: nothing waits between the
	// targets but the targets themselves.
	out := pmNetnsScript(t, repo, env, `
make -s forever-a
make -s forever-b
make -s forever-down
`)
	nothingLeft("make forever-a, forever-b, forever-down")
	out += pmNetnsScript(t, repo, env, `
make -s forever-a
`+pmWaitPorts("8080", "8081")+`
make -s forever-status
make -s forever-b
`+pmWaitPorts("8080", "8082", "8083", "8084", "8085")+`
curl -s -o /dev/null "http://127.0.0.1:8081/healthz" && echo "8081 still answers after forever-b"
make -s forever-down
echo "list after forever-down: $(tools/node_modules/.bin/forever list --no-colors 2>/dev/null | grep -c lbserver- || true)"
`)
	nothingLeft("make forever-a, forever-status, forever-b, forever-down")
	for _, want := range []string{"port 8081 answers", "lbserver-8081", "forever: stopped lbserver-8081",
		"port 8085 answers", "forever: stopped lbserver-8085", "list after forever-down: 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "still answers") || strings.Contains(out, "STOPPED") {
		t.Errorf("forever-b did not stop topology A first:\n%s", out)
	}
}

// pmDescribe names each pid with its command line.
func pmDescribe(pids []int) []string {
	var out []string
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, fmt.Sprintf("%d %s", pid, strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))))
	}
	return out
}
