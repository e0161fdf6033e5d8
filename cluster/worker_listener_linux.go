package cluster

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// slotListener is the listener Worker.Listeners returns: it accepts on the
// slot's own socket and, while the master has this worker adopt other
// slots (their workers are down), on theirs too, so that adoption works
// for any server built on Listeners, not only for Serve.
//
// No connection is taken before Accept asks for one: a goroutine per
// socket waits until the socket has a connection queued (without accepting
// it) and wakes Accept, which takes it with one non-blocking accept. A
// connection is never held by the listener when it is closed, and one
// queued on an adopted slot stays there when that slot is released.
type slotListener struct {
	own    net.Listener
	wake   chan struct{} // one token: some socket may have a connection queued
	closed chan struct{}

	mu      sync.Mutex      // guards srcs, started, next, shut
	srcs    map[int]*source // by slot; 0 is the slot's own socket
	started bool            // Accept was called: the waiters run
	next    int             // where the next Accept starts looking, for fairness
	shut    bool
	wg      sync.WaitGroup // the waiters
}

// source is one socket a slotListener accepts on.
type source struct {
	ln    net.Listener
	wf    *os.File        // a duplicate of ln's descriptor, which the runtime polls (a listener's RawConn cannot wait)
	rc    syscall.RawConn // wf's
	ready bool            // a connection may be queued; guarded by slotListener.mu
	again chan struct{}   // the queue was found empty: wait for the next one
	done  chan struct{}   // closed when the source is removed
}

func newSlotListener(own net.Listener) *slotListener {
	l := &slotListener{own: own, wake: make(chan struct{}, 1), closed: make(chan struct{}), srcs: map[int]*source{}}
	if err := l.addSource(0, own); err != nil {
		// Not a socket the runtime polls (never for what a master hands
		// on): accept on it as it is.
		l.srcs = nil
	}
	return l
}

func (l *slotListener) addSource(k int, ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return errors.New("not a socket")
	}
	lrc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	nfd := -1
	var derr error
	if err := lrc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	wf := os.NewFile(uintptr(nfd), "listener") // non-blocking already: polled
	rc, err := wf.SyscallConn()
	if err != nil {
		wf.Close()
		return err
	}
	s := &source{ln: ln, wf: wf, rc: rc, again: make(chan struct{}, 1), done: make(chan struct{})}
	l.srcs[k] = s
	if l.started {
		l.wg.Go(func() { l.watch(s) })
	}
	return nil
}

// adopt accepts on ln (slot k's socket) too, until the returned func is
// called (or the listener is closed), which closes ln.
func (l *slotListener) adopt(k int, ln net.Listener) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shut || l.srcs == nil {
		ln.Close()
		return func() {}
	}
	if err := l.addSource(k, ln); err != nil {
		ln.Close()
		return func() {}
	}
	s := l.srcs[k]
	return func() {
		l.mu.Lock()
		if l.srcs[k] == s {
			delete(l.srcs, k)
		}
		l.mu.Unlock()
		close(s.done)
		s.ln.Close()
		s.wf.Close()
	}
}

// watch waits until s has a connection queued, wakes Accept, and waits
// again once Accept found s's queue empty; it returns when s is closed.
func (l *slotListener) watch(s *source) {
	for {
		err := s.rc.Read(func(fd uintptr) bool {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(p, 0)
			return n > 0 // false: the runtime waits until the socket is readable
		})
		if err != nil {
			return // closed
		}
		l.mu.Lock()
		s.ready = true
		l.mu.Unlock()
		l.poke()
		select {
		case <-s.again:
		case <-s.done:
			return
		case <-l.closed:
			return
		}
	}
}

func (l *slotListener) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Accept waits for a connection on the slot's socket or an adopted one.
func (l *slotListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.srcs == nil {
		l.mu.Unlock()
		return l.own.Accept()
	}
	if !l.started && !l.shut {
		l.started = true
		for _, s := range l.srcs {
			l.wg.Go(func() { l.watch(s) })
		}
	}
	l.mu.Unlock()
	for {
		select {
		case <-l.closed:
			return nil, &net.OpError{Op: "accept", Net: l.own.Addr().Network(), Addr: l.own.Addr(), Err: net.ErrClosed}
		default:
		}
		l.mu.Lock()
		var ready []*source
		for _, s := range l.srcs {
			if s.ready {
				ready = append(ready, s)
			}
		}
		l.next++
		start := l.next
		l.mu.Unlock()
		for i := range ready {
			s := ready[(start+i)%len(ready)]
			c, err := acceptNow(s.rc)
			if err == nil {
				l.poke() // more may be queued, for another Accept
				return c, nil
			}
			l.mu.Lock()
			s.ready = false
			l.mu.Unlock()
			select {
			case s.again <- struct{}{}:
			default:
			}
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.ECONNABORTED) && !errors.Is(err, net.ErrClosed) && s.ln == l.own {
				return nil, &net.OpError{Op: "accept", Net: l.own.Addr().Network(), Addr: l.own.Addr(), Err: err}
			}
		}
		select {
		case <-l.wake:
		case <-l.closed:
		}
	}
}

// acceptNow takes one connection queued on the socket, or fails with
// EAGAIN at once.
func acceptNow(rc syscall.RawConn) (net.Conn, error) {
	nfd := -1
	var aerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if aerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, aerr
	}
	f := os.NewFile(uintptr(nfd), "connection")
	defer f.Close() // FileConn holds its own duplicate
	return net.FileConn(f)
}

// Close closes the slot's socket (the worker's copy: the master keeps
// its own) and every adopted one, and waits for the waiters.
func (l *slotListener) Close() error {
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		return nil
	}
	l.shut = true
	close(l.closed)
	srcs := l.srcs
	l.srcs = map[int]*source{}
	l.mu.Unlock()
	err := l.own.Close()
	for k, s := range srcs {
		if k != 0 {
			s.ln.Close()
		}
		s.wf.Close()
	}
	l.wg.Wait()
	return err
}

// Addr is the slot's address.
func (l *slotListener) Addr() net.Addr { return l.own.Addr() }
