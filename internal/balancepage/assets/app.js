// lbserver balance page: sends same-origin requests and tallies who answered.
// No dependencies, no build step. The contract (headers read, DOM attributes,
// window.lbBalance) is documented in docs/BALANCE-PAGE.md.
(function () {
  'use strict';

  var WINDOW_MS = 10000;   // latency percentiles use the answers of the last 10 s
  var RATE_MS = 2000;      // requests/s counts the answers of the last 2 s
  var SILENT_MS = 2000;    // a worker with no answer for this long shows "silent"
  var TIMEOUT_MS = 30000;  // a request that takes longer is aborted (a network error)
  var AUTOSTART_MAX = 300; // requests a link with autostart=1 starts at most
  var AUTOSTART_MS = 10000; // and for this long at most
  var TIMELINE_S = 60;     // seconds drawn by the timeline
  var MAX_SAMPLES = 20000; // latency samples kept at most
  var PALETTE = ['#1f77b4', '#d95f02', '#2ca02c', '#9467bd', '#c2185b', '#00838f',
    '#8c6d31', '#5c6bc0', '#e6550d', '#31a354', '#7b4173', '#3182bd'];

  function $(id) { return document.getElementById(id); }
  function now() { return performance.now(); }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // newTally is everything one run counts. A run's requests write only into
  // the tally they started with, so Reset during a run cannot mix runs.
  function newTally() {
    return {
      sent: 0, done: 0, ok: 0, httpErrors: 0, netErrors: 0, timeouts: 0, inFlight: 0,
      unattributed: 0,          // answers without X-Server-Pid (e.g. a proxy's own 502)
      statuses: {},             // HTTP status -> count
      ports: new Map(),         // port -> {port, count}
      hosts: new Map(),         // X-Server-Host -> {host, count, last}
      pids: new Map(),          // "host/port/pid" ("port/pid" without a host) -> worker entry
      samples: [],              // [{t, ms}] answers of the last WINDOW_MS
      answers: [],              // completion times of the last RATE_MS
      seconds: new Map(),       // second index -> Map(key -> count), for the timeline
      startedAt: 0, endedAt: 0, colorNext: 0
    };
  }

  var state = {
    tally: newTally(),
    run: null,                  // the active run, or null
    events: []                  // status messages waiting to be announced
  };

  // ---- the request loop ----------------------------------------------------

  function readConfig() {
    var path = $('path').value.trim();
    var rate = Number($('rate').value);
    var conc = Number($('concurrency').value);
    var limit = Number($('limit').value);
    if (!path) { throw new Error('Enter a path to request, e.g. /api/randoms?cant=100000.'); }
    var url;
    try { url = new URL(path, document.baseURI); } catch (e) { throw new Error('The path is not a valid URL.'); }
    if (url.origin !== location.origin) {
      throw new Error('Only same-origin paths are allowed (this page runs at ' + location.origin + ').');
    }
    if (!Number.isFinite(rate) || rate < 0) { throw new Error('Rate must be 0 or more requests per second.'); }
    if (!Number.isInteger(conc) || conc < 1 || conc > 64) { throw new Error('Concurrency must be a whole number from 1 to 64.'); }
    if (!Number.isInteger(limit) || limit < 0) { throw new Error('"Stop after" must be a whole number, 0 or more.'); }
    return { url: url.href, path: path, rate: rate, concurrency: conc, limit: limit };
  }

  function start(cfg) {
    if (state.run) { return false; }
    var t = state.tally;
    var run = { cfg: cfg, tally: t, active: true, nextAt: now(), loops: [] };
    state.run = run;
    if (!t.startedAt) { t.startedAt = now(); }
    t.endedAt = 0;
    for (var i = 0; i < cfg.concurrency; i++) { run.loops.push(loop(run)); }
    Promise.all(run.loops).then(function () { finished(run); });
    announce('Running: ' + describe(cfg) + '.');
    syncControls();
    return true;
  }

  function describe(cfg) {
    return cfg.path + ', ' + (cfg.rate > 0 ? cfg.rate + ' requests/s' : 'as fast as possible') +
      ', concurrency ' + cfg.concurrency + (cfg.limit > 0 ? ', ' + cfg.limit + ' requests' : '');
  }

  function stop() {
    if (!state.run) { return false; }
    state.run.active = false;
    announce('Stopping: waiting for ' + state.run.tally.inFlight + ' request(s) in flight.');
    syncControls();
    return true;
  }

  function finished(run) {
    run.tally.endedAt = now();
    if (state.run === run) { state.run = null; }
    var t = run.tally;
    if (t !== state.tally) { return; } // reset while it ran
    announce('Stopped. ' + t.done + ' answered, ' + t.ok + ' OK, ' + t.httpErrors + ' HTTP error(s), ' +
      t.netErrors + ' network error(s), from ' + t.pids.size + ' worker(s) on ' + t.ports.size + ' port(s).');
    syncControls();
    render();
  }

  // loop is one of the run's concurrent senders.
  async function loop(run) {
    var cfg = run.cfg, t = run.tally;
    while (run.active && (cfg.limit === 0 || t.sent < cfg.limit)) {
      if (cfg.rate > 0) {
        var n = now();
        var at = Math.max(n, run.nextAt);
        run.nextAt = at + 1000 / cfg.rate;
        if (at > n) { await sleep(at - n); }
        if (!run.active || (cfg.limit > 0 && t.sent >= cfg.limit)) { break; }
      }
      t.sent++;
      t.inFlight++;
      await one(cfg.url, t);
    }
  }

  // one sends a request and records who answered, how fast, and how.
  async function one(url, t) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
    var t0 = now();
    var res = null;
    try {
      res = await fetch(url, { cache: 'no-store', credentials: 'same-origin', signal: ctl.signal });
      await res.arrayBuffer(); // latency includes the whole body
      record(t, res, now() - t0);
    } catch (e) {
      t.netErrors++;
      if (e && e.name === 'AbortError') { t.timeouts++; }
    } finally {
      clearTimeout(timer);
      t.inFlight--;
      t.done++;
    }
  }

  function record(t, res, ms) {
    var at = now();
    t.statuses[res.status] = (t.statuses[res.status] || 0) + 1;
    var good = res.status >= 200 && res.status < 300;
    if (good) { t.ok++; } else { t.httpErrors++; }
    t.samples.push({ t: at, ms: ms });
    if (t.samples.length > MAX_SAMPLES) { t.samples.splice(0, t.samples.length - MAX_SAMPLES); }
    t.answers.push(at);

    var port = res.headers.get('X-Server-Port');
    var pid = res.headers.get('X-Server-Pid');
    var worker = res.headers.get('X-Worker-Id');
    var host = res.headers.get('X-Server-Host') || '';
    if (!pid) { t.unattributed++; return; }
    port = port || '?';
    var p = t.ports.get(port);
    if (!p) { p = { port: port, count: 0 }; t.ports.set(port, p); }
    p.count++;
    if (host) {
      var h = t.hosts.get(host);
      if (!h) { h = { host: host, count: 0, last: at }; t.hosts.set(host, h); }
      h.count++;
      h.last = at;
    }
    var key = (host ? host + '/' : '') + port + '/' + pid;
    var w = t.pids.get(key);
    if (!w) {
      w = { key: key, pid: pid, port: port, host: host, worker: worker || '', count: 0, ok: 0, httpErrors: 0,
        first: at, last: at, color: PALETTE[t.colorNext++ % PALETTE.length] };
      t.pids.set(key, w);
      if (state.run && state.run.tally === t) {
        announce((t.pids.size === 1 ? 'First answer: pid ' : 'New worker: pid ') + pid +
          (worker ? ' (worker ' + worker + ')' : '') + ' on port ' + port + (host ? ' of ' + host : '') + '.');
      }
    }
    w.count++;
    if (good) { w.ok++; } else { w.httpErrors++; }
    w.last = at;
    var sec = Math.floor((at - t.startedAt) / 1000);
    var s = t.seconds.get(sec);
    if (!s) { s = new Map(); t.seconds.set(sec, s); }
    s.set(key, (s.get(key) || 0) + 1);
  }

  // ---- figures -------------------------------------------------------------

  function prune(t, at) {
    var i = 0;
    while (i < t.samples.length && t.samples[i].t < at - WINDOW_MS) { i++; }
    if (i) { t.samples.splice(0, i); }
    i = 0;
    while (i < t.answers.length && t.answers[i] < at - RATE_MS) { i++; }
    if (i) { t.answers.splice(0, i); }
    var oldest = Math.floor((at - t.startedAt) / 1000) - TIMELINE_S - 1;
    t.seconds.forEach(function (_, k) { if (k < oldest) { t.seconds.delete(k); } });
  }

  // percentile is the nearest-rank percentile of sorted values.
  function percentile(sorted, q) {
    if (!sorted.length) { return null; }
    var rank = Math.ceil(q * sorted.length);
    return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
  }

  function figures(t) {
    var at = t.endedAt || now();
    if (!t.endedAt) { prune(t, at); }
    var lat = t.samples.map(function (s) { return s.ms; }).sort(function (a, b) { return a - b; });
    var span = Math.min(RATE_MS, t.startedAt ? at - t.startedAt : 0);
    var rps = 0;
    if (!t.endedAt && span > 0) {
      rps = t.answers.filter(function (x) { return x >= at - RATE_MS; }).length * 1000 / span;
    }
    var elapsed = t.startedAt ? ((t.endedAt || at) - t.startedAt) / 1000 : 0;
    return {
      rps: rps,
      avgRps: elapsed > 0 ? t.done / elapsed : 0,
      p50: percentile(lat, 0.50),
      p99: percentile(lat, 0.99),
      elapsed: elapsed,
      at: at
    };
  }

  // snapshot is the machine-readable state of the page (for tests and tools).
  function snapshot() {
    var t = state.tally, f = figures(t);
    var at = f.at;
    return {
      running: !!state.run,
      config: state.run ? {
        path: state.run.cfg.path, rate: state.run.cfg.rate,
        concurrency: state.run.cfg.concurrency, limit: state.run.cfg.limit
      } : null,
      sent: t.sent, done: t.done, ok: t.ok, httpErrors: t.httpErrors, netErrors: t.netErrors,
      timeouts: t.timeouts, inFlight: t.inFlight, unattributed: t.unattributed,
      statuses: Object.assign({}, t.statuses),
      rps: round(f.rps, 1), avgRps: round(f.avgRps, 1), elapsedSeconds: round(f.elapsed, 3),
      latencyMs: { p50: f.p50 === null ? null : round(f.p50, 2), p99: f.p99 === null ? null : round(f.p99, 2),
        samples: t.samples.length },
      ports: Array.from(t.ports.values()).map(function (p) { return { port: p.port, count: p.count }; }),
      hosts: Array.from(t.hosts.values()).map(function (h) {
        return { host: h.host, count: h.count, live: !!state.run && at - h.last < SILENT_MS };
      }),
      pids: Array.from(t.pids.values()).map(function (w) {
        return { pid: w.pid, port: w.port, host: w.host, worker: w.worker, count: w.count, ok: w.ok, httpErrors: w.httpErrors,
          live: !!state.run && at - w.last < SILENT_MS };
      })
    };
  }

  function round(x, d) { var m = Math.pow(10, d); return Math.round(x * m) / m; }
  function fmtMs(x) { return x === null ? '–' : (x < 10 ? x.toFixed(1) : Math.round(x)) + ' ms'; }
  function fmtInt(x) { return Math.round(x).toLocaleString('en-US'); }

  // ---- drawing -------------------------------------------------------------

  function setText(el, s) { if (el.textContent !== s) { el.textContent = s; } }

  function render() {
    var t = state.tally, f = figures(t), at = f.at;
    setText($('stat-sent'), fmtInt(t.sent));
    setText($('stat-done'), fmtInt(t.done));
    setText($('stat-rps'), state.run ? f.rps.toFixed(f.rps < 10 ? 1 : 0) : (t.done ? f.avgRps.toFixed(1) + ' avg' : '0'));
    setText($('stat-p50'), fmtMs(f.p50));
    setText($('stat-p99'), fmtMs(f.p99));
    setText($('stat-inflight'), fmtInt(t.inFlight));
    setText($('stat-http'), fmtInt(t.httpErrors));
    setText($('stat-net'), fmtInt(t.netErrors) + (t.timeouts ? ' (' + t.timeouts + ' timeouts)' : ''));
    $('stat-http').classList.toggle('nonzero', t.httpErrors > 0);
    $('stat-net').classList.toggle('nonzero', t.netErrors > 0);
    var st = Object.keys(t.statuses).map(function (k) { return k + ': ' + fmtInt(t.statuses[k]); });
    if (t.unattributed) { st.push('without X-Server-Pid: ' + fmtInt(t.unattributed)); }
    setText($('statuses'), st.length ? 'By status — ' + st.join(' · ') : '');

    var total = 0;
    t.ports.forEach(function (p) { total += p.count; });
    var ports = Array.from(t.ports.values()).sort(function (a, b) { return Number(a.port) - Number(b.port); });
    drawBars($('ports'), $('ports-empty'), ports, total, function (p) {
      return { id: 'port-' + p.port, name: 'port ' + p.port, attrs: { port: p.port, count: p.count }, count: p.count };
    });
    // Hosts (X-Server-Host), then their workers grouped under them: a host
    // that stops answering (its link down, its server killed) greys out.
    var hosts = Array.from(t.hosts.values()).sort(function (a, b) { return byName(a.host, b.host); });
    drawBars($('hosts'), $('hosts-empty'), hosts, total, function (h) {
      var st = liveness(h.last, at);
      return {
        id: 'host-' + h.host, name: h.host, badge: st === 'stopped' ? '' : st,
        attrs: { host: h.host, count: h.count, state: st }, count: h.count
      };
    });
    var pids = Array.from(t.pids.values()).sort(function (a, b) {
      return byName(a.host, b.host) || Number(a.port) - Number(b.port) || Number(a.pid) - Number(b.pid);
    });
    drawBars($('pids'), $('pids-empty'), pids, total, function (w) {
      var st = liveness(w.last, at);
      return {
        id: 'pid-' + w.key.replace('/', '-'), color: w.color,
        name: 'pid ' + w.pid + workerLabel(w.worker) + ' · port ' + w.port + (w.host ? ' · ' + w.host : ''),
        badge: st === 'stopped' ? '' : st,
        attrs: { pid: w.pid, port: w.port, host: w.host, worker: w.worker, count: w.count, state: st },
        count: w.count
      };
    });
    drawTimeline(t, at);
    flushAnnouncements();
  }

  // liveness is a bar's state: live (answered in the last SILENT_MS), silent
  // (no answer for that long during a run) or stopped (no run).
  function liveness(last, at) {
    if (!state.run) { return 'stopped'; }
    return at - last < SILENT_MS ? 'live' : 'silent';
  }

  // byName orders host names naturally: host2 before host10.
  function byName(a, b) { return a.localeCompare(b, 'en', { numeric: true }); }

  // workerLabel names X-Worker-Id: 0 is a plain FORK process, 1..N a worker.
  function workerLabel(id) {
    if (id === '') { return ''; }
    return id === '0' ? ' · FORK' : ' · worker ' + id;
  }

  function drawBars(list, empty, items, total, view) {
    empty.hidden = items.length > 0;
    var max = 0;
    items.forEach(function (x) { max = Math.max(max, x.count); });
    items.forEach(function (x) {
      var v = view(x);
      var li = document.getElementById(v.id);
      if (!li) {
        li = document.createElement('li');
        li.id = v.id;
        li.className = 'bar';
        li.innerHTML = '<div class="label"><span><span class="name"></span> <span class="badge" hidden></span></span>' +
          '<span class="num"></span></div>' +
          '<div class="track"><div class="fill"></div></div>';
        li.querySelector('.fill').setAttribute('aria-hidden', 'true');
        list.appendChild(li);
      }
      Object.keys(v.attrs).forEach(function (k) {
        var s = String(v.attrs[k]);
        if (li.dataset[k] !== s) { li.dataset[k] = s; }
      });
      setText(li.querySelector('.name'), v.name);
      var b = li.querySelector('.badge');
      b.hidden = !v.badge;
      if (v.badge) {
        setText(b, v.badge);
        if (b.className !== 'badge ' + v.badge) { b.className = 'badge ' + v.badge; }
      }
      var share = total ? (100 * v.count / total) : 0;
      setText(li.querySelector('.num'), fmtInt(v.count) + ' (' + share.toFixed(1) + '%)');
      var fill = li.querySelector('.fill');
      fill.style.width = (max ? 100 * v.count / max : 0).toFixed(2) + '%';
      if (v.color) { fill.style.backgroundColor = v.color; }
    });
    // Drop bars of a previous run (after Reset).
    Array.prototype.slice.call(list.children).forEach(function (li) {
      if (!items.some(function (x) { return view(x).id === li.id; })) { li.remove(); }
    });
    // Keep the list in the order of items (a new pid joins its host's group).
    items.forEach(function (x, i) {
      var li = document.getElementById(view(x).id);
      if (li && list.children[i] !== li) { list.insertBefore(li, list.children[i] || null); }
    });
  }

  function drawTimeline(t, at) {
    var c = $('timeline');
    var dpr = window.devicePixelRatio || 1;
    var w = Math.max(200, c.clientWidth), h = Math.max(80, c.clientHeight);
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    var g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var css = getComputedStyle(document.documentElement);
    var muted = css.getPropertyValue('--muted').trim() || '#555';
    var line = css.getPropertyValue('--line').trim() || '#ccc';
    var nowSec = t.startedAt ? Math.floor((at - t.startedAt) / 1000) : 0;
    var first = nowSec - TIMELINE_S + 1;
    var max = 1;
    for (var s = first; s <= nowSec; s++) {
      var m = t.seconds.get(s), sum = 0;
      if (m) { m.forEach(function (v) { sum += v; }); }
      max = Math.max(max, sum);
    }
    var ticks = axisTicks(max);
    var top = ticks[2];
    var left = 40, bottom = h - 18, plotH = bottom - 8, plotW = w - left - 6;
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = muted;
    g.strokeStyle = line;
    g.lineWidth = 1;
    ticks.forEach(function (v) {
      var y = Math.round(bottom - v / top * plotH) + 0.5;
      g.beginPath(); g.moveTo(left, y); g.lineTo(w - 6, y); g.stroke();
      g.textAlign = 'right'; g.textBaseline = 'middle';
      g.fillText(fmtInt(v), left - 5, y);
    });
    c.dataset.yTicks = ticks.join(',');
    g.textAlign = 'left'; g.textBaseline = 'alphabetic';
    g.fillText('−60 s', left, h - 4);
    g.textAlign = 'right';
    g.fillText('now', w - 6, h - 4);
    var bw = plotW / TIMELINE_S;
    var order = Array.from(t.pids.values());
    for (var i = 0; i < TIMELINE_S; i++) {
      var sec = first + i;
      var mm = t.seconds.get(sec);
      if (!mm) { continue; }
      var y0 = bottom;
      order.forEach(function (wk) {
        var v = mm.get(wk.key);
        if (!v) { return; }
        var bh = v / top * plotH;
        g.fillStyle = wk.color;
        g.fillRect(left + i * bw + 0.5, y0 - bh, Math.max(1, bw - 1), bh);
        y0 -= bh;
      });
    }
    // Legend (text, so the colours are not the only carrier of meaning).
    var legend = $('tl-legend');
    order.forEach(function (wk) {
      var id = 'lg-' + wk.key.replace('/', '-');
      if (document.getElementById(id)) { return; }
      var li = document.createElement('li');
      li.id = id;
      var sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.backgroundColor = wk.color;
      sw.setAttribute('aria-hidden', 'true');
      li.appendChild(sw);
      li.appendChild(document.createTextNode('pid ' + wk.pid + ' (port ' + wk.port + ')'));
      legend.appendChild(li);
    });
    Array.prototype.slice.call(legend.children).forEach(function (li) {
      if (!order.some(function (wk) { return 'lg-' + wk.key.replace('/', '-') === li.id; })) { li.remove(); }
    });
  }

  // axisTicks is the timeline's y-axis for a busiest second of max answers:
  // [0, middle, top], whole numbers, top a round number >= max (at least 2,
  // so that an empty timeline reads 0, 1, 2 and never 0, 1, 1).
  function axisTicks(max) {
    var top = niceCeil(Math.max(2, max));
    if (top % 2 !== 0) { top = niceCeil(top + 1); }
    return [0, top / 2, top];
  }

  function niceCeil(x) {
    var p = Math.pow(10, Math.floor(Math.log10(x)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= x) { return steps[i] * p; } }
    return 10 * p;
  }

  // ---- status and controls -------------------------------------------------

  // announce queues a message for the aria-live status line; render shows the
  // latest one, so a screen reader hears state changes, not every tick.
  function announce(msg) { state.events.push(msg); }

  function flushAnnouncements() {
    if (!state.events.length) { return; }
    var el = $('status');
    el.textContent = state.events[state.events.length - 1];
    el.dataset.state = state.run ? (state.run.active ? 'running' : 'stopping') : 'idle';
    state.events = [];
  }

  function syncControls() {
    var running = !!state.run;
    $('start').disabled = running;
    $('stop').disabled = !running || !state.run.active;
    ['path', 'rate', 'concurrency', 'limit'].forEach(function (id) { $(id).disabled = running; });
    document.documentElement.dataset.running = running ? 'true' : 'false';
    flushAnnouncements();
  }

  function showError(msg) {
    var el = $('form-error');
    el.textContent = msg || '';
    el.hidden = !msg;
  }

  function clearTally() {
    state.tally = newTally();
    $('ports').textContent = '';
    $('hosts').textContent = '';
    $('pids').textContent = '';
    $('tl-legend').textContent = '';
  }

  function reset() {
    if (state.run) { state.run.active = false; state.run = null; }
    clearTally();
    announce('Reset. Press Start to send requests.');
    syncControls();
    render();
  }

  function init() {
    $('cfg').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var cfg;
      try { cfg = readConfig(); } catch (e) { showError(e.message); return; }
      showError('');
      if (state.run) { return; }
      clearTally(); // each Start is a fresh run
      start(cfg);
      render();
    });
    $('stop').addEventListener('click', function () { stop(); render(); });
    $('reset').addEventListener('click', reset);
    var params = new URLSearchParams(location.search);
    // ?path=...&rate=...&concurrency=...&limit=...&autostart=1 fill the form (and start).
    ['path', 'rate', 'concurrency', 'limit'].forEach(function (k) {
      if (params.has(k)) { $(k).value = params.get(k); }
    });
    setInterval(render, 250);
    render();
    if (params.get('autostart') === '1') { autostart(); }
  }

  // autostart starts the run a link asks for (autostart=1), bounded: anyone
  // can send a link, and it must not make a visitor's browser send requests
  // without end. At most AUTOSTART_MAX requests (the form shows the bound)
  // and AUTOSTART_MS; pressing Start runs as the form says.
  function autostart() {
    var cfg;
    try { cfg = readConfig(); } catch (e) { showError(e.message); return; }
    if (cfg.limit === 0 || cfg.limit > AUTOSTART_MAX) {
      cfg.limit = AUTOSTART_MAX;
      $('limit').value = String(AUTOSTART_MAX);
    }
    showError('');
    clearTally();
    if (!start(cfg)) { return; }
    var run = state.run;
    setTimeout(function () {
      if (state.run === run && run.active) { stop(); render(); }
    }, AUTOSTART_MS);
    announce('Started by the link: ' + describe(cfg) + ', for ' + AUTOSTART_MS / 1000 +
      ' s at most. Press Start for a run of your own.');
    render();
  }

  window.lbBalance = {
    // start fills the form with opts ({path, rate, concurrency, limit}) and presses Start.
    start: function (opts) {
      opts = opts || {};
      ['path', 'rate', 'concurrency', 'limit'].forEach(function (k) {
        if (opts[k] !== undefined) { $(k).value = String(opts[k]); }
      });
      $('start').click();
      return !!state.run;
    },
    stop: function () { return stop(); },
    reset: reset,
    snapshot: snapshot
  };

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
