package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestClusterMasterSIGKILLLeavesNoFiles: a CLUSTER master killed by SIGKILL
// 20 times (with --master-metrics, so that every worker has its private
// socket) leaves nothing in the temp directory, and its workers, reading EOF
// on their lifeline, drain and exit every time.
func TestClusterMasterSIGKILLLeavesNoFiles(t *testing.T) {
	tmp := t.TempDir()
	for i := range 20 {
		port := FreePort(t)
		cmd := exec.Command(binPath, "--mode", "CLUSTER", "--workers", "2", "--port", strconv.Itoa(port),
			"--master-metrics", "127.0.0.1:"+strconv.Itoa(FreePort(t)))
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		p := StartCmd(t, cmd)
		WaitHTTP(t, p, "http://127.0.0.1:"+strconv.Itoa(port)+"/healthz", 10*time.Second)
		Eventually(t, 10*time.Second, "2 workers", func() bool { return len(ChildPids(p.Pid())) == 2 })
		workers := ChildPids(p.Pid())
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.Wait(10 * time.Second)
		Eventually(t, 20*time.Second, "orphaned workers exit", func() bool {
			for _, w := range workers {
				if Alive(w) {
					return false
				}
			}
			return true
		})
		if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
			t.Fatalf("after SIGKILL %d of the master, the temp directory holds %d entries (%v), want none", i+1, len(ents), err)
		}
	}
}
