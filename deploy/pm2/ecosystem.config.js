// PM2 apps for lbserver, topology A and topology B (see docs/PROCESS-MANAGERS.md).
//
//   make build                                   # bin/lbserver
//   pm2 start deploy/pm2/ecosystem.config.js --only lbserver-fork,lbserver-cluster   # topology A
//   pm2 start deploy/pm2/ecosystem.config.js --only lbserver-fork,lbserver-b         # topology B
//   pm2 ls; pm2 delete deploy/pm2/ecosystem.config.js
//
// Apps (default ports; each can be moved with an environment variable read
// below when the file is loaded, which is how the e2e tests use free ports):
//   lbserver-fork       8080        FORK, one process           (LBSERVER_PM2_FORK_PORT)
//   lbserver-cluster    8081        CLUSTER, 1 master + 2 workers (LBSERVER_PM2_CLUSTER_PORT)
//   lbserver-b          8082-8085   4 FORK instances, PORT = 8082, 8083, 8084, 8085
//                                   (LBSERVER_PM2_B_PORT = first port)
//   lbserver-cluster-watch 8081     the same with lbserver's own --watch (zero-downtime reload)
//   lbserver-reuseport  8081        2 FORK instances sharing one port with SO_REUSEPORT:
//                                   PM2's own answer to "cluster", an alternative to
//                                   lbserver-cluster for topology A (not both at once)
//
// PM2's cluster mode (exec_mode 'cluster') only works for Node.js scripts: it
// runs them through Node's cluster module. For a native binary such as
// lbserver, `-i N` / `instances: N` starts N separate processes in fork_mode.
// (With exec_mode 'cluster', pm2 7 hands the binary to node's ProcessContainer,
// which cannot run it: the instances crash-loop to "errored".) Those N
// processes can only share one port if every one binds with SO_REUSEPORT,
// which is what lbserver's --reuseport does; the kernel then spreads new
// connections over them. lbserver's own CLUSTER mode (one PM2 process, the
// master, which starts the workers and restarts them itself) is the other way.
//
// Signals: PM2 stops a process with SIGINT; lbserver drains on SIGINT like on
// SIGTERM. kill_timeout (the wait before PM2 sends SIGKILL) is above what
// lbserver may take to stop: --drain-timeout (10s by default) for a FORK
// process, drain + 5s for a CLUSTER master that waits for its workers.
//
// Watch: `watch` lists the binary only. After `make build` (or any `go build
// -o bin/lbserver ./cmd/lbserver`) PM2 restarts every process of the app, so
// every process serves the new build. A PM2 restart is stop-then-start: the
// port refuses connections for a moment. For a reload with no failed request
// use lbserver-cluster-watch: PM2 does not watch, lbserver's own --watch
// replaces the workers one by one and the master (the PM2 process) stays.
// Do not write `pm2 start bin/lbserver -- --watch`: pm2 7 reads a --watch
// even after `--` as its own (watch the whole folder, logs included), which
// restarts the app in a loop. Here args is an array, so it reaches lbserver.
'use strict';

const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const bin = process.env.LBSERVER_BIN || path.join(root, 'bin', 'lbserver');

function port(name, def) {
  const v = process.env[name];
  return v ? Number(v) : def;
}

// Settings every lbserver app shares.
const common = {
  script: bin,
  interpreter: 'none', // a native binary, not a Node.js script
  cwd: root,
  exec_mode: 'fork',
  autorestart: true,
  kill_timeout: 20000, // ms; > --drain-timeout 10s (+5s for a CLUSTER master)
  // A process that exits within min_uptime is an "unstable restart"; after
  // max_restarts of them PM2 gives up and shows the app as errored. That is
  // what happens when the port is taken (e.g. lbserver-cluster-watch started
  // while lbserver-cluster holds 8081): three quick tries, then `pm2 ls`
  // says errored and `pm2 logs APP` shows lbserver's "address already in
  // use", instead of a restart loop. (No exp_backoff_restart_delay: with it,
  // pm2 7 keeps restarting with growing delays, and when it does give up it
  // shows the app as "waiting restart" for ever.)
  min_uptime: 1000, // ms
  max_restarts: 3,
  watch: [bin],
  watch_delay: 500, // ms; let `go build` finish writing the file
  time: true,
};

// Every app binds 127.0.0.1 (--host): nginx on the same host is the way in. To run the
// instances on other hosts (docs/TOPOLOGIES.md), bind the address nginx reaches instead.
module.exports = {
  apps: [
    {
      ...common,
      name: 'lbserver-fork',
      args: ['--host', '127.0.0.1', '--port', String(port('LBSERVER_PM2_FORK_PORT', 8080)), '--mode', 'FORK'],
    },
    {
      ...common,
      name: 'lbserver-cluster',
      // One PM2 process: the lbserver master. It starts and restarts its
      // workers itself; PM2 only sees (and restarts) the master.
      // treekill false: PM2 signals only the master, which drains and stops
      // its workers in order; a tree kill would signal every worker at once.
      // With --watch added to args, lbserver itself replaces the workers one
      // by one when the binary changes (no failed request); then remove the
      // PM2 `watch` below, or PM2 will restart the master too.
      args: ['--host', '127.0.0.1', '--port', String(port('LBSERVER_PM2_CLUSTER_PORT', 8081)), '--mode', 'CLUSTER', '--workers', '2'],
      treekill: false,
    },
    {
      ...common,
      name: 'lbserver-cluster-watch',
      // lbserver-cluster with lbserver's own --watch: when bin/lbserver
      // changes, the master starts a new worker per slot, waits until it is
      // ready, then drains the old one: no failed request, and PM2 sees no
      // restart (same pid, same ↺). Use instead of lbserver-cluster, not
      // with it (same port): `pm2 delete lbserver-cluster` first.
      args: ['--host', '127.0.0.1', '--port', String(port('LBSERVER_PM2_CLUSTER_PORT', 8081)), '--mode', 'CLUSTER', '--workers', '2', '--watch'],
      treekill: false,
      watch: false,
    },
    {
      ...common,
      name: 'lbserver-b',
      // Four processes; PM2 gives each its own PORT: 8082, 8083, 8084, 8085.
      // lbserver reads PORT from the environment (no --port flag here).
      instances: 4,
      increment_var: 'PORT',
      env: { PORT: port('LBSERVER_PM2_B_PORT', 8082) },
      args: ['--host', '127.0.0.1', '--mode', 'FORK'],
    },
    {
      ...common,
      name: 'lbserver-reuseport',
      // `pm2 start bin/lbserver -i 2 -- --port 8081 --reuseport` as a file:
      // two FORK processes on one port; the kernel balances between them.
      instances: 2,
      args: ['--host', '127.0.0.1', '--port', String(port('LBSERVER_PM2_REUSEPORT_PORT', 8081)), '--mode', 'FORK', '--reuseport'],
    },
  ],
};
