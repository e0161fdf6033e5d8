package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSystemdNspawnClusterUpgrade: lbserver-cluster.service (Type=notify,
// NotifyAccess=all, ExitType=cgroup, hardened) upgrades its master under a real systemd
// with nginx's signal, `systemctl kill -s USR2 --kill-who=main`, to a new
// executable under 16 connection-per-request clients: no request fails,
// `systemctl status` names the new master as the main PID with its STATUS
// line, the old master and its workers are gone, the unit stays active
// without a warning from systemd, and reload and stop work on the new
// master: the stop lets it drain (no SIGKILL), which needs the new master
// to be systemd's child when it names itself.
func TestSystemdNspawnClusterUpgrade(t *testing.T) {
	began := time.Now()
	c := sdBoot(t)
	c.install()
	const unit = "lbserver-cluster.service"
	c.must("start", unit)
	n := c.sdClusterWorkers(unit)
	oldMain := c.show(unit, "MainPID")
	before := c.hostPids(unit)
	if len(before) != n+1 {
		t.Fatalf("processes of %s after start: %v, want a master and %d workers", unit, before, n)
	}
	load := relStartLoad(t, relLoadOpts{URL: "http://127.0.0.1:8081/api/info", PerRequest: 16, MaxTime: 2 * time.Minute, Dial: c.dial})
	ok := load.Snapshot().OK
	Eventually(t, 30*time.Second, "200 answers", func() bool { return load.Snapshot().OK >= ok+200 })

	// A new executable at the unit's path, as a deploy installs it.
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	newBin := append(slices.Clip(bin), "\nupgraded\n"...)
	dst := filepath.Join(fmt.Sprintf("/proc/%d/root", c.leader), unitBin)
	relReplaceFile(t, dst, newBin)

	start := time.Now()
	c.must("kill", "-s", "USR2", "--kill-who=main", unit)
	var newMain string
	Eventually(t, 60*time.Second, "systemd's MainPID to change", func() bool {
		newMain = c.show(unit, "MainPID")
		return newMain != oldMain && newMain != "0"
	})
	handover := time.Since(start)
	Eventually(t, 60*time.Second, "the old generation gone", func() bool {
		return !slices.ContainsFunc(before, Alive)
	})
	gone := time.Since(start)
	after := c.hostPids(unit)
	if len(after) != n+1 {
		t.Errorf("processes of %s after the upgrade: %v, want a master and %d workers", unit, after, n)
	}
	if got := c.show(unit, "ActiveState"); got != "active" {
		t.Errorf("ActiveState after the upgrade: %s, want active", got)
	}
	status, _ := c.systemctl("status", unit)
	if !regexp.MustCompile(`Main PID: ` + newMain + ` \(lbserver\)`).MatchString(status) {
		t.Errorf("systemctl status does not name the new master %s as Main PID:\n%s", newMain, status)
	}
	if got, want := c.status(unit), fmt.Sprintf(`"%d of %d workers ready; upgraded from master %s"`, n, n, oldMain); got != want {
		t.Errorf("status after the upgrade: %s, want %s", got, want)
	}
	// Every answer now comes from a worker of the new master, with the new build.
	for range 2 * n {
		in, err := c.info(8081)
		if err != nil {
			t.Fatalf("/api/info after the upgrade: %v", err)
		}
		if strconv.Itoa(in.Ppid) != newMain {
			t.Errorf("/api/info answered by pid %d of master %d, want a worker of the new master %s", in.Pid, in.Ppid, newMain)
		}
	}
	ok = load.Snapshot().OK
	Eventually(t, 30*time.Second, "200 more answers", func() bool { return load.Snapshot().OK >= ok+200 })
	res := load.Stop()
	t.Logf("upgrade under systemd: MainPID %s -> %s after %v, old generation gone after %v; %s",
		oldMain, newMain, handover.Round(time.Millisecond), gone.Round(time.Millisecond), res)
	t.Logf("systemctl status after the upgrade:\n%s", status)
	relAssertNoLoss(t, res)

	// The new master is the unit's: reload ($MAINPID) and stop reach it.
	c.must("reload", unit)
	c.must("stop", unit)
	j := c.journal(unit)
	if !strings.Contains(j, unit+": Deactivated successfully.") || strings.Contains(j, "Failed with result") {
		t.Errorf("systemctl stop after the upgrade did not end cleanly:\n%s", j)
	}
	all := c.journal("")
	for _, bad := range []string{"reception only permitted for main PID", "does not belong to service", "not our child",
		"with signal SIGKILL", "level=ERROR"} {
		if strings.Contains(all, bad) {
			t.Errorf("the journal has %q:\n%s", bad, all)
		}
	}
	t.Logf("whole test took %v", time.Since(began).Round(time.Millisecond))
}
