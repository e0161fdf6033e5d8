package cluster

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// createTable makes a connection table with entries entries (at most
// maxEntries), mapped into this process, with the memfd to hand to the
// workers (they map it with openTable).
func createTable(entries int) (*connTable, error) {
	if entries < 1 || entries > maxEntries {
		return nil, fmt.Errorf("cluster: bad connection table size %d", entries)
	}
	fd, err := unix.MemfdCreate("cluster-connections", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("connection table: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "connection table")
	if err := f.Truncate(tableSize); err != nil {
		f.Close()
		return nil, fmt.Errorf("connection table: size: %w", err)
	}
	t, err := mapTable(f, entries)
	if err != nil {
		f.Close()
		return nil, err
	}
	t.file = f
	t.word(0, 0).Store(tableMagic)
	return t, nil
}

// openTable maps the table in f, made by createTable with the same entries.
func openTable(f *os.File, entries int) (*connTable, error) {
	t, err := mapTable(f, entries)
	if err != nil {
		return nil, err
	}
	if t.word(0, 0).Load() != tableMagic {
		t.close()
		return nil, errors.New("cluster: not a connection table")
	}
	return t, nil
}

func mapTable(f *os.File, entries int) (*connTable, error) {
	if entries < 1 || entries > maxEntries {
		return nil, fmt.Errorf("cluster: bad connection table size %d", entries)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, tableSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("connection table: map: %w", err)
	}
	return &connTable{mem: mem, entries: entries}, nil
}

// close unmaps the table and closes the master's descriptor of it. No
// member of it may be used afterwards.
func (t *connTable) close() error {
	var err error
	if t.mem != nil {
		err = syscall.Munmap(t.mem)
		t.mem = nil
	}
	if t.file != nil {
		err = errors.Join(err, t.file.Close())
		t.file = nil
	}
	return err
}
