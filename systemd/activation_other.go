//go:build !linux

package systemd

import "os"

// listenFiles: systemd runs only on Linux; elsewhere nothing is ever passed.
func listenFiles(env Env, first int) ([]*os.File, error) {
	env.unset("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
	return nil, nil
}
