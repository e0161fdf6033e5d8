package e2e

// The convenience targets of mk/pm.mk, run as a user runs them, on the fixed
// ports (8080-8085) inside a private network namespace (`unshare -n`, root
// only) so that they never collide with anything else on the machine, in a
// copy of the repository (the targets build bin/lbserver: the repository's
// own binary is never replaced, and every process started from the copy is
// killed by the copy's cleanup, even when the test fails).

import (
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

// TestForeverMakeTargets: make forever-a, forever-status, forever-down, forever-b, forever-down.
func TestForeverMakeTargets(t *testing.T) {
	repo := pmMakeRepo(t)
	f := foreverStart(t, repo)
	out := pmNetnsScript(t, repo, f.env, `
make -s forever-a
`+pmWaitPorts("8080", "8081")+`
make -s forever-status
make -s forever-down
make -s forever-b
`+pmWaitPorts("8080", "8082", "8083", "8084", "8085")+`
make -s forever-down
echo "list after forever-down: $(tools/node_modules/.bin/forever list --no-colors 2>/dev/null | grep -c lbserver- || true)"
`)
	for _, want := range []string{"port 8081 answers", "lbserver-8081", "port 8085 answers", "forever: stopped lbserver-8085", "list after forever-down: 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	Eventually(t, 30*time.Second, "no forever monitor left", func() bool {
		return len(pmEnvPids("FOREVER_ROOT="+f.root)) == 0
	})
}
