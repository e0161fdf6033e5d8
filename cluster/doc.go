// Package cluster runs an HTTP server (or any TCP server) as a master and
// one worker process per CPU sharing one port, the way Node's cluster module
// does, with the standard library and one Linux socket option:
//
//	func main() {
//		ctx, force, stop := cluster.Signals(context.Background())
//		defer stop()
//		err := cluster.Run(ctx, cluster.Config{Addr: ":8080", Force: force},
//			func(ctx context.Context, w *cluster.Worker) error {
//				return w.Serve(ctx, &http.Server{Handler: myHandler})
//			})
//		...
//	}
//
// The same call is the master in the process you start and the worker in
// each process the master starts: the same executable with the same
// arguments. examples/hello in this module is a complete program; the
// drain that Worker.Serve runs is package drain, usable on its own.
//
// # Model
//
// The master owns the listening sockets and serves nothing. It opens one
// SO_REUSEPORT socket per worker slot, all bound to the same address, so
// the kernel spreads new connections evenly over the slots (a single shared
// accept queue favours a few processes; Config.SharedSocket has one anyway).
// Because the master keeps every socket open, a worker's death or
// replacement never closes the port: connections queued on a slot are never
// lost. The master's process id never changes: a reload replaces workers
// only.
//
// The master is one goroutine that owns every slot and every worker; the
// workers' readiness and exits and the timers (restart delay, ready timeout,
// stop timeout) reach it as events. Config.OnEvent sees them in order
// (spawned, ready, serving, exited, adopted, released, reload started,
// reloaded, reload failed, stopping), which is what metrics and service
// managers' notifications need. Master.Stats and Master.Workers are
// snapshots taken after each event.
//
// # Restarts
//
// A worker that exits while it is the current one of its slot is restarted.
// The delay grows with the crashes of that slot in the last CrashWindow (0,
// then 100ms, doubling, capped at MaxBackoff), so a worker that dies at
// start does not spin the CPU, and a long-lived master never gives up on a
// slot after rare crashes. The other slots keep serving meanwhile, and with
// more than one slot one of their workers adopts the orphaned slot (accepts
// on its socket too) until the slot's own worker is ready again: without
// it, the connections the kernel keeps hashing to that slot would wait.
//
// # Rolling reload
//
// On SIGHUP, a receive on Config.Reload or Master.Reload, the master
// replaces the workers slot by slot: it starts the new worker, waits until
// it is ready (Worker.Ready, which Worker.Serve calls), makes it the slot's
// worker, sends SIGTERM to the old one and waits until it has exited before
// the next slot. No slot is ever without a ready worker. A new worker that
// exits or is not ready within ReadyTimeout aborts the reload: the old
// workers keep serving, the slots after it are left alone. Requests for a
// reload while one runs make exactly one more reload after it.
//
// # Upgrade
//
// On SIGUSR2 (nginx's signal), Master.Upgrade or Upgrade(ctx, pid) from
// another process, the master starts its executable again (Config.Exe with
// Config.Args) as a new master and hands it the listening sockets: the
// same sockets, so the accept queues are shared and nothing is closed or
// reset. The new master starts one worker per slot; once every slot has a
// ready worker it tells the old master (one byte on a pipe), the old master
// hands over (one byte on another pipe), stops its own workers (each
// drains) and exits 0. Both generations accept on the shared sockets until
// the old one drains. Under systemd the new master pings the watchdog from
// the handover on and sends READY=1 with MAINPID= once the old master has
// exited (the unit needs NotifyAccess=all and ExitType=cgroup). If the new master
// exits, a worker of it exits before it is ready, or it is not ready within
// ReadyTimeout, the old master stops it and serves on, and logs why. One
// upgrade at a time: a request during one fails with ErrUpgradeUnderWay.
// The new master's pid differs: a process manager that started the old
// master as its own child (PM2, forever) sees it exit; under those, reload.
//
// # Descriptors and environment
//
// A worker is started with these descriptors:
//
//	fd 3   the slot's listening socket (the worker accepts on it, never binds)
//	fd 4   the write end of a ready pipe: one byte when the worker serves
//	fd 5   the read end of a lifeline pipe: the master's commands, one per
//	       line ("adopt K", "release K"); EOF means the master is gone
//	fd 6.. every slot's socket, for adoption (with 2 to 64 slots)
//
// and these variables (Config.EnvPrefix, default "CLUSTER_", then the name):
// WORKER_ID (its slot, 1..Workers), MASTER_PID (for logs; never polled),
// SLOTS (N: fds 6..5+N are slots 1..N), CONNTABLE_FD and CONNTABLE_ENTRY
// ("i/n") with Config.Balance, and PRIVATE_FD with Config.Private. A worker
// unsets them once read, so that its own children are not taken for
// workers.
//
// With Config.Balance and more than one worker, the master shares a
// connection table with the workers: one page of shared memory (a memfd)
// where every worker keeps its count of open connections, so that a worker
// holding more than its share of the cluster's keep-alive connections
// closes one after answering and its client reconnects (the kernel hashes
// it again). With Config.Private, each worker also serves on a unix socket
// of Linux's abstract namespace that the master can reach
// (WorkerInfo.Private, PrivateTransport), e.g. to gather every worker's
// metrics. Neither leaves anything on disk: a master killed by SIGKILL
// leaves no file behind, and its workers, reading EOF on their lifeline,
// drain and exit.
//
// The master's copies of the sockets are plain (blocking-mode) files:
// O_NONBLOCK belongs to a socket's open file description, shared by every
// process that holds the socket, and os/exec's File.Fd on a non-blocking
// File would clear it under the workers' feet (their accept4 would then
// block and their drain hang).
//
// # Signals
//
//	master SIGINT, SIGTERM  stop (ctx done): SIGTERM every worker, wait for them
//	                        (StopTimeout, default DrainTimeout + 5s, then SIGKILL
//	                        and Run returns ErrStopTimeout), close the sockets
//	master second signal    (Config.Force closed, see Signals) SIGKILL every
//	                        worker; Run returns ErrForced
//	master SIGHUP           rolling reload
//	master SIGUSR2          upgrade: a new master takes over (see Upgrade below)
//	master dies (any way)   workers read EOF on fd 5 and drain by themselves
//	worker SIGTERM          drain (Worker.Serve) and exit; a second one cuts
//	                        the drain short
//	worker SIGINT, SIGHUP   ignored: a terminal's Ctrl-C reaches the whole
//	                        process group, and the master turns it into one
//	                        SIGTERM per worker
//
// # systemd
//
// Under systemd the master needs no code of its caller's (Config.NoSystemd
// turns it off). Before it starts a worker it takes the listening sockets
// systemd passed (socket activation: LISTEN_FDS; one is shared by every
// slot, N are one per slot, any other count is an error wrapping
// ErrSocketCount) and removes systemd's variables from its environment and
// its workers'. With NOTIFY_SOCKET it tells systemd, from its loop:
// READY=1 with MAINPID= once every slot has a ready worker, RELOADING=1 and
// then READY=1 around a rolling reload (finished or aborted), STOPPING=1
// when it stops its workers, STATUS= lines for `systemctl status` ("2 of 2
// workers ready", "reloading 1 of 2", "worker 2 restarting in 400ms"), and
// WATCHDOG=1 pings when the unit sets WatchdogSec=, as events of the loop:
// a loop that is stuck stops the pings.
//
// The master also answers Reload(ctx, pid) from other processes, on a unix
// socket of Linux's abstract namespace named after its pid (nothing on
// disk; only root and the master's user): a rolling reload whose caller
// waits for its end, what a unit's ExecReload needs.
//
// # Platforms
//
// Workers need Linux (SO_REUSEPORT that spreads connections, memfd, the
// abstract unix namespace). On other systems (macOS, Windows), Run binds
// the address itself and runs the worker function once, in the calling
// process, as worker 1, and logs that it does: a program built on cluster
// still builds and runs there for development.
package cluster
