package cluster

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"
)

// takeEntry reserves a free entry of the connection table for a new
// worker; -1 if there is no table or no free entry (that worker only loses
// the balancing of keep-alive connections, not its service).
func (l *loop) takeEntry() int {
	for i, used := range l.entries {
		if !used {
			l.entries[i] = true
			return i
		}
	}
	return -1
}

// releaseEntry zeroes and frees the entry of a worker that has exited (or
// never started), so that its count of connections does not linger.
func (l *loop) releaseEntry(i int) {
	if i < 0 || l.table == nil {
		return
	}
	l.table.reset(i)
	l.entries[i] = false
}

// setLive marks c's entry live (a ready, current worker: it counts in the
// fair share) or not (draining, replaced).
func (l *loop) setLive(c *child, live bool) {
	if c.entry >= 0 && l.table != nil {
		l.table.setLive(c.entry, live)
	}
}

// The connection table keeps the open keep-alive connections of the
// workers even, the way nginx's least_conn shares its counts between worker
// processes through a shared memory zone.
//
// With one SO_REUSEPORT socket per worker the kernel picks a worker once per
// connection, by a hash of its addresses. Connection-per-request load is
// spread evenly that way, but a keep-alive client (nginx's upstream pool,
// wrk, a browser) opens a few connections and keeps them: 64 connections
// over 2 workers land 32 +- 4 apiece, and stay where they landed. So the
// master maps one small shared table (a memfd) into every worker; each
// worker keeps its count of open connections in its entry, and after
// answering a request a worker that holds more than its fair share,
// ceil(open connections in the cluster / live workers), closes that
// connection ("Connection: close"). The client reconnects and the kernel
// hashes it again; the counts converge in a few reconnects, and once they are
// even nobody is asked to reconnect.
//
// The table is one page: a header line (a magic number, so that a wrong
// descriptor is refused), then one 64-byte line per entry (one cache line
// each, so workers never share a line) holding the process's open
// connections and whether it is live. The master gives each worker process
// its own entry, marks it live once the worker is ready and current and not
// live once it is being replaced, and zeroes it once the process has exited,
// so a killed worker's count does not linger. Only live workers make up the
// share: while a slot's worker is down and another worker accepts for it,
// that worker is not asked to shed what only it can serve.

const (
	tableLine  = 64                 // bytes per entry: one cache line
	tableSize  = 4096               // the table is one page
	tableMagic = 0x316e6e6f6362636c // marks a table made by createTable
	// maxEntries is how many worker processes a table can track at once.
	maxEntries = tableSize/tableLine - 1
)

// The words of an entry's line.
const (
	wordOpen = 0 // open connections
	wordLive = 1 // 1 while the process is a ready, current worker
	wordReqs = 2 // requests served (Config.MaxRequests)
)

// connTable is the shared table, mapped into this process.
type connTable struct {
	mem     []byte
	entries int
	file    *os.File // the master's descriptor of the table, handed to workers; nil in a worker
}

// word is the k-th int64 of line i (line 0 is the header, entry e is line e+1).
func (t *connTable) word(i, k int) *atomic.Int64 {
	// mem is page aligned and i*line+8*k a multiple of 8: the word is aligned.
	return (*atomic.Int64)(unsafe.Pointer(&t.mem[i*tableLine+8*k]))
}

// reset zeroes entry i; the master calls it once the process that used it
// has exited (so nothing else writes it).
func (t *connTable) reset(i int) {
	t.word(1+i, wordLive).Store(0)
	t.word(1+i, wordOpen).Store(0)
	t.word(1+i, wordReqs).Store(0)
}

// requests is the number of requests entry i's process has served.
func (t *connTable) requests(i int) int64 { return t.word(1+i, wordReqs).Load() }

// setLive marks entry i's process as a ready, current worker (or not).
func (t *connTable) setLive(i int, live bool) {
	var v int64
	if live {
		v = 1
	}
	t.word(1+i, wordLive).Store(v)
}

// count is the number of open connections counted in entry i.
func (t *connTable) count(i int) int64 { return t.word(1+i, wordOpen).Load() }

// total is the number of open connections over every entry, and how many
// entries are live.
func (t *connTable) total() (open int64, live int64) {
	for i := range t.entries {
		open += t.word(1+i, wordOpen).Load()
		live += t.word(1+i, wordLive).Load()
	}
	return open, live
}

// member is one worker process's entry; it is the drain.Balancer of the
// worker's server.
type member struct {
	t    *connTable
	i    int
	mine *atomic.Int64
}

// member returns the handle of entry i for the process that owns it.
func (t *connTable) member(i int) (*member, error) {
	if i < 0 || i >= t.entries {
		return nil, errors.New("cluster: connection table entry out of range")
	}
	return &member{t: t, i: i, mine: t.word(1+i, wordOpen)}, nil
}

// served counts a request this process served.
func (m *member) served() { m.t.word(1+m.i, wordReqs).Add(1) }

// Opened counts a connection this process accepted.
func (m *member) Opened() { m.mine.Add(1) }

// Left counts a connection of this process that closed, or that was told
// to close (count it once).
func (m *member) Left() { m.mine.Add(-1) }

// TryShed reports whether this process holds more than its fair share of the
// cluster's open connections, ceil(total/live workers); if so it counts one
// connection as gone (the caller closes it after its response, and must not
// call Left for it). Concurrent callers shed one connection each while the
// share is exceeded, never more.
func (m *member) TryShed() bool {
	for {
		mine := m.mine.Load()
		total, live := m.t.total()
		live = max(live, 1)
		fair := (total + live - 1) / live
		if mine <= fair {
			return false
		}
		if m.mine.CompareAndSwap(mine, mine-1) {
			return true
		}
	}
}
