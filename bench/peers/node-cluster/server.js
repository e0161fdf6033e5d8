// A peer for make bench: examples/hello's handler bytes served by Node's
// cluster module, one worker per CPU (or --workers N), no npm dependencies.
// Usage: node server.js --port 8090 [--workers N]
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');

const arg = (name, def) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const port = arg('port', 8090);
const workers = arg('workers', os.availableParallelism());

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.kill();
    process.exit(0);
  });
} else {
  const id = cluster.worker.id;
  http.createServer((req, res) => {
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(`hello from worker ${id}, pid ${process.pid}\n`);
  }).listen(port);
}
