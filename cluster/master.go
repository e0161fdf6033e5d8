package cluster

import (
	"fmt"
	"net"
	"os"
)

// Master is the running master, for Config.OnMaster: its address, its
// counters and its workers, and reloads on demand.
type Master struct {
	l       *loop
	addr    net.Addr
	sockets []*os.File
}

// listen binds (or takes) the sockets and makes the connection table:
// everything the loop needs, released by close.
func listen(cfg Config, s sys) (*Master, error) {
	n := cfg.Workers
	if cfg.SharedSocket {
		n = 1
	}
	var files []*os.File
	var addr net.Addr
	var err error
	if len(cfg.Files) > 0 {
		if len(cfg.Files) != 1 && len(cfg.Files) != cfg.Workers {
			return nil, fmt.Errorf("cluster: %d sockets given for %d workers: %w", len(cfg.Files), cfg.Workers, ErrSocketCount)
		}
		if len(cfg.Files) > 1 {
			cfg.MaxWorkers = cfg.Workers // no socket of our own to add
		}
		files, addr, err = adoptFiles(cfg.Files)
	} else {
		files, addr, err = listenSockets(cfg.Addr, n, cfg.ShareExisting, !cfg.SharedSocket)
		if err == nil && !cfg.SharedSocket && cfg.MaxWorkers > n {
			// The sockets of the slots Scale may add: bound, not listening.
			var spare []*os.File
			if spare, err = reserveSockets(addr, cfg.MaxWorkers-n); err != nil {
				closeFiles(files)
			}
			files = append(files, spare...)
		}
	}
	if err != nil {
		return nil, err
	}
	return newMaster(cfg, s, files, addr)
}

// newMaster makes the connection table and the loop on the sockets files
// (bound to addr); Master.close releases them.
func newMaster(cfg Config, s sys, files []*os.File, addr net.Addr) (*Master, error) {
	var table *connTable
	var err error
	if (!cfg.NoSpread && cfg.MaxWorkers > 1) || cfg.MaxRequests > 0 {
		// Room for every slot's worker and its replacement during a reload,
		// twice over; the table also counts the requests for MaxRequests.
		if table, err = createTable(min(maxEntries, 4*cfg.MaxWorkers)); err != nil {
			cfg.Logger.Warn("no connection table: keep-alive connections are spread by recycling only", "err", err)
			table = nil
		}
	}
	m := &Master{addr: addr, sockets: files}
	m.l = newLoop(cfg, s, files, table)
	m.l.addr = addr.String()
	m.l.ownSockets = len(cfg.Files) == 0
	return m, nil
}

// close releases the sockets and the connection table.
func (m *Master) close() {
	closeFiles(m.sockets)
	if m.l.table != nil {
		_ = m.l.table.close()
	}
}

// Addr is the address the workers' sockets are bound to.
func (m *Master) Addr() net.Addr { return m.addr }

// Reload asks for a rolling reload, as SIGHUP does. It never blocks; it
// may be called from Config.OnMaster (the reload then starts with the loop).
func (m *Master) Reload() {
	select {
	case m.l.reloads <- struct{}{}:
	default: // one is pending already
	}
}

// Stats are the master's counters, as of its last event.
type Stats struct {
	Starts   int64 // workers started, for any reason
	Exits    int64 // workers exited, for any reason
	Restarts int64 // workers started to replace one that died
	Reloads  int64 // rolling reloads completed
	Live     int64 // workers running now
	Workers  int64 // slots now: Config.Workers, then what Scale, SIGTTIN and SIGTTOU made it
	Adopted  int64 // slots without a ready worker, accepted for by another worker now
}

// Stats returns the master's counters.
func (m *Master) Stats() Stats { return m.l.snap.Load().stats }

// WorkerInfo describes a live worker process.
type WorkerInfo struct {
	Slot        int
	Pid         int
	Ready       bool   // it reported ready
	Current     bool   // it is its slot's current worker (false while it is replaced, or a reload's new one not yet ready)
	PrivateAddr string // address of its private unix socket (Config.PrivateSockets); "" if none
	// Conns is how many open connections it counts in the connection
	// table (see Config.NoSpread); -1 when it has no entry.
	Conns int64
	entry int
	msgs  net.Conn // the master's end of its message channel; nil if none
}

// Workers lists the live workers by slot, then pid.
func (m *Master) Workers() []WorkerInfo {
	ws := m.l.snap.Load().workers
	out := make([]WorkerInfo, len(ws))
	for i, w := range ws {
		w.Conns = -1
		if w.entry >= 0 && m.l.table != nil {
			w.Conns = m.l.table.count(w.entry)
		}
		out[i] = w
	}
	return out
}
