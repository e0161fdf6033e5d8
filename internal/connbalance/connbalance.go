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
// share, ceil(open connections in the cluster / workers), closes that
// connection ("Connection: close"). The client reconnects and the kernel
// hashes it again; the counts converge in a few reconnects, and once they
// are even nobody is asked to reconnect. Without the table, the fallback is
// graceful.Options.MaxConnRequests (recycle every N requests), which
// spreads too, but pays a handshake every N requests forever.
//
// The table is one page: a header line holding the number of workers,
// then one 64-byte line per entry (one cache line each, so workers never
// share a line). The master gives each worker process its own entry and
// zeroes it once that process has exited, so a killed worker's count does
// not linger.
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
	line = 64   // bytes per entry: one cache line
	size = 4096 // the table is one page
	// MaxEntries is how many worker processes a table can track at once.
	MaxEntries = size/line - 1
)

// Table is the shared table, mapped into this process.
type Table struct {
	mem     []byte
	entries int
}

// Create makes a table for workers worker slots with entries entries (at
// most MaxEntries), mapped into this process, and the file to hand to the
// workers (they map it with Open).
func Create(workers, entries int) (*Table, *os.File, error) {
	if workers < 1 || entries < 1 || entries > MaxEntries {
		return nil, nil, fmt.Errorf("connbalance: bad table size: %d workers, %d entries", workers, entries)
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
	t, err := Open(f, entries)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	t.word(0).Store(int64(workers))
	return t, f, nil
}

// Open maps the table in f, made by Create with the same entries.
func Open(f *os.File, entries int) (*Table, error) {
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

// word is the int64 at the start of line i (0 is the header).
func (t *Table) word(i int) *atomic.Int64 {
	// mem is page aligned and i*line a multiple of 8: the word is aligned.
	return (*atomic.Int64)(unsafe.Pointer(&t.mem[i*line]))
}

// Reset zeroes entry i; the master calls it once the process that used it
// has exited (so nothing else writes it).
func (t *Table) Reset(i int) { t.word(1 + i).Store(0) }

// Workers is the number of worker slots the table was made for.
func (t *Table) Workers() int { return int(t.word(0).Load()) }

// Entries is how many entries the table has.
func (t *Table) Entries() int { return t.entries }

// Count is the number of open connections counted in entry i.
func (t *Table) Count(i int) int64 { return t.word(1 + i).Load() }

// Total is the number of open connections over every entry.
func (t *Table) Total() int64 {
	var n int64
	for i := range t.entries {
		n += t.word(1 + i).Load()
	}
	return n
}

// Member is one worker process's entry.
type Member struct {
	t       *Table
	mine    *atomic.Int64
	workers int64
}

// Member returns the handle of entry i for the process that owns it.
func (t *Table) Member(i int) (*Member, error) {
	if i < 0 || i >= t.entries {
		return nil, errors.New("connbalance: entry out of range")
	}
	w := int64(t.Workers())
	if w < 1 {
		return nil, errors.New("connbalance: table has no workers (not made by Create?)")
	}
	return &Member{t: t, mine: t.word(1 + i), workers: w}, nil
}

// Opened counts a connection this process accepted.
func (m *Member) Opened() { m.mine.Add(1) }

// Left counts a connection of this process that closed, or that was told
// to close (count it once).
func (m *Member) Left() { m.mine.Add(-1) }

// TryShed reports whether this process holds more than its fair share of
// the cluster's open connections, ceil(total/workers); if so it counts one
// connection as gone (the caller closes it after its response, and must
// not call Left for it). Concurrent callers shed one connection each while
// the share is exceeded, never more.
func (m *Member) TryShed() bool {
	for {
		mine := m.mine.Load()
		total := m.t.Total()
		fair := (total + m.workers - 1) / m.workers
		if mine <= fair {
			return false
		}
		if m.mine.CompareAndSwap(mine, mine-1) {
			return true
		}
	}
}
