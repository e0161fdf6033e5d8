package e2e

// systemd: the units in deploy/systemd/ are checked with `systemd-analyze
// verify` (and `security --offline`), and their command lines and signals are
// exercised against the real binary. systemd itself is not PID 1 in this
// container (and in CI), so the units are not started by systemd here: what
// systemd would run (ExecStartPre, ExecStart, KillSignal, ExecReload) is run
// by the test instead, with the port moved to a free one.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitBin is where the units expect the binary.
const unitBin = "/usr/local/bin/lbserver"

// sdUnit is a parsed unit file: [Section] -> key -> values (in order).
type sdUnit map[string]map[string][]string

func sdParse(tb testing.TB, path string) sdUnit {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	u := sdUnit{}
	sec := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			sec = line[1 : len(line)-1]
			u[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				tb.Fatalf("%s: cannot parse %q", path, line)
			}
			u[sec][k] = append(u[sec][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return u
}

// one returns the single value of key in [Service].
func (u sdUnit) one(tb testing.TB, key string) string {
	tb.Helper()
	v := u["Service"][key]
	if len(v) != 1 {
		tb.Fatalf("[Service] %s: %d values %q, want 1", key, len(v), v)
	}
	return v[0]
}

// sdCommand turns an Exec line into argv for the binary under test: the
// instance name replaces %i, the tested port replaces the unit's port.
func sdCommand(tb testing.TB, line, instance string, port int, unitPort string) []string {
	tb.Helper()
	line = strings.ReplaceAll(line, "%i", instance)
	argv := strings.Fields(line)
	if len(argv) == 0 || argv[0] != unitBin {
		tb.Fatalf("command %q does not run %s", line, unitBin)
	}
	argv[0] = binPath
	for i := 1; i+1 < len(argv); i++ {
		if argv[i] == "--port" && argv[i+1] == unitPort {
			argv[i+1] = strconv.Itoa(port)
		}
	}
	return argv
}

// sdSeconds parses a TimeoutStopSec such as "30s" or "30".
func sdSeconds(tb testing.TB, v string) time.Duration {
	tb.Helper()
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		tb.Fatalf("TimeoutStopSec=%s: %v", v, err)
	}
	return d
}

func sdUnitPath(name string) string {
	return filepath.Join(repoRoot(), "deploy", "systemd", name)
}

// TestSystemdUnitsVerify runs `systemd-analyze verify` on the units (with
// only the binary's path changed to the binary under test, since verify
// checks that ExecStart's program exists), then `security --offline`.
func TestSystemdUnitsVerify(t *testing.T) {
	sa := requireTool(t, "systemd-analyze")
	dir := t.TempDir()
	for _, name := range []string{"lbserver@.service", "lbserver@.socket", "lbserver-cluster.service", "lbserver-cluster.socket"} {
		b, err := os.ReadFile(sdUnitPath(name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".service") && !strings.Contains(string(b), unitBin) {
			t.Fatalf("%s does not run %s", name, unitBin)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(string(b), unitBin, binPath)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	units := []string{filepath.Join(dir, "lbserver@8082.service"), filepath.Join(dir, "lbserver-cluster.service")}
	out, err := exec.Command(sa, append([]string{"verify", filepath.Join(dir, "lbserver@8082.socket"), filepath.Join(dir, "lbserver-cluster.socket")}, units...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on mere warnings (unknown keys, bad values): none may name our units.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, "lbserver") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	for _, u := range units {
		out, err := exec.Command(sa, "security", "--offline=true", u).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze security --offline %s: %v\n%s", filepath.Base(u), err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		last := lines[len(lines)-1]
		t.Logf("%s", last)
		// "→ Overall exposure level for X: 1.2 OK 🙂": OK is systemd's best band.
		if !strings.Contains(last, " OK ") {
			t.Errorf("exposure of %s is not in systemd's OK band: %s", filepath.Base(u), last)
		}
	}
}

// TestSystemdForkUnitCommands runs what systemd would run for
// lbserver@PORT.service: ExecStartPre (--check) passes, ExecStart serves on
// the instance's port, and KillSignal makes it drain and exit 0 well within
// TimeoutStopSec.
func TestSystemdForkUnitCommands(t *testing.T) {
	u := sdParse(t, sdUnitPath("lbserver@.service"))
	port := FreePort(t)
	inst := strconv.Itoa(port)
	for _, k := range []string{"Restart", "KillMode", "KillSignal"} {
		t.Logf("%s=%s", k, u.one(t, k))
	}
	if u.one(t, "Restart") != "on-failure" || u.one(t, "KillMode") != "mixed" || u.one(t, "KillSignal") != "SIGTERM" {
		t.Errorf("want Restart=on-failure KillMode=mixed KillSignal=SIGTERM")
	}
	pre := sdCommand(t, u.one(t, "ExecStartPre"), inst, port, inst)
	out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("mode=FORK addr=127.0.0.1:%d", port)) {
		t.Fatalf("ExecStartPre %v: %v\n%s", pre[1:], err, out)
	}
	argv := sdCommand(t, u.one(t, "ExecStart"), inst, port, inst)
	p := StartCmd(t, exec.Command(argv[0], argv[1:]...))
	WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
	if in, err := pmGetInfo(port); err != nil || in.Pid != p.Pid() || in.Mode != "FORK" {
		t.Fatalf("instance %s: /api/info %+v %v, want FORK pid %d", inst, in, err, p.Pid())
	}
	stop := sdSeconds(t, u.one(t, "TimeoutStopSec"))
	if stop <= 10*time.Second {
		t.Errorf("TimeoutStopSec=%s must exceed the default --drain-timeout 10s", stop)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.Wait(stop) {
		t.Fatalf("lbserver did not exit within TimeoutStopSec=%s of SIGTERM", stop)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0 (Restart=on-failure must not restart a clean stop)", err)
	}
}

// TestSystemdClusterUnitCommands runs what systemd would run for
// lbserver-cluster.service: ExecStart starts a master and its workers,
// ExecReload (`lbserver reload $MAINPID`) returns only once every worker has
// been replaced, and KillSignal to the master alone (KillMode=mixed) stops
// the workers too, within TimeoutStopSec.
func TestSystemdClusterUnitCommands(t *testing.T) {
	u := sdParse(t, sdUnitPath("lbserver-cluster.service"))
	port := FreePort(t)
	if u.one(t, "Type") != "notify" || u.one(t, "KillMode") != "mixed" || u.one(t, "KillSignal") != "SIGTERM" {
		t.Errorf("want Type=notify KillMode=mixed KillSignal=SIGTERM")
	}
	pre := sdCommand(t, u.one(t, "ExecStartPre"), "", port, "8081")
	if out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), fmt.Sprintf("mode=CLUSTER addr=127.0.0.1:%d", port)) {
		t.Fatalf("ExecStartPre %v: %v\n%s", pre[1:], err, out)
	}
	argv := sdCommand(t, u.one(t, "ExecStart"), "", port, "8081")
	argv = append(argv, "--workers", "2") // the unit uses one worker per CPU; 2 keeps the test small
	p := StartCmd(t, exec.Command(argv[0], argv[1:]...))
	WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
	var workers []int
	Eventually(t, 20*time.Second, "2 workers", func() bool { workers = ChildPids(p.Pid()); return len(workers) == 2 })

	// systemctl reload = ExecReload: it returns once every worker is replaced.
	reload := sdCommand(t, strings.ReplaceAll(u.one(t, "ExecReload"), "$MAINPID", strconv.Itoa(p.Pid())), "", port, "8081")
	if out, err := exec.Command(reload[0], reload[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %v: %v\n%s", reload[1:], err, out)
	}
	now := ChildPids(p.Pid())
	if len(now) != 2 || slices.ContainsFunc(now, func(w int) bool { return slices.Contains(workers, w) }) {
		t.Fatalf("workers when ExecReload returned: %v, want 2 new ones (were %v)", now, workers)
	}
	if ok, seen := pmAllServe(port, now, pmBuildOf(t, binPath), 200); !ok {
		t.Fatalf("after reload: %s", seen)
	}

	// systemctl stop with KillMode=mixed: SIGTERM to the master only.
	stop := sdSeconds(t, u.one(t, "TimeoutStopSec"))
	if stop <= 15*time.Second {
		t.Errorf("TimeoutStopSec=%s must exceed the master's stop time (--drain-timeout 10s + 5s)", stop)
	}
	StopAndCheck(t, p, now, stop)
}
