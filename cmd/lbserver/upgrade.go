package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"

	"github.com/lbserver/lbserver/cluster"
)

// runUpgrade is `lbserver upgrade PID`: ask the CLUSTER master PID to
// upgrade itself (as SIGUSR2 does, nginx's binary upgrade): it starts the
// executable again as a new master on the same sockets, and once the new
// master's workers are ready it drains its own and exits 0. It waits for
// that outcome and fails when the upgrade was refused or rolled back (the
// old master then serves on).
func runUpgrade(ctx context.Context, args []string, stdout io.Writer) error {
	pid, err := masterPID("upgrade", args)
	if err != nil {
		return err
	}
	newPid, err := cluster.Upgrade(ctx, pid)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	fmt.Fprintf(stdout, "lbserver: master %d upgraded: new master %d serves, the old one drains and exits\n", pid, newPid)
	return nil
}

// listenMasterMetrics listens on addr for --master-metrics. On Linux the
// socket has SO_REUSEPORT, so that a new master started by an upgrade
// binds it while the old master still serves it (until the old one
// exits); a master started otherwise first makes sure that nothing
// listens there, so that two masters never share it by mistake.
func listenMasterMetrics(addr string, upgraded bool) (net.Listener, error) {
	if runtime.GOOS != "linux" {
		return net.Listen("tcp", addr)
	}
	if !upgraded {
		probe, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		_ = probe.Close()
	}
	lc := net.ListenConfig{Control: cluster.ReusePortControl}
	return lc.Listen(context.Background(), "tcp", addr)
}
