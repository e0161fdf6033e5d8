package e2e

// What the tutorial (docs/TUTORIAL.md and its Spanish twin
// docs/PRIMEROS-PASOS.md) says the reader will see, checked by TestDocWalk
// after the block that shows it.

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// exported is the value of an environment variable a walked block exported
// (the walk keeps `export -p` of the last block), or "".
func (w *walker) exported(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(w.state)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^declare -x ` + regexp.QuoteMeta(name) + `="([^"]*)"$`).FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// workerLines are the lines of `ps -o pid,ppid,args` output whose parent is
// the master and that run lbserver on port 8091.
func workerLines(out string, master string) []string {
	var ws []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == master && strings.Contains(line, "lbserver --port 8091") {
			ws = append(ws, f[0])
		}
	}
	return ws
}

func tutorialChecks(file string) []walkCheck {
	master := func(t *testing.T, w *walker) string {
		t.Helper()
		m := w.exported(t, "MASTER")
		if _, err := strconv.Atoi(m); err != nil {
			t.Fatalf("the tutorial's MASTER is %q, not a pid", m)
		}
		return m
	}
	var before []string // the workers before the kill, then before the reload
	return []walkCheck{
		{file, "./bin/lbserver --version", func(t *testing.T, w *walker, out string) {
			if !strings.HasPrefix(out, "lbserver build ") {
				t.Errorf("--version printed %q, want a line starting \"lbserver build \"", out)
			}
		}},
		{file, "curl -s localhost:8090/api/info", func(t *testing.T, w *walker, out string) {
			for _, want := range []string{`"mode":"FORK"`, `"workerId":0`, `"port":8090`, `"pid":` + w.exported(t, "FORK_PID") + ","} {
				if !strings.Contains(out, want) {
					t.Errorf("/api/info lacks %s:\n%s", want, out)
				}
			}
		}},
		{file, "--mode CLUSTER --workers 2 > run/cluster.log", func(t *testing.T, w *walker, out string) {
			m := master(t, w)
			if !regexp.MustCompile(`(?m)^\s*` + m + `\s+\d+\s+\./bin/lbserver --port 8091`).MatchString(out) {
				t.Errorf("ps does not list the master %s:\n%s", m, out)
			}
			if before = workerLines(out, m); len(before) != 2 {
				t.Errorf("ps lists %d workers of master %s, want 2:\n%s", len(before), m, out)
			}
		}},
		{file, "sort | uniq -c", func(t *testing.T, w *walker, out string) {
			pids := regexp.MustCompile(`"pid":(\d+)`).FindAllStringSubmatch(out, -1)
			if len(pids) == 0 {
				t.Fatalf("no pid counted:\n%s", out)
			}
			for _, p := range pids {
				if p[1] == master(t, w) {
					t.Errorf("the master (%s) answered a request:\n%s", p[1], out)
				}
			}
		}},
		{file, `kill -KILL "$victim"`, func(t *testing.T, w *walker, out string) {
			now := workerLines(out, master(t, w))
			if len(now) != 2 {
				t.Fatalf("after the kill ps lists %d workers, want 2:\n%s", len(now), out)
			}
			kept := 0
			for _, p := range now {
				for _, b := range before {
					if p == b {
						kept++
					}
				}
			}
			if kept != 1 {
				t.Errorf("workers %v before the kill, %v after: want one of them kept and one new", before, now)
			}
			if !strings.Contains(out, "reason=crashed") {
				t.Errorf("the log has no worker exit with reason=crashed:\n%s", out)
			}
			before = now
		}},
		{file, "localhost:8091/balance", func(t *testing.T, w *walker, out string) {
			if strings.TrimSpace(out) != "200" {
				t.Errorf("/balance answered %q, want 200", out)
			}
		}},
		{file, `./bin/lbserver reload "$MASTER"`, func(t *testing.T, w *walker, out string) {
			if !strings.Contains(out, "rolling reload finished, every worker replaced") {
				t.Errorf("lbserver reload did not say it finished:\n%s", out)
			}
			now := workerLines(out, master(t, w))
			if len(now) != 2 {
				t.Fatalf("after the reload ps lists %d workers, want 2:\n%s", len(now), out)
			}
			for _, p := range now {
				for _, b := range before {
					if p == b {
						t.Errorf("worker %s survived the reload (before %v, after %v)", p, before, now)
					}
				}
			}
		}},
		{file, `kill -TERM "$MASTER"`, func(t *testing.T, w *walker, out string) {
			if !strings.Contains(out, `msg="master stopped"`) {
				t.Errorf("the log's last line is not the master's stop:\n%s", out)
			}
			nothingLeft(t, "the tutorial's stop")
		}},
	}
}

// troubleshootingChecks: the messages docs/TROUBLESHOOTING.md (or its
// Spanish twin, f) quotes are the ones the walk's runs print.
func troubleshootingChecks(f string) []walkCheck {
	return []walkCheck{
		{f, "export FIRST_PID=$!", func(t *testing.T, w *walker, out string) {
			want := "lbserver: listen on :8090: listen tcp :8090: bind: address already in use (the port is in use by another process (see: ss -ltnp); stop it or choose another port with --port)"
			if !strings.Contains(out, want) {
				t.Errorf("the second lbserver did not say\n%s\noutput:\n%s", want, out)
			}
		}},
		{f, "ss -ltnp 'sport = :8090'", func(t *testing.T, w *walker, out string) {
			if want := `("lbserver",pid=` + w.exported(t, "FIRST_PID") + ","; !strings.Contains(out, want) {
				t.Errorf("ss does not name the first lbserver (%s):\n%s", want, out)
			}
		}},
		{f, "http://127.0.0.1/info", func(t *testing.T, w *walker, out string) {
			for _, want := range []string{"502\n", "connect() failed (111: Connection refused) while connecting to upstream"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		}},
	}
}
