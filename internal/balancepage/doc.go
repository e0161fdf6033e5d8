// Package balancepage serves lbserver's live balancing page: plain HTML, CSS
// and a little vanilla JavaScript, embedded in the binary, with no build step
// and no external URL (it works offline and behind a reverse proxy).
//
// The page sends a stream of same-origin requests from the browser (path,
// rate, concurrency and an optional request budget are configurable), reads
// the X-Server-Host, X-Server-Port, X-Server-Pid and X-Worker-Id headers of
// every answer and draws, live, a bar per answering instance (port), per host
// and per worker (pid, grouped by host), requests per second, latency p50/p99
// and errors (network errors and non-2xx answers counted apart). A killed or
// reloaded process, or a host off the network, shows as a bar that stops
// growing and turns grey, and a new pid that appears; the run goes on.
//
// Handler serves the page at a path ending in /balance and its assets at
// /balance/app.css, /balance/app.js and /balance/icon.svg. Every URL the page
// uses is relative to the page, so a proxy that mounts lbserver under a prefix
// keeps working. Responses carry a Content-Security-Policy that allows only
// 'self': the page has no inline script or style.
//
// The tallies are in the DOM for tests and tools: data-port, data-host,
// data-pid, data-worker, data-state and data-count attributes on the bars, and
// window.lbBalance.snapshot() returns them as one JSON-able object. The
// contract is documented in docs/BALANCE-PAGE.md.
package balancepage
