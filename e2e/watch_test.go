package e2e

// lbserver's own watch mode, from the outside: the master watches its
// executable (and, with --watch-dir/--build, the sources), and replaces the
// workers with no failed request while a client loop runs.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pmLoop is a bounded client loop (at most 90 s and 30000 requests) against
// one URL; every request opens a new connection.
type pmLoop struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	stop       func() // stops the loop and waits for it
}

func pmStartLoop(url string) *pmLoop {
	l := &pmLoop{}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 30000 && ctx.Err() == nil; i++ {
			r, err := Get(url)
			if ctx.Err() != nil {
				return
			}
			if err != nil || r.Status != 200 {
				l.failed.Add(1)
				l.firstErr.CompareAndSwap(nil, fmt.Sprintf("err=%v status=%d", err, r.Status))
				continue
			}
			l.ok.Add(1)
		}
	})
	l.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	return l
}

// waitMore waits until the loop has n more successes than now.
func (l *pmLoop) waitMore(tb testing.TB, n int64) {
	tb.Helper()
	base := l.ok.Load()
	Eventually(tb, 30*time.Second, "the client loop goes on", func() bool { return l.ok.Load() >= base+n })
}

func (l *pmLoop) check(tb testing.TB) {
	tb.Helper()
	l.stop()
	tb.Logf("client loop: %d ok, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n > 0 {
		tb.Errorf("%d requests failed during the reload (first: %v)", n, l.firstErr.Load())
	}
}

func pmDisjoint(a, b []int) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return false
			}
		}
	}
	return true
}

// TestWatchForkReplacesWorkerWhenBinaryChanges: `lbserver --mode FORK
// --watch` is a master and one worker; a `go build` over the executable
// replaces the worker (the master stays), the new build is served, and no
// request fails meanwhile.
func TestWatchForkReplacesWorkerWhenBinaryChanges(t *testing.T) {
	_, bin := pmStage(t)
	port := FreePort(t)
	p := StartCmd(t, exec.Command(bin, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "FORK", "--watch"))
	WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
	var workers []int
	Eventually(t, 10*time.Second, "one worker under the master", func() bool {
		workers = ChildPids(p.Pid())
		return len(workers) == 1
	})
	in, err := pmGetInfo(port)
	if err != nil || in.Pid != workers[0] || in.Ppid != p.Pid() || in.Mode != "FORK" {
		t.Fatalf("/api/info %+v (%v): want FORK served by worker %d of master %d", in, err, workers[0], p.Pid())
	}

	loop := pmStartLoop(fmt.Sprintf("http://127.0.0.1:%d/api/info", port))
	defer loop.stop()
	loop.waitMore(t, 20)
	pmRebuild(t, bin, "watch-fork")
	build2 := pmBuildOf(t, bin)
	Eventually(t, 60*time.Second, "a new worker serving "+build2, func() bool {
		now := ChildPids(p.Pid())
		if len(now) != 1 || !pmDisjoint(now, workers) {
			return false
		}
		ok, _ := pmAllServe(port, now, build2, 20)
		return ok
	})
	loop.waitMore(t, 20)
	loop.check(t)

	StopAndCheck(t, p, ChildPids(p.Pid()), 20*time.Second)
}

// TestWatchDirBuildReloadsFromSources: in a copy of the repository,
// `lbserver --mode CLUSTER --watch --watch-dir internal --watch-dir cmd
// --build "go build ..."` rebuilds itself when a template changes and rolls
// the new code into every worker with no failed request; a change that does
// not compile leaves the running workers serving; fixing it reloads again.
func TestWatchDirBuildReloadsFromSources(t *testing.T) {
	dir := pmCopyRepo(t)
	bin := filepath.Join(dir, "bin", "lbserver")
	build := exec.CommandContext(cmdCtx(t, 5*time.Minute), "go", "build", "-o", "bin/lbserver", "./cmd/lbserver")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in the copy: %v\n%s", err, out)
	}
	port := FreePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "CLUSTER", "--workers", "2",
		"--watch", "--watch-dir", "internal", "--watch-dir", "cmd", "--build", "go build -o bin/lbserver ./cmd/lbserver")
	cmd.Dir = dir
	p := StartCmd(t, cmd)
	WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second)
	var workers []int
	Eventually(t, 10*time.Second, "2 workers", func() bool { workers = ChildPids(p.Pid()); return len(workers) == 2 })
	build1 := pmBuildOf(t, bin)

	loop := pmStartLoop(fmt.Sprintf("http://127.0.0.1:%d/api/info", port))
	defer loop.stop()
	loop.waitMore(t, 20)

	// 1. A template edit: rebuilt, rolled into every worker.
	marker := fmt.Sprintf("watch-dir-edit-%d", time.Now().UnixNano())
	pmEdit(t, dir, "internal/server/home.html", "</body>", "<p>"+marker+"</p>\n</body>")
	var workers2 []int
	var build2 string
	Eventually(t, 4*time.Minute, "every worker replaced and serving the edited page", func() bool {
		workers2 = ChildPids(p.Pid())
		if len(workers2) != 2 || !pmDisjoint(workers2, workers) {
			return false
		}
		in, err := pmGetInfo(port)
		if err != nil || in.Build == build1 {
			return false
		}
		build2 = in.Build
		ok, _ := pmAllServe(port, workers2, build2, 20)
		return ok
	})
	for range 10 {
		r := MustGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
		if !strings.Contains(string(r.Body), marker) {
			t.Fatalf("GET / from pid %s lacks the edit %q", r.Header.Get("X-Server-Pid"), marker)
		}
	}

	// 2. A change that does not compile: the build fails, the workers stay.
	broken := filepath.Join(dir, "cmd", "lbserver", "zz_broken.go")
	if err := os.WriteFile(broken, []byte("package main\n\nfunc broken( {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 4*time.Minute, "the master logs the failed build", func() bool {
		return strings.Contains(p.Output.String(), "build failed")
	})
	if now := ChildPids(p.Pid()); !pmEqualSets(now, workers2) {
		t.Fatalf("workers after a failed build: %v, want the same %v", now, workers2)
	}
	if ok, seen := pmAllServe(port, workers2, build2, 50); !ok {
		t.Fatalf("after a failed build: %s", seen)
	}

	// 3. Fixed: the build passes and the workers are replaced again.
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 4*time.Minute, "workers replaced after the fix", func() bool {
		now := ChildPids(p.Pid())
		if len(now) != 2 || !pmDisjoint(now, workers2) {
			return false
		}
		ok, _ := pmAllServe(port, now, pmBuildOf(t, bin), 20)
		return ok
	})
	loop.waitMore(t, 20)
	loop.check(t)
	if !Alive(p.Pid()) {
		t.Fatal("the master is gone; it should have stayed through every reload")
	}
}
