package e2e

// Nothing a test run starts outlives it, however the run ends: a passing
// run, a failing one, a -timeout panic (no t.Cleanup runs), Ctrl-C, or a
// SIGKILL of the go command or of the test binary.
//
// The test binary runs twice. The outer copy (what `go test` starts) is a
// child subreaper (prctl PR_SET_CHILD_SUBREAPER): every process the run
// starts and then orphans (a CLUSTER worker whose master was killed, a
// daemonized PM2, nginx's workers) is re-parented to it instead of to init.
// It runs the tests in an inner copy of itself and, when the inner copy
// exits for any reason, kills every process still below it. It forwards
// the signals it gets to the inner copy, and asks the kernel for a SIGTERM
// when the go command dies (PR_SET_PDEATHSIG), so that a SIGKILLed
// `go test` still ends in this clean-up.
//
// If the outer copy itself is SIGKILLed, the kernel kills the inner copy
// (its parent-death signal), and the inner copy's children die with it:
// StartCmd starts every process with a parent-death SIGKILL, from one OS
// thread that never exits (the signal is tied to the thread that forked, not
// to the process). What those children started (a CLUSTER master's
// workers, an unshare's namespace) then ends by its own design: workers see
// their lifeline close, `unshare --kill-child` kills its child. The build
// folder of a SIGKILLed outer copy is removed by the next run.

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// reaperEnv marks the inner copy of the test binary.
const reaperEnv = "LBSERVER_E2E_INNER"

const (
	prSetPdeathsig      = 1
	prSetChildSubreaper = 36
)

// superviseRun is the outer copy: it runs the tests in an inner copy and
// returns its exit code once nothing the run started is left. ok is false
// in the inner copy (the caller then runs the tests itself).
func superviseRun() (code int, ok bool) {
	if os.Getenv(reaperEnv) != "" {
		return 0, false
	}
	// The inner copy's parent-death signal is tied to this thread.
	runtime.LockOSThread()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		fmt.Fprintf(os.Stderr, "e2e: cannot become a subreaper (%v); running without the leftover backstop\n", e)
		return 0, false
	}
	parent := os.Getppid()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetPdeathsig, uintptr(syscall.SIGTERM), 0)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	// With the go command gone, stdout is a broken pipe: a write must fail,
	// not kill this process before it has cleaned up (Go dies of SIGPIPE on
	// fds 1 and 2 unless the signal is handled). Handled, not ignored: an
	// ignored signal would stay ignored in the processes started below.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	if os.Getppid() != parent { // the go command died before the prctl
		return 1, true
	}
	// The binary under test is built here, so that its folder is removed
	// however the inner copy ends.
	env := append(os.Environ(), reaperEnv+"=1")
	if os.Getenv("LBSERVER_BIN") == "" {
		removeStaleBuilds()
		dir, err := os.MkdirTemp("", fmt.Sprintf("lbserver-e2e-%d-", os.Getpid()))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1, true
		}
		defer os.RemoveAll(dir)
		bin := dir + "/lbserver"
		if err := buildBinary(bin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1, true
		}
		env = append(env, "LBSERVER_BIN="+bin)
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start the tests: %v\n", err)
		return 1, true
	}
	inner := cmd.Process.Pid
	go func() {
		for s := range sigs {
			_ = syscall.Kill(inner, s.(syscall.Signal))
		}
	}()
	// Reap everything re-parented to us until the inner copy exits.
	code = 1
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			break
		}
		if pid == inner {
			switch {
			case ws.Exited():
				code = ws.ExitStatus()
			case ws.Signaled():
				fmt.Fprintf(os.Stderr, "e2e: the test binary was killed by %v\n", ws.Signal())
				code = 128 + int(ws.Signal())
			}
			break
		}
	}
	left := reapAll()
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: killed %d process(es) the run left behind: %s\n", len(left), strings.Join(left, ", "))
		if code == 0 {
			fmt.Fprintln(os.Stderr, "FAIL: a test left processes running (every process a test starts must be killed by its cleanup)")
			code = 1
		}
	}
	return code, true
}

// removeStaleBuilds removes the build folders of earlier runs whose outer
// copy is gone (a SIGKILLed run cannot remove its own).
func removeStaleBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "lbserver-e2e-*-*"))
	for _, d := range dirs {
		f := strings.Split(filepath.Base(d), "-")
		if len(f) != 4 {
			continue
		}
		if pid, err := strconv.Atoi(f[2]); err == nil && pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}

// reapAll gives the processes below this one two seconds to exit by
// themselves (a worker finishing its drain), then SIGKILLs the rest and
// reaps them. It returns those it had to kill, as "pid (comm)".
func reapAll() []string {
	self := os.Getpid()
	deadline := time.Now().Add(2 * time.Second)
	var killed []string
	for {
		reapZombies()
		below := descendants(self)
		if len(below) == 0 {
			return killed
		}
		if time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		for _, pid := range below {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed = append(killed, fmt.Sprintf("%d (%s)", pid, commOf(pid)))
			}
		}
		time.Sleep(20 * time.Millisecond)
		if time.Since(deadline) > 10*time.Second {
			return killed
		}
	}
}

// reapZombies collects every exited child without blocking.
func reapZombies() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// descendants lists the live (not zombie) processes below root.
func descendants(root int) []int {
	kids := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ParentPid(pid); pp != 0 {
			kids[pp] = append(kids[pp], pid)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range kids[p] {
			queue = append(queue, k)
			if Alive(k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

func commOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// starter runs every StartCmd fork on one locked OS thread that never
// exits, so that the children's parent-death signal fires only when the
// test process dies.
var (
	starterOnce sync.Once
	starts      chan func()
)

// startTied starts cmd with a parent-death SIGKILL tied to this process.
func startTied(cmd *exec.Cmd) error {
	starterOnce.Do(func() {
		starts = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for f := range starts {
				f()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	starts <- func() { errc <- cmd.Start() }
	return <-errc
}
