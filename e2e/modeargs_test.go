package e2e

import "strconv"

// modeArgs is "--mode MODE", plus "--workers N" for CLUSTER: lbserver
// refuses --workers with FORK (a flag that does not apply to the mode exits 2).
func modeArgs(mode string, workers int) []string {
	if mode == "CLUSTER" {
		return []string{"--mode", mode, "--workers", strconv.Itoa(workers)}
	}
	return []string{"--mode", mode}
}
