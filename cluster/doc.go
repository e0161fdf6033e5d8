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
// arguments; before Run, WorkerID tells a process which one it is (0 in
// the master). examples/hello in this module is a complete program; the
// drain that Worker.Serve runs is package drain, usable on its own. A
// server of another protocol accepts on Worker.Listeners and drains by
// itself (see the Worker.Listeners example).
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
// on its socket too: Worker.Serve serves it, and Accept on the listener
// Worker.Listeners returns yields its connections) until the slot's own
// worker is ready again: without it, the connections the kernel keeps
// hashing to that slot would wait.
//
// Every exit has a reason (Event.Reason): crashed
// (logged at WARN with the worker's last words: the error its function
// returned to Run, or its panic), stopped or killed by the master, replaced
// by a reload, not ready in time, or stopped by signal. Only a crash and a
// worker not ready in time count for the backoff: a worker stopped by a
// signal the master did not send (an operator's SIGTERM, `systemctl kill`)
// is restarted at once, as someone meant to stop that process, not the
// service.
//
// Every new worker must be ready (Worker.Ready) within ReadyTimeout, or it
// is stopped (SIGTERM, SIGKILL past StopTimeout) and counts as a failed
// start. A slot none of whose workers was ever ready gives up after
// MaxFailedStarts failed starts in a row (default 5): the master stops
// every worker and Run returns an error wrapping ErrNeverReady that names
// the worker and its last words, so a broken deploy fails instead of
// looping. A slot that was served once restarts forever.
//
// # Rolling reload
//
// On SIGHUP, Master.Reload or Reload(ctx, pid) from another process, the master
// replaces the workers slot by slot: it starts the new worker, waits until
// it is ready (Worker.Ready, which Worker.Serve calls), makes it the slot's
// worker, sends SIGTERM to the old one and waits until it has exited before
// the next slot. No slot is ever without a ready worker. A new worker that
// exits or is not ready within ReadyTimeout aborts the reload: the old
// workers keep serving, the slots after it are left alone. Requests for a
// reload while one runs make exactly one more reload after it.
//
// # What a reload replaces
//
// A reload replaces the workers, nothing else. Each new worker is
// Config.Exe started again, so it runs the executable that path names at
// that moment: a file replaced on disk, or a symlink pointed at a new
// release. Config.Exe defaults to the path the program was started by
// (os.Args[0], made absolute when Run starts, symlinks kept, not resolved;
// os.Executable if that path no longer names this executable), so that
// started as current/app with current -> releases/a, `ln -sfn releases/b
// current` and SIGHUP deploy b. A reload does not replace the master: its
// own code, its command line, its Config (Workers, Addr, the timeouts, Exe
// and Args themselves) and the environment it gives its workers stay what
// they were when it started; restarting the master changes those. Every
// start reads the executable, not only a reload's: after an aborted reload
// the broken executable is still on disk, and a worker of the old code that
// crashes then is restarted from it (and fails, with the backoff, its slot
// adopted meanwhile) until the files are put back.
//
// # Workers that stop answering
//
// A worker can be alive and useless: stuck in a deadlock, spinning without
// yielding, stopped by SIGSTOP. Its process never exits, and the kernel
// keeps handing it its share of new connections. With
// Config.HealthInterval the master checks every ready worker at that
// interval, by default with an HTTP "OPTIONS *" request on the worker's
// private socket (Config.PrivateSockets), which net/http answers without calling
// the handler, through the same accept loop and connection goroutines as
// every request: a worker whose handlers are all busy computing still
// answers. Config.HealthCheck replaces the check. A check that fails or
// has not answered by the next tick is a miss; at Config.HealthMisses
// misses in a row (default 3) the worker is unresponsive: another worker
// adopts its slot at once, it gets SIGKILL (it cannot drain), and its slot
// a new worker. A worker that stops answering is killed within
// HealthInterval × (HealthMisses + 1).
//
// # One worker at a time
//
// Master.RestartWorker replaces one slot's worker the way a rolling reload
// replaces each: the new one is ready before the old one drains.
// Recycling does the same by itself, for a worker that has served
// Config.MaxRequests requests (plus a random 0 to MaxRequestsJitter of its
// own, so that workers started together are not recycled together) or
// whose resident memory, read by the master from /proc every second, is
// above Config.MaxMemory. Replacements run one at a time, never during a
// rolling reload; a reload asked for during one follows it.
//
// # The number of workers
//
// Master.Scale sets the number of workers while serving; SIGTTIN adds one
// and SIGTTOU removes one (Gunicorn's and Unicorn's signals); Scale(ctx,
// pid, n) asks from another process. The master binds a socket for every
// slot it may use (Config.MaxWorkers) at start, beyond Config.Workers bound
// but not listening (a socket that does not listen is not in the port's
// SO_REUSEPORT group: the kernel gives it nothing), so that every worker
// holds every slot's socket and can adopt any of them. An added slot's
// socket starts listening, is adopted by a ready worker at once, and its
// own worker takes it over once ready.
//
// A removed slot's socket is never closed: closing a listening
// SO_REUSEPORT socket resets every connection queued on it. It keeps
// listening and a worker of the remaining slots adopts it for good, before
// the slot's own worker is told to drain. What it costs: the kernel keeps
// hashing that slot's share of new connections to it, so its adopter
// accepts for two slots (4 slots scaled to 3: one worker gets two fourths
// of the new connections; the connection table still evens out
// keep-alive connections), until a scale up gives the slot a worker of its
// own again. The alternatives cost more. net.ipv4.tcp_migrate_req=1 makes
// the kernel move a closed listener's queue to the others of its group,
// but it is one setting for the whole network namespace (0 by default),
// which a library must not change. A BPF program on the group
// (SO_ATTACH_REUSEPORT_CBPF or _EBPF) could stop sending new connections to
// a socket before it is closed, but a connection whose handshake is under
// way at the close is still reset without tcp_migrate_req, eBPF needs
// CAP_BPF, and a cBPF program indexes sockets by their position in the
// group, which every close reorders.
//
// # Messages
//
// With Config.Messages, the master and each worker talk as in Node's
// cluster: Master.Send (one slot's worker) and Master.Broadcast reach
// Worker.Messages; Worker.Send reaches Config.OnMessage, called by the
// loop. A message is a byte slice of at most MaxMessage bytes, carried
// whole over a SOCK_SEQPACKET socket pair per worker. No sender ever waits
// for a slow reader: a Send that finds the channel's buffer full fails at
// once with ErrMessageQueueFull, so a worker that reads nothing costs the
// master nothing but the error.
//
// # Compared with Node's cluster, PM2 and Gunicorn
//
//	                     Node cluster          PM2                     Gunicorn               this package
//	one port, N procs    primary accepts,      cluster mode for        one shared socket      one SO_REUSEPORT socket per
//	                     hands out (RR)        Node only               accepted by workers    slot, held by the master
//	dead worker          'exit' event; user    restarted (backoff:     restarted              restarted, backoff per slot;
//	                     code forks again      --exp-backoff-...)                             its slot adopted meanwhile
//	reload, no loss      user code             pm2 reload              SIGHUP                 SIGHUP, Master.Reload, Reload:
//	                                                                                          new ready before old drains
//	hung worker          no                    no                      timeout (30s):         HealthInterval × HealthMisses:
//	                                                                   killed, replaced       slot adopted, SIGKILL, replaced
//	recycle by requests  no                    no                      max_requests (+jitter) MaxRequests (+jitter)
//	recycle by memory    no                    max_memory_restart      no                     MaxMemory (from /proc)
//	workers at run time  cluster.fork(),       pm2 scale APP N         TTIN, TTOU             Master.Scale, SIGTTIN,
//	                     worker.kill()                                                        SIGTTOU, Scale(ctx, pid, n)
//	restart one worker   worker.kill() + fork  pm2 reload ID           kill it (TERM)         Master.RestartWorker:
//	                                                                                          new ready before old drains
//	why it exited        exitedAfterDisconnect, logs                    logs                   Event.Reason (crashed, stopped,
//	                     code, signal                                                         replaced, recycled, killed,
//	                                                                                          unresponsive, scaled down,
//	                                                                                          stopped by signal) and
//	                                                                                          LastWords
//	messages             worker.send,          pm2 sendDataToProcessId no                     Master.Send, Broadcast,
//	                     process.send                                                         Worker.Send, OnMessage (bytes,
//	                                                                                          MaxMessage, never blocks)
//	worker's own env     cluster.fork(env)     per app                 no                     Config.WorkerEnv(slot)
//	keep-alive spread    per connection, by    as Node's cluster       whoever accepts        connection table: a worker over
//	                     the primary (RR)                                                     its share sheds (NoSpread: off)
//	threads per worker   1 (JavaScript)        as Node's cluster       --threads (default 1)  GOMAXPROCS CPUs/workers,
//	                                                                                          rounded up (WorkerProcs)
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
//	fd 4   the write end of a report pipe: byte 1 when the worker serves,
//	       then byte 2 and its last words before it exits
//	fd 5   the read end of a lifeline pipe: the master's commands, one per
//	       line, each the whole state: the set of other slots the worker
//	       accepts for ("adopted 2 5", "adopted"), then "stopping" once the
//	       master's stop began (Worker.Stopping is closed), so none is lost
//	       by replacing an older one not yet read; EOF means the master is
//	       gone
//	fd 6.. every slot's socket, for adoption (with 2 to 64 slots)
//
// and these variables (Config.EnvPrefix, default DefaultEnvPrefix
// "CLUSTER_", then the name): WORKER_ID (its slot, 1..Workers; WorkerID
// and WorkerIDFor read it), MASTER_PID (for logs; never polled),
// SLOTS (N: fds 6..5+N are slots 1..N), CONNTABLE_FD and CONNTABLE_ENTRY
// ("i/n") unless Config.NoSpread, and PRIVATE_FD with Config.PrivateSockets. A worker
// unsets them once read, so that its own children are not taken for
// workers.
//
// With more than one worker (unless Config.NoSpread), the master shares a
// connection table with the workers (see "Keep-alive connections"). With
// Config.PrivateSockets, each worker also serves on a unix socket
// of Linux's abstract namespace that the master can reach
// (WorkerInfo.PrivateAddr, PrivateTransport), e.g. to gather every worker's
// metrics; only processes of the master's user and root are accepted
// there, as on the master's control socket (Reload). Neither leaves
// anything on disk: a master killed by SIGKILL leaves no file behind, and
// its workers, reading EOF on their lifeline, drain and exit.
//
// The master's copies of the sockets are plain (blocking-mode) files:
// O_NONBLOCK belongs to a socket's open file description, shared by every
// process that holds the socket, and os/exec's File.Fd on a non-blocking
// File would clear it under the workers' feet (their accept4 would then
// block and their drain hang).
//
// # GOMAXPROCS
//
// Go gives a process as many Ps (threads running Go code) as it may use
// CPUs, so N workers would each run that many and oversubscribe the
// machine N times: the threads preempt each other mid-request and the
// tail latency grows. The master sets GOMAXPROCS in each new worker's
// environment to the CPUs it may use (runtime.GOMAXPROCS(0), which follows
// a cgroup CPU quota) divided by the workers, rounded up: 1 for one worker
// per CPU (as fasthttp's prefork and Node's single-threaded workers run),
// 2 for 3 workers on 4 CPUs, all CPUs for one worker. A GOMAXPROCS in the
// workers' environment (Config.Env, by default the master's own) wins;
// Config.WorkerProcs asks for another value, negative for Go's default. A
// worker may still call runtime.GOMAXPROCS itself, e.g. to compute one
// request on every CPU. The variable stays in the worker's environment, so
// Go programs the worker starts inherit it unless it gives them another
// environment. docs/BENCHMARKS.md ("Threads per worker") measures
// this against Node's cluster, fasthttp's prefork and net/http: on 2 CPUs,
// examples/hello with 2 workers of GOMAXPROCS 1 had a median p99 of 3.8 ms
// against 8.2 ms with GOMAXPROCS 2 each (and 6.0 ms for net/http in one
// process), at 1.04x Node cluster's requests/s.
//
// # Keep-alive connections
//
// The kernel picks a slot once per connection, so the connections a
// keep-alive client keeps open (a balancer's upstream pool, a load
// generator, browsers) stay where they first landed: 64 connections over 2
// workers land 32 ± 4 apiece. With more than one worker the master
// therefore shares a connection table with them, one page of shared memory
// (a memfd) where every worker keeps its count of open connections; after
// answering a request, a worker that holds more than its share,
// ceil(open connections / live workers), closes that connection
// ("Connection: close") and its client reconnects, to a slot the kernel
// hashes again. The counts converge in a few reconnects, and once they are
// even nobody is asked to reconnect. Config.NoSpread turns the table off;
// Worker.Serve then spreads the connections again by recycling each one
// every MaxConnRequests requests (default 100), which costs a reconnect
// every 100 requests for as long as the clients stay: in the same
// measurement, examples/hello with NoSpread did 0.97x the requests/s of the
// default.
//
// # Signals
//
//	master SIGINT, SIGTERM  stop (ctx done, with Signals): close the sockets
//	                        it bound (new connections are refused at once
//	                        once the workers close theirs), tell every
//	                        worker "stopping", after Config.ShutdownDelay
//	                        (default 0) SIGTERM every worker, wait for them
//	                        (StopTimeout, default DrainTimeout + 5s, then
//	                        SIGKILL and Run returns ErrStopTimeout)
//	master second signal    (Config.Force closed, see Signals) SIGKILL every
//	                        worker; Run returns ErrForced
//	master SIGHUP           rolling reload
//	master SIGTTIN, SIGTTOU one worker more, one fewer (Master.Scale)
//	master SIGUSR2          upgrade: a new master takes over (see Upgrade below)
//	master dies (any way)   workers read EOF on fd 5 and drain by themselves
//	worker SIGTERM          drain (fn's ctx is done; Worker.Serve drains) and
//	                        exit; a second one cuts the drain short. Run takes
//	                        it itself: a program that never calls Signals
//	                        drains too. Not sent by the master, it is no
//	                        crash: the master restarts the worker at once
//	worker SIGINT, SIGHUP   taken and dropped: a terminal's Ctrl-C reaches the
//	                        whole process group, and the master turns it into
//	                        one SIGTERM per worker. Dropped, not ignored: the
//	                        worker's own children start with the default
//	                        dispositions
//
// Run takes SIGHUP before it does anything else. A SIGHUP that comes before
// the program calls Run ends it (Go's default): call Run early in main, or
// take SIGHUP there yourself (signal.Notify) before slower work.
//
// # Stopping
//
// When the stop begins, the master closes its copies of the sockets it
// bound, and each worker closes its own as it begins to drain: once the
// last is closed, a new connection is refused at once (a proxy such as
// nginx then tries its next upstream) instead of waiting in a queue no one
// will accept from, and being reset at the end of the drain. Sockets given
// to the master (Config.Files, or systemd's socket activation) are kept
// open: their queue belongs to whoever passed them, and the connections
// that wait there are served by the next master. A ctx already done when
// Run is called starts no worker; Run returns nil.
//
// # Limits
//
// The master warns at start of each limit its configuration runs into:
// with more than 64 slots there is no adoption (a slot whose worker is down
// waits for it); the connection table (Config.NoSpread turns it off) has min(63,
// 4×Workers) entries, so with 63 or more workers some (a reload's new
// ones first) get no balancing; and more than 4 workers per CPU only add
// context switches and memory.
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
// a loop that is stuck stops the pings. A notification never blocks the
// loop: one that finds systemd's socket full is dropped (the first failure
// is logged).
//
// The master also answers Reload(ctx, pid) from other processes, on a unix
// socket of Linux's abstract namespace named after its pid namespace and
// pid (nothing on disk; only root and the master's user, from the master's
// pid namespace): a rolling reload whose caller waits for its end, what a
// unit's ExecReload needs. Reload checks that the process answering there
// is that pid, of its user or root (ErrNotMaster otherwise), and a master
// whose socket name is already taken fails to start.
// Scale(ctx, pid, n) and RestartWorker(ctx, pid, id) go the same way, and
// return once the master has taken the request.
//
// # Platforms
//
// Workers need Linux (SO_REUSEPORT that spreads connections, memfd, the
// abstract unix namespace). On other systems (macOS, Windows), Run binds
// the address itself and runs the worker function once, in the calling
// process, as worker 1, and logs that it does: a program built on cluster
// still builds and runs there for development.
package cluster
