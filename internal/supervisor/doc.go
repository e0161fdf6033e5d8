// Package supervisor is lbserver's CLUSTER master and the worker side of its
// hand-off: the Go equivalent of Node's cluster module, with the standard
// library and one Linux socket option.
//
// # Model
//
// The master owns the listening sockets and serves no HTTP. It opens one
// SO_REUSEPORT socket per worker slot, all bound to the same address, so the
// kernel spreads new connections evenly over the slots (a single shared
// accept queue favours a few processes). Each worker is the same executable
// started again with the same arguments and three inherited descriptors:
//
//	fd 3  the slot's listening socket (the worker accepts on it, never binds)
//	fd 4  the write end of a ready pipe: one byte when the worker serves
//	fd 5  the read end of a lifeline pipe: EOF means the master is gone
//
// and LBSERVER_WORKER_ID=<slot>. Because the master keeps every socket open,
// a worker's death or replacement never closes the port: connections queued
// on a slot are never lost.
//
// With more than one slot (and at most 64), every worker also inherits every
// slot's socket (fds 6.. , LBSERVER_SLOTS=N), and the master writes commands
// on the lifeline: "adopt K" when slot K has lost its worker (it died, or it
// is waiting out a restart backoff), so that a healthy worker accepts the
// connections the kernel keeps hashing to slot K; "release K" once slot K's
// own worker is ready again. Without it, those connections would wait in
// slot K's queue for as long as its worker is down.
//
// Each worker also gets a private unix socket listener (LBSERVER_PRIVATE_FD,
// in a 0700 folder of the master's) on which it serves its routes for the
// master only: the master's --master-metrics gathers every worker's
// lbserver_* series there, labelled worker="<slot>".
//
// With more than one slot, each worker also gets the connection table
// (LBSERVER_CONNTABLE_FD, a memfd the master made; LBSERVER_CONNTABLE_ENTRY
// "i/n", its own entry): one page of shared memory where every worker keeps
// its count of open connections, so that a worker holding more than its
// share of the cluster's keep-alive connections closes one after answering
// and its client reconnects (internal/connbalance). The master zeroes an
// entry when its worker exits and reports the counts in --master-metrics
// (lbserver_master_worker_connections).
//
// The master's copies of the sockets are plain (blocking-mode) files: O_NONBLOCK
// belongs to the socket's open file description, shared by every process
// that holds the socket, and os/exec's File.Fd on a non-blocking File would
// clear it under the workers' feet (their accept4 would then block and
// their drain hang).
//
// # Signals
//
//	master SIGINT, SIGTERM  stop: SIGTERM every worker, wait for them (drain
//	                        timeout + 5s, then SIGKILL and exit 1), close
//	                        sockets, exit 0
//	master second signal    SIGKILL every worker, exit 1
//	master SIGHUP           rolling reload: slot by slot, start the new worker,
//	                        wait until it is ready, then SIGTERM the old one
//	master dies (any way)   workers read EOF on fd 5 and drain by themselves
//	worker SIGTERM          drain and exit 0 (SIGINT is ignored by workers: a
//	                        terminal's Ctrl-C reaches the master, which stops them)
//
// # Restarts
//
// A worker that exits while it is the current one of its slot is restarted.
// The delay grows with the crashes of that slot in the last CrashWindow
// (0, then 100ms, doubling, capped at MaxBackoff), so a worker that dies at
// start does not spin the CPU, and a long-lived master never gives up on a
// slot after rare crashes. Every restart is logged ("restarting worker" with
// the delay and the crashes in the window). The other slots keep serving
// meanwhile, and one of them adopts the slot until it is back.
package supervisor
