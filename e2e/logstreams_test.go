package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Info lines go to stdout, warnings and errors to stderr: under PM2 (which
// shows stderr in red, in APP-error.log) a normal start and stop shows no
// error. A CLUSTER master and its workers, started and stopped cleanly,
// write nothing to stderr; a bind failure goes to stderr.
func TestLogStreamsInfoOnStdout(t *testing.T) {
	for _, mode := range []string{"FORK", "CLUSTER"} {
		t.Run(mode, func(t *testing.T) {
			port := FreePort(t)
			var stdout, stderr syncBuffer
			cmd := exec.Command(binPath, append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(port)}, modeArgs(mode, 2)...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			p := StartCmd(t, cmd)
			WaitHTTP(t, p, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 15*time.Second)
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if !p.Wait(20*time.Second) || p.Err() != nil {
				t.Fatalf("did not exit 0 after SIGTERM: %v", p.Err())
			}
			if !strings.Contains(stdout.String(), "level=INFO") || !strings.Contains(stdout.String(), "stopped") {
				t.Errorf("stdout lacks the info lines:\n%s", stdout.String())
			}
			if stderr.String() != "" {
				t.Errorf("a clean start and stop wrote to stderr (PM2 shows it as errors):\n%s", stderr.String())
			}
			// The same port taken: the error goes to stderr.
			blocker := StartLB(t, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
			WaitHTTP(t, blocker, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 15*time.Second)
			var o2, e2 syncBuffer
			c2 := exec.Command(binPath, append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(port)}, modeArgs(mode, 2)...)...)
			c2.Stdout, c2.Stderr = &o2, &e2
			p2 := StartCmd(t, c2)
			if !p2.Wait(15 * time.Second) {
				t.Fatal("a second instance on a taken port did not exit")
			}
			if !strings.Contains(e2.String(), "address already in use") {
				t.Errorf("the bind error is not on stderr:\nstdout:\n%s\nstderr:\n%s", o2.String(), e2.String())
			}
		})
	}
}
