//go:build !linux

package systemd

// monotonicUsec: systemd runs only on Linux; elsewhere MONOTONIC_USEC= is left out.
func monotonicUsec() (int64, bool) { return 0, false }
