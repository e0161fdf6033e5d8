package e2e

// The CLUSTER master upgrades itself (nginx's USR2 binary upgrade): a new
// master on the same sockets, then the old one drains and exits; a new
// master that fails is stopped and the old one serves on.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upInfo is what the tests read of /api/info.
type upInfo struct {
	Pid   int    `json:"pid"`
	Ppid  int    `json:"ppid"` // a worker's master
	Build string `json:"build"`
}

func upGetInfo(tb testing.TB, base string) upInfo {
	tb.Helper()
	var in upInfo
	if err := json.Unmarshal(MustGet(tb, base+"/api/info").Body, &in); err != nil {
		tb.Fatal(err)
	}
	return in
}

// upBuildOf is the build id lbserver reports for an executable of content b.
func upBuildOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])[:12]
}

var upNewPidRE = regexp.MustCompile(`new master (\d+) serves`)

// upUpgrade runs `lbserver upgrade PID` (with the binary under test: the
// served path may hold anything) and returns its output and error.
func upUpgrade(tb testing.TB, pid int) (string, error) {
	tb.Helper()
	out, err := exec.CommandContext(cmdCtx(tb, 60*time.Second), binPath, "upgrade", strconv.Itoa(pid)).CombinedOutput()
	return string(out), err
}

// upWaitGone waits until none of pids is alive.
func upWaitGone(tb testing.TB, pids []int, what string) {
	tb.Helper()
	Eventually(tb, 30*time.Second, what, func() bool {
		return !slices.ContainsFunc(pids, Alive)
	})
}

// upTimeline picks the lines of the masters' logs that make an upgrade's
// timeline (for the test log).
func upTimeline(log string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "role=master") && (strings.Contains(line, "upgrade") || strings.Contains(line, `msg="worker ready"`) ||
			strings.Contains(line, `msg="worker exited"`) || strings.Contains(line, `msg="master stopped"`) || strings.Contains(line, `msg="all workers ready"`)) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestUpgradeUnderLoad: 5 upgrades in a row (`lbserver upgrade PID`, each
// to a new executable at the same path) under 16 clients that open a new
// connection per request: no request fails, no connection is refused,
// after each one the new build answers from workers of the new master, and
// no process of the old generation is left.
func TestUpgradeUnderLoad(t *testing.T) {
	const upgrades = 5
	dir := t.TempDir()
	exe := relCopyBin(t, dir)
	orig, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	// --master-metrics: the new master binds the old one's metrics address too.
	metrics := "http://127.0.0.1:" + strconv.Itoa(FreePort(t)) + "/metrics"
	p, base := startClusterBin(t, exe, 2, "--master-metrics", strings.TrimSuffix(strings.TrimPrefix(metrics, "http://"), "/metrics"))
	master := p.Pid()
	gen := append(relWaitWorkers(t, p, 2), master)
	var old []int // every process of every old generation
	load := relStartLoad(t, relLoadOpts{URL: base + relLight, PerRequest: 16, MaxTime: 3 * time.Minute})
	start := time.Now()
	for i := range upgrades {
		content := append(slices.Clip(orig), []byte(fmt.Sprintf("\nupgrade %d\n", i+1))...)
		relReplaceFile(t, exe, content)
		t0 := time.Now()
		out, err := upUpgrade(t, master)
		if err != nil {
			t.Fatalf("upgrade %d of master %d: %v\n%s", i+1, master, err, out)
		}
		m := upNewPidRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("upgrade %d: no new master pid in %q", i+1, out)
		}
		next, _ := strconv.Atoi(m[1])
		t.Logf("upgrade %d: master %d -> %d in %s", i+1, master, next, time.Since(t0).Round(time.Millisecond))
		old = append(old, gen...)
		upWaitGone(t, gen, fmt.Sprintf("old master %d and its workers %v gone after upgrade %d", master, gen[:len(gen)-1], i+1))
		if len(ChildPids(next)) != 2 {
			t.Fatalf("new master %d has workers %v, want 2", next, ChildPids(next))
		}
		want := upBuildOf(content)
		for range 4 { // both workers, most likely; every answer must be the new code's
			in := upGetInfo(t, base)
			if in.Build != want || in.Ppid != next {
				t.Fatalf("after upgrade %d /api/info says build %s from a worker of master %d, want build %s of master %d", i+1, in.Build, in.Ppid, want, next)
			}
		}
		master = next
		gen = append(ChildPids(master), master)
		// The master's own metrics now come from the new master: its workers' pids.
		if r := MustGet(t, metrics); r.Status != 200 || !strings.Contains(string(r.Body), fmt.Sprintf(`pid="%d"`, gen[0])) {
			t.Errorf("after upgrade %d the master's metrics answered %d without worker pid %d:\n%s", i+1, r.Status, gen[0], r.Body)
		}
	}
	took := time.Since(start)
	res := load.Stop()
	t.Logf("%d upgrades in %s under 16 connection-per-request clients: %s", upgrades, took.Round(time.Millisecond), res)
	relAssertNoLoss(t, res)
	for _, pid := range old {
		if Alive(pid) {
			t.Errorf("process %d of an old generation is alive", pid)
		}
	}
	logged := p.Output.String()
	t.Logf("timeline of the last upgrade:\n%s", upTimeline(logged[max(0, strings.LastIndex(logged, "upgrade requested by a control command")):]))
	// The last master stops as any master does: its workers drain, it exits, nothing is left.
	if err := syscall.Kill(master, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	upWaitGone(t, gen, "the last generation gone after SIGTERM")
}

// TestUpgradeBrokenBinaryRollsBack: an upgrade to an executable that exits
// at once (`lbserver upgrade PID` fails and says why), then to one that never
// gets ready (SIGUSR2; stopped after the ready timeout), under 16
// connection-per-request clients: no request fails, the old master and its
// workers serve on, the exit reason is in the log, and a second upgrade
// during the first is refused. Then a good executable upgrades as usual.
func TestUpgradeBrokenBinaryRollsBack(t *testing.T) {
	dir := t.TempDir()
	exe := relCopyBin(t, dir)
	good, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	p, base := startClusterBin(t, exe, 2)
	master := p.Pid()
	workers := relWaitWorkers(t, p, 2)
	build := upGetInfo(t, base).Build
	load := relStartLoad(t, relLoadOpts{URL: base + relLight, PerRequest: 16, MaxTime: 3 * time.Minute})

	// 1. Exits at once.
	relReplaceFile(t, exe, []byte("#!/bin/sh\necho 'broken build: cannot start' >&2\nexit 3\n"))
	out, err := upUpgrade(t, master)
	if err == nil || !strings.Contains(out, "upgrade aborted") || !strings.Contains(out, "exit status 3") {
		t.Errorf("upgrade to a binary that exits 3: err=%v output %q, want a failure naming exit status 3", err, out)
	}
	// Its stderr is the master's: the line is in the log, but the copy of
	// the pipe into p.Output may still be on its way when the control
	// command has answered (it failed once in three CI runs).
	relWaitLog(t, p, "broken build: cannot start", 1, 10*time.Second)

	// 2. Never ready: SIGUSR2, and a second request meanwhile is refused.
	relReplaceFile(t, exe, []byte("#!/bin/sh\necho 'hung build: waiting forever' >&2\nexec sleep 600\n"))
	if err := syscall.Kill(master, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	relWaitLog(t, p, "upgrade started: new master starting", 2, 10*time.Second)
	out, err = upUpgrade(t, master)
	if err == nil || !strings.Contains(out, "an upgrade is under way") {
		t.Errorf("second upgrade during one: err=%v output %q, want it refused: an upgrade is under way", err, out)
	}
	relWaitLog(t, p, "not ready within the ready timeout", 1, 40*time.Second)
	relWaitLog(t, p, "upgrade aborted; this master and its workers serve on", 2, 40*time.Second)

	// The old generation serves on, untouched.
	if !Alive(master) || !slices.Equal(relWaitWorkers(t, p, 2), workers) {
		t.Fatalf("after the rollbacks master %d alive=%v with workers %v, want alive with %v", master, Alive(master), ChildPids(master), workers)
	}
	if in := upGetInfo(t, base); in.Build != build || in.Ppid != master {
		t.Errorf("after the rollbacks /api/info says build %s of master %d, want %s of %d", in.Build, in.Ppid, build, master)
	}
	res := load.Snapshot()
	t.Logf("2 failed upgrades under 16 connection-per-request clients: %s", res)
	relAssertNoLoss(t, res)
	for _, line := range strings.Split(p.Output.String(), "\n") {
		if strings.Contains(line, "upgrade aborted;") {
			t.Logf("log: %s", line)
		}
	}

	// 3. A good executable then upgrades as usual.
	fixed := append(slices.Clip(good), "\nfixed\n"...)
	relReplaceFile(t, exe, fixed)
	out, err = upUpgrade(t, master)
	if err != nil {
		t.Fatalf("upgrade to a good binary after the rollbacks: %v\n%s", err, out)
	}
	upWaitGone(t, append(workers, master), "the old generation gone after the good upgrade")
	if in := upGetInfo(t, base); in.Build != upBuildOf(fixed) {
		t.Errorf("after the good upgrade build %s, want %s", in.Build, upBuildOf(fixed))
	}
	res = load.Stop()
	t.Logf("in all: %s", res)
	relAssertNoLoss(t, res)
	m := upNewPidRE.FindStringSubmatch(out)
	if m != nil {
		pid, _ := strconv.Atoi(m[1])
		_ = syscall.Kill(pid, syscall.SIGTERM)
		upWaitGone(t, []int{pid}, "the last master gone after SIGTERM")
	}
}
