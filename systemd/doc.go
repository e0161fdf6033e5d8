// Package systemd speaks the two protocols systemd has with the services it
// runs, for a Go server or a supervisor of Go servers:
//
//   - sd_notify (NOTIFY_SOCKET): a [Notifier] tells systemd that the service is
//     ready (READY=1, what makes `systemctl start` of a Type=notify unit
//     return), reloading (RELOADING=1 with MONOTONIC_USEC=, what
//     Type=notify-reload waits for), stopping (STOPPING=1), what it is doing
//     (STATUS=, the "Status:" line of `systemctl status`), which process is the
//     main one (MAINPID=), and that it is alive (WATCHDOG=1, every
//     [Notifier.WatchdogInterval] when the unit sets WatchdogSec=).
//   - socket activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES): [Listeners]
//     and [Files] return the listening sockets systemd passed, checked to be
//     listening TCP sockets, so the server serves on them instead of binding.
//     systemd keeps its copy of each socket, so while the service restarts,
//     connections wait in the kernel's accept queue instead of being refused.
//
// Both read the environment through an [Env], so a test can hand them any
// values, and both remove their variables from it once read, so that child
// processes (a supervisor's workers) do not take them as theirs.
//
// When systemd is not there (NOTIFY_SOCKET and LISTEN_FDS unset) everything
// here is a no-op: a Notifier sends nothing, Listeners returns none.
//
// The package imports nothing of lbserver: it is meant for any server, and for
// the public cluster package's master.
//
// The protocols: sd_notify(3), sd_listen_fds(3), sd_watchdog_enabled(3).
// github.com/coreos/go-systemd/v22 implements them too, but reads the process
// environment directly (no seam for tests or for a supervisor that passes its
// children an explicit environment), and its activation.Listeners turns a
// connected TCP socket into a *net.TCPListener without an error (net.FileListener
// does not check SO_ACCEPTCONN), which would surface only as a failing Accept.
package systemd
