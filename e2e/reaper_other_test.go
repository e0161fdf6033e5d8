//go:build !linux

package e2e

import "os/exec"

// superviseRun has no leftover backstop outside Linux: the tests run in
// this process.
func superviseRun() (int, bool) { return 0, false }

// startTied is cmd.Start outside Linux (no parent-death signal).
func startTied(cmd *exec.Cmd) error { return cmd.Start() }
