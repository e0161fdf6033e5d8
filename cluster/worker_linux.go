package cluster

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// workerFromEnv returns the Worker this process is, from the descriptors
// and environment its master started it with (see spawn.go), or
// errNotWorker. It unsets the variables, so that this worker's own children
// never take them for theirs.
func workerFromEnv(cfg *Config) (*Worker, error) {
	get := func(name string) string {
		v := os.Getenv(cfg.EnvPrefix + name)
		os.Unsetenv(cfg.EnvPrefix + name)
		return v
	}
	v := get(envWorkerID)
	if v == "" {
		return nil, errNotWorker
	}
	for _, name := range envNames[1:] {
		defer os.Unsetenv(cfg.EnvPrefix + name)
	}
	id, err := strconv.Atoi(v)
	if err != nil || id < 1 {
		return nil, fmt.Errorf("cluster: bad %s%s=%q", cfg.EnvPrefix, envWorkerID, v)
	}
	for fd := fdListener; fd <= fdLifeline; fd++ {
		syscall.CloseOnExec(fd)
	}
	lf := os.NewFile(fdListener, "listener")
	ln, err := net.FileListener(lf)
	if err != nil {
		return nil, fmt.Errorf("worker %d: inherited listener: %w", id, err)
	}
	_ = lf.Close() // FileListener holds its own duplicate
	// Non-blocking, so that the runtime poller owns the lifeline and Close
	// interrupts a pending Read.
	if err := syscall.SetNonblock(fdLifeline, true); err != nil {
		return nil, fmt.Errorf("worker %d: lifeline: %w", id, err)
	}
	w := &Worker{
		id:       id,
		cfg:      cfg,
		lns:      []net.Listener{ln},
		ready:    os.NewFile(fdReady, "ready"),
		lifeline: os.NewFile(fdLifeline, "lifeline"),
		slots:    map[int]*os.File{},
	}
	fdEnv := func(name string) (int, error) {
		v := os.Getenv(cfg.EnvPrefix + name)
		if v == "" {
			return -1, nil
		}
		fd, err := strconv.Atoi(v)
		if err != nil || fd <= fdLifeline {
			return -1, fmt.Errorf("worker %d: bad %s%s=%q", id, cfg.EnvPrefix, name, v)
		}
		syscall.CloseOnExec(fd)
		return fd, nil
	}
	if fd, err := fdEnv(envPrivateFD); err != nil {
		return nil, err
	} else if fd >= 0 {
		pf := os.NewFile(uintptr(fd), "private")
		if w.private, err = net.FileListener(pf); err != nil {
			return nil, fmt.Errorf("worker %d: private listener: %w", id, err)
		}
		w.private = onlyOwners(w.private) // for the master: its user, or root
		_ = pf.Close()
	}
	if fd, err := fdEnv(envMessagesFD); err != nil {
		return nil, err
	} else if fd >= 0 {
		if w.msgConn, err = messageConn(fd); err != nil {
			return nil, fmt.Errorf("worker %d: message channel: %w", id, err)
		}
	}
	if fd, err := fdEnv(envConnTableFD); err != nil {
		return nil, err
	} else if fd >= 0 {
		if w.balancer, err = openMember(fd, os.Getenv(cfg.EnvPrefix+envConnTableEntry)); err != nil {
			return nil, fmt.Errorf("worker %d: %w", id, err)
		}
	}
	if v := os.Getenv(cfg.EnvPrefix + envSlots); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAdoptSlots {
			return nil, fmt.Errorf("worker %d: bad %s%s=%q", id, cfg.EnvPrefix, envSlots, v)
		}
		for k := 1; k <= n; k++ {
			fd := fdLifeline + k
			syscall.CloseOnExec(fd)
			w.slots[k] = os.NewFile(uintptr(fd), "slot "+strconv.Itoa(k))
		}
	}
	return w, nil
}

// openMember maps the connection table at fd and returns the entry named
// by entry ("i/n").
func openMember(fd int, entry string) (*member, error) {
	is, ns, _ := strings.Cut(entry, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if err1 != nil || err2 != nil || i < 0 || i >= n {
		return nil, fmt.Errorf("bad connection table entry %q", entry)
	}
	f := os.NewFile(uintptr(fd), "connection table")
	defer f.Close() // the mapping outlives the descriptor
	t, err := openTable(f, n)
	if err != nil {
		return nil, err
	}
	return t.member(i) // the mapping lives as long as the process
}
