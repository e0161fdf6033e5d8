package cluster

import (
	"errors"
	"strings"
	"syscall"
	"time"
)

// exitReason says why c exited, from what the master did to it, its exit
// status and its last words.
func (l *loop) exitReason(c *child, err error, words string) ExitReason {
	switch {
	case c.why != 0:
		return c.why
	case c.replaced:
		return ExitReplaced
	case c.notReady:
		return ExitNotReady
	case c.killed:
		return ExitKilled
	case c.stopped || l.stopping:
		return ExitStopped
	case outsideSignal(err) || strings.HasPrefix(words, stoppedOutside):
		return ExitSignaled
	}
	return ExitCrashed
}

// stoppedOutside begins the last words of a worker that ended because its
// caller's ctx was done: a stop signal reached it (Signals), and the master
// did not send it when the master did not stop it.
const stoppedOutside = "stopped by signal (its context was done)"

// outsideSignal reports whether err is the exit status of a process killed
// by a signal that asks a program to end (SIGTERM, SIGINT, SIGHUP): the
// master sends none of them unasked, so someone outside sent it.
func outsideSignal(err error) bool {
	var st interface{ Sys() any } // *exec.ExitError, through its ProcessState
	if !errors.As(err, &st) {
		return false
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return false
	}
	switch ws.Signal() {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP:
		return true
	}
	return false
}

// logExit logs c's exit: a crash at WARN with its last words, the others
// at INFO.
func (l *loop) logExit(c *child, err error, words string, reason ExitReason) {
	status := "exit status 0"
	if err != nil {
		status = err.Error()
	}
	args := []any{"worker", c.slot.id, "worker_pid", c.pid, "status", status,
		"uptime", l.sys.now().Sub(c.started).Round(time.Millisecond), "reason", reason.String()}
	if words != "" {
		args = append(args, "last_words", words)
	}
	switch reason {
	case ExitCrashed, ExitNotReady, ExitKilled:
		l.log.Warn("worker exited", args...)
	default:
		l.log.Info("worker exited", args...)
	}
}

// startFailure says why a worker that was never ready failed, for
// ErrNeverReady's message.
func startFailure(reason ExitReason, err error, words string) string {
	why := "exit status 0"
	if err != nil {
		why = err.Error()
	}
	if reason == ExitNotReady {
		why = "not ready within the ready timeout"
	}
	if words != "" {
		why += ": " + words
	}
	return why
}
