package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// make stack-b BALANCER=haproxy, demo, stack-status, stack-a (a seamless
// reload to topology A's config), a switch to nginx and back, stack-down:
// HAProxy runs the shipped configs on port 80, and nothing is left.
func TestHAProxyStackMakeTargets(t *testing.T) {
	if !inNamespace(t, "nginx", "haproxy") {
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
	hap := "BALANCER=haproxy"
	conf := filepath.Join(runDir, "haproxy", "haproxy.cfg")
	sameAsShipped := func(name string) {
		t.Helper()
		got, _ := os.ReadFile(conf)
		want, _ := os.ReadFile(hapConf(name))
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("haproxy runs %s, which is not the shipped %s", conf, name)
		}
	}

	out := ngxMustMake(t, bin, runDir, "stack-b", hap)
	if !strings.Contains(out, "topology B is up (haproxy on port 80)") {
		t.Errorf("make stack-b BALANCER=haproxy output lacks the haproxy line:\n%s", out)
	}
	sameAsShipped("topology-b.cfg")
	out = ngxMustMake(t, bin, runDir, "demo", hap)
	if m := regexp.MustCompile(`(?m)^\s+(808[2-5])\s+100$`).FindAllString(out, -1); len(m) != 4 || !strings.Contains(out, "failed  0") {
		t.Errorf("make demo BALANCER=haproxy: want 100 from each of 8082-8085 and 0 failed:\n%s", out)
	}
	out = ngxMustMake(t, bin, runDir, "stack-status")
	if !regexp.MustCompile(`haproxy :80  master pid \d+, workers: \d+`).MatchString(out) || strings.Contains(out, "NOT RUNNING") {
		t.Errorf("make stack-status does not show HAProxy and its worker running:\n%s", out)
	}
	master := strings.TrimSpace(readFile(t, filepath.Join(runDir, "haproxy", "haproxy.pid")))

	out = ngxMustMake(t, bin, runDir, "stack-a", hap)
	if !strings.Contains(out, "reloaded with deploy/haproxy/topology-a.cfg") {
		t.Errorf("make stack-a BALANCER=haproxy after B did not reload HAProxy:\n%s", out)
	}
	sameAsShipped("topology-a.cfg")
	if got := strings.TrimSpace(readFile(t, filepath.Join(runDir, "haproxy", "haproxy.pid"))); got != master {
		t.Errorf("HAProxy's master changed from %s to %s on a reload", master, got)
	}
	if got := ngxPortOf("http://127.0.0.1/api/randoms?cant=10"); got != "8081" {
		t.Errorf("after make stack-a BALANCER=haproxy, /api/randoms answered by %q, want 8081", got)
	}

	// To nginx and back: the other balancer is stopped first.
	ngxMustMake(t, bin, runDir, "stack-a")
	if left := walkProcs(`(^|/)haproxy `); len(left) != 0 {
		t.Errorf("HAProxy still runs after make stack-a with nginx: %v", left)
	}
	ngxMustMake(t, bin, runDir, "stack-a", hap)
	if left := walkProcs(`^nginx: `); len(left) != 0 {
		t.Errorf("nginx still runs after make stack-a BALANCER=haproxy: %v", left)
	}
	if out, err := ngxMake(t, bin, runDir, "stack-a", "BALANCER=haproxy;true"); err == nil || !strings.Contains(out, "unknown BALANCER 'haproxy;true': valid values are nginx, haproxy") {
		t.Errorf("make stack-a BALANCER='haproxy;true': err %v, want a refusal:\n%s", err, out)
	}

	ngxMustMake(t, bin, runDir, "stack-down")
	Eventually(t, 15*time.Second, "no haproxy, nginx or lbserver left after make stack-down", func() bool {
		return len(walkProcs(`(^|/)haproxy |^nginx: |(^|/)lbserver( |$)`)) == 0
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
