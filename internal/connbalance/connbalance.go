// Package connbalance keeps the open keep-alive connections of a CLUSTER's
// workers even, the way nginx's least_conn shares its counts between worker
// processes through a shared memory zone.
//
// With one SO_REUSEPORT socket per worker the kernel picks a worker once
// per connection, by a hash of its addresses. Connection-per-request load
// is spread evenly that way, but a keep-alive client (nginx's upstream
// pool, wrk, a browser) opens a few connections and keeps them: 64
// connections over 2 workers land 32 +- 4 apiece, and stay where they
// landed. So the master maps one small shared table (a memfd) into every
// worker; each worker keeps its count of open connections in its entry,
// and after answering a request a worker that holds more than its fair
// share, ceil(open connections in the cluster / live workers), closes that
// connection ("Connection: close"). The client reconnects and the kernel
// hashes it again; the counts converge in a few reconnects, and once they
// are even nobody is asked to reconnect. Without the table, the fallback is
// graceful.Options.MaxConnRequests (recycle every N requests), which
// spreads too, but pays a handshake every N requests forever.
//
// The table is one page: a header line (a magic number, so that a wrong
// descriptor is refused), then one 64-byte line per entry (one cache line
// each, so workers never share a line) holding the process's open
// connections and whether it is live. The master gives each worker process
// its own entry, marks it live once the worker is ready and not live once
// it is being replaced, and zeroes it once the process has exited, so a
// killed worker's count does not linger. Only live workers make up the
// share: while a slot's worker is down and another worker accepts for it,
// that worker is not asked to shed what only it can serve.
package connbalance

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	line  = 64                 // bytes per entry: one cache line
	size  = 4096               // the table is one page
	magic = 0x316e6e6f6362636c // marks a table made by Create
	// MaxEntries is how many worker processes a table can track at once.
	MaxEntries = size/line - 1
)

// Table is the shared table, mapped into this process.
type Table struct {
	mem     []byte
	entries int
}

// Create makes a table with entries entries (at most MaxEntries), mapped
// into this process, and the file to hand to the workers (they map it with
// Open).
func Create(entries int) (*Table, *os.File, error) {
	if entries < 1 || entries > MaxEntries {
		return nil, nil, fmt.Errorf("connbalance: bad entry count %d", entries)
	}
	fd, err := unix.MemfdCreate("lbserver-connections", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("connbalance: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "connection table")
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("connbalance: size the table: %w", err)
	}
	t, err := mapTable(f, entries)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	t.word(0, 0).Store(magic)
	return t, f, nil
}

// Open maps the table in f, made by Create with the same entries.
func Open(f *os.File, entries int) (*Table, error) {
	t, err := mapTable(f, entries)
	if err != nil {
		return nil, err
	}
	if t.word(0, 0).Load() != magic {
		t.Close()
		return nil, errors.New("connbalance: not a connection table")
	}
	return t, nil
}

func mapTable(f *os.File, entries int) (*Table, error) {
	if entries < 1 || entries > MaxEntries {
		return nil, fmt.Errorf("connbalance: bad entry count %d", entries)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("connbalance: map the table: %w", err)
	}
	return &Table{mem: mem, entries: entries}, nil
}

// Close unmaps the table. No Member of it may be used afterwards.
func (t *Table) Close() error {
	if t.mem == nil {
		return nil
	}
	err := syscall.Munmap(t.mem)
	t.mem = nil
	return err
}

// word is the k-th int64 of line i (line 0 is the header, entry e is line e+1).
func (t *Table) word(i, k int) *atomic.Int64 {
	// mem is page aligned and i*line+8*k a multiple of 8: the word is aligned.
	return (*atomic.Int64)(unsafe.Pointer(&t.mem[i*line+8*k]))
}

// The words of an entry's line.
const (
	wordOpen = 0 // open connections
	wordLive = 1 // 1 while the process is a ready, current worker
)

// Reset zeroes entry i; the master calls it once the process that used it
// has exited (so nothing else writes it).
func (t *Table) Reset(i int) {
	t.word(1+i, wordLive).Store(0)
	t.word(1+i, wordOpen).Store(0)
}

// SetLive marks entry i's process as a ready, current worker (or not).
func (t *Table) SetLive(i int, live bool) {
	var v int64
	if live {
		v = 1
	}
	t.word(1+i, wordLive).Store(v)
}

// Entries is how many entries the table has.
func (t *Table) Entries() int { return t.entries }

// Count is the number of open connections counted in entry i.
func (t *Table) Count(i int) int64 { return t.word(1+i, wordOpen).Load() }

// Total is the number of open connections over every entry, and how many
// entries are live.
func (t *Table) Total() (open int64, live int64) {
	for i := range t.entries {
		open += t.word(1+i, wordOpen).Load()
		live += t.word(1+i, wordLive).Load()
	}
	return open, live
}

// Member is one worker process's entry.
type Member struct {
	t    *Table
	mine *atomic.Int64
}

// Member returns the handle of entry i for the process that owns it.
func (t *Table) Member(i int) (*Member, error) {
	if i < 0 || i >= t.entries {
		return nil, errors.New("connbalance: entry out of range")
	}
	return &Member{t: t, mine: t.word(1+i, wordOpen)}, nil
}

// Opened counts a connection this process accepted.
func (m *Member) Opened() { m.mine.Add(1) }

// Left counts a connection of this process that closed, or that was told
// to close (count it once).
func (m *Member) Left() { m.mine.Add(-1) }

// TryShed reports whether this process holds more than its fair share of
// the cluster's open connections, ceil(total/live workers); if so it counts one
// connection as gone (the caller closes it after its response, and must
// not call Left for it). Concurrent callers shed one connection each while
// the share is exceeded, never more.
func (m *Member) TryShed() bool {
	for {
		mine := m.mine.Load()
		total, live := m.t.Total()
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
