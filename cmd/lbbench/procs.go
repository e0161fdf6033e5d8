//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process lbbench started, in its own process group so that
// stopping it reaches its children (CLUSTER workers, nginx workers).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *limitedBuffer
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // set before done is closed
}

// startProc starts name with args; its output is kept (the first 64 KiB)
// for error messages.
func startProc(name string, args ...string) (*proc, error) {
	return startProcEnv(nil, name, args...)
}

// startProcEnv is startProc with env added to lbbench's environment.
func startProcEnv(env []string, name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out := &limitedBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(name), err)
	}
	p := &proc{name: filepath.Base(name), cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the group, waits up to grace, then SIGKILLs the
// group, and waits for the process to be reaped.
func (p *proc) stop(grace time.Duration) {
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL) // leftovers in the group too
	<-p.done
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitOK polls url until it answers 200, for at most timeout, and returns
// how long that took from start. Any process in procs exiting is an error.
func waitOK(ctx context.Context, url string, start time.Time, timeout time.Duration, procs []*proc) (time.Duration, error) {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		for _, p := range procs {
			if p.exited() {
				return 0, fmt.Errorf("%s exited while starting: %v\n%s", p.name, p.err, p.out.String())
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not answer 200 within %v (last error: %v)", url, timeout, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// children lists the processes whose parent is pid (what `ps --ppid` shows).
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppidOf(c) == pid {
			out = append(out, c)
		}
	}
	return out
}

// ppidOf reads the parent pid from /proc/<pid>/stat (-1 if it is gone).
func ppidOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name may hold spaces; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return -1
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// treeRSS sums VmRSS over pid and all its descendants, and counts them.
func treeRSS(pid int) (bytes int64, procs int) {
	todo := []int{pid}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		if rss, ok := vmRSS(p); ok {
			bytes += rss
			procs++
		}
		todo = append(todo, children(p)...)
	}
	return bytes, procs
}

// vmRSS reads VmRSS from /proc/<pid>/status.
func vmRSS(pid int) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false // a zombie or a kernel thread
}

// errNoReplacement means a killed worker was not replaced in time.
var errNoReplacement = errors.New("no replacement worker answered")
