package e2e

// examples/hello: the cluster package used by a program that knows nothing
// of lbserver. Four workers answer, a killed one is replaced, a SIGHUP
// reload under 16 concurrent clients loses nothing, SIGTERM leaves nothing.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var helloRE = regexp.MustCompile(`^hello from worker (\d+), pid (\d+)\n$`)

// helloGet asks base once, on a new connection, and returns the answering
// worker's pid.
func helloGet(base string) (int, error) {
	r, err := Get(base + "/")
	if err != nil {
		return 0, err
	}
	m := helloRE.FindSubmatch(r.Body)
	if r.Status != 200 || m == nil {
		return 0, fmt.Errorf("status %d, body %q", r.Status, r.Body)
	}
	return strconv.Atoi(string(m[2]))
}

// helloPids asks until every live worker of p has answered (bounded), and
// returns the pids that answered.
func helloPids(t *testing.T, p *Proc, base string, want int) []int {
	t.Helper()
	seen := map[int]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
		pid, err := helloGet(base)
		if err != nil {
			t.Fatalf("GET %s: %v", base, err)
		}
		seen[pid] = true
		kids := ChildPids(p.Pid())
		if len(kids) == want && len(seen) >= want {
			all := true
			for _, k := range kids {
				all = all && seen[k]
			}
			if all {
				return kids
			}
		}
	}
	t.Fatalf("after 5000 requests or 20s, answers came from %d pids, workers are %v", len(seen), ChildPids(p.Pid()))
	return nil
}

func TestHelloExample(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "hello")
	build := exec.Command("go", "build", "-o", exe, "./examples/hello")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/hello: %v\n%s", err, out)
	}
	port := FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	p := StartCmd(t, exec.Command(exe, "--port", strconv.Itoa(port), "--workers", "4"))
	Eventually(t, 10*time.Second, "hello answers", func() bool { _, err := helloGet(base); return err == nil })

	// Every worker answers, each its own process.
	pids := helloPids(t, p, base, 4)

	// A SIGKILLed worker is replaced, and the replacement answers.
	victim := pids[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "killed worker replaced", func() bool {
		kids := ChildPids(p.Pid())
		return len(kids) == 4 && !slices.Contains(kids, victim)
	})
	after := helloPids(t, p, base, 4)
	if slices.Contains(after, victim) {
		t.Fatalf("killed worker %d still listed: %v", victim, after)
	}

	// SIGHUP under 16 concurrent clients: every worker replaced, no
	// request lost.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := helloGet(base); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		})
	}
	Eventually(t, 10*time.Second, "load running", func() bool { return ok.Load() > 100 })
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 60*time.Second, "rolling reload finished", func() bool {
		return strings.Contains(p.Output.String(), `msg="rolling reload finished"`)
	})
	before := ok.Load()
	Eventually(t, 10*time.Second, "load after the reload", func() bool { return ok.Load() > before+100 })
	close(stop)
	wg.Wait()
	t.Logf("SIGHUP reload under 16 clients: %d answered, %d failed", ok.Load(), failed.Load())
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the reload, want 0 (first: %v)", n, firstErr.Load())
	}
	reloaded := ChildPids(p.Pid())
	for _, pid := range after {
		if slices.Contains(reloaded, pid) {
			t.Errorf("worker %d survived the reload (workers now %v)", pid, reloaded)
		}
	}

	// SIGTERM: exit 0, no worker left.
	StopAndCheck(t, p, reloaded, 30*time.Second)
}
