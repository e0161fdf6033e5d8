package cluster

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The number of workers changes at run time: Master.Scale, SIGTTIN (one
// more) and SIGTTOU (one fewer), as in Gunicorn and Unicorn. Slots are
// numbered 1..n; a new slot takes the next number and the last slot goes
// first.
//
// Every slot a master may ever use has its socket from the start, up to
// Config.MaxWorkers, so that every worker holds every slot's socket and
// can adopt any of them: the sockets beyond Config.Workers are bound to
// the address but not listening, and a socket that does not listen is not
// in the port's SO_REUSEPORT group, so the kernel gives it no connection.
// Adding a slot makes its socket listen, has a ready worker adopt it at
// once and starts the slot's own worker, which takes it over when ready.
//
// Removing a slot must not lose the connections queued on its socket, and
// closing a listening SO_REUSEPORT socket resets every connection in its
// queue. So the socket is never closed: it keeps listening, and a worker
// of the remaining slots adopts it for good (the slot's own worker gets
// SIGTERM and drains). The cost: the kernel keeps hashing that slot's share
// of new connections to it, so the adopter accepts for two slots (with 4
// slots scaled to 3, one worker gets two fourths of new connections; the
// connection table still evens out keep-alive connections); scaling up
// again gives the slot back to a worker of its own. The other ways cost
// more: closing the socket with net.ipv4.tcp_migrate_req=1 moves its queue
// to the other sockets, but that is a machine-wide setting (0 by default)
// that a library must not change; a BPF program attached to the group
// (SO_ATTACH_REUSEPORT_EBPF) could steer new connections away before the
// close, but connections in their handshake at the close are still lost
// without tcp_migrate_req, and it needs CAP_BPF or a cBPF index
// bookkeeping that every close reorders.

// ErrScale is wrapped by Master.Scale's error for a count out of range.
var ErrScale = errors.New("worker count out of range")

// scaleState is the slots not in use and the count asked for, owned by the
// loop's goroutine.
type scaleState struct {
	idle  []*slot           // slots not in use, by id: retired (listening, adopted) or spare (not listening)
	quiet map[*os.File]bool // sockets bound but not listening yet
	max   int               // Config.MaxWorkers, or fewer when the sockets were given
	want  int               // the count asked for; 0 once applied
}

type evScale struct{ n int }

// initScale makes the spare slots, for sockets[len(l.slots):]. A spare
// socket that listens already (handed over by an upgrade from a master
// that had retired its slot) is a retired slot: it is adopted for good as
// soon as a worker is ready, so that what is queued there is served.
func (l *loop) initScale(capacity int) {
	l.scale.quiet = map[*os.File]bool{}
	for i := len(l.slots); i < capacity; i++ {
		sock := l.sockets[i%len(l.sockets)]
		s := &slot{id: i + 1, sock: sock}
		if i < len(l.sockets) {
			if l.sys.listening != nil && l.sys.listening(sock) {
				s.served = true
			} else {
				l.scale.quiet[sock] = true
			}
		}
		l.scale.idle = append(l.scale.idle, s)
	}
	l.scale.max = len(l.slots) + len(l.scale.idle)
}

// activeSlot is slot id if it is in use, else nil.
func (l *loop) activeSlot(id int) *slot {
	if id < 1 || id > len(l.slots) {
		return nil
	}
	return l.slots[id-1]
}

// adoptionSlots are the slots whose sockets listen: those in use and those
// retired, which need an adopter for good.
func (l *loop) adoptionSlots() []*slot {
	out := l.slots
	for _, s := range l.scale.idle {
		if !l.scale.quiet[s.sock] && s.served {
			out = append(slices.Clip(out), s)
		}
	}
	return out
}

func (l *loop) onScale(n int) {
	if l.stopping {
		return
	}
	if n < 1 || n > l.scale.max {
		l.log.Warn("scale out of range; ignored", "workers", n, "max", l.scale.max)
		return
	}
	l.log.Info("scale requested", "workers", n, "now", len(l.slots))
	l.scale.want = n
}

// onScaleSignal: SIGTTIN adds a worker, SIGTTOU removes one.
func (l *loop) onScaleSignal(sig os.Signal) {
	n := l.scale.want
	if n == 0 {
		n = len(l.slots)
	}
	name := "SIGTTOU"
	if up, _ := scaleSignals(); sig == up {
		n++
		name = "SIGTTIN"
	} else {
		n--
	}
	l.log.Info("scale signal", "signal", name, "workers", n)
	if n >= 1 && n <= l.scale.max {
		l.scale.want = n
	} else {
		l.log.Warn("scale out of range; ignored", "workers", n, "max", l.scale.max)
	}
}

// applyScale adds or removes slots to reach the count asked for; the
// caller made sure that no reload nor replacement runs.
func (l *loop) applyScale() {
	want := l.scale.want
	if want == 0 {
		return
	}
	l.scale.want = 0
	for len(l.slots) < want && len(l.scale.idle) > 0 {
		if !l.addSlot() {
			break
		}
	}
	for len(l.slots) > want {
		l.removeSlot()
	}
	l.rebalance()
	l.tellAdoptions() // the count of workers is part of every worker's state
}

// addSlot puts the lowest idle slot in use: its socket listens, a ready
// worker adopts it until its own worker is ready.
func (l *loop) addSlot() bool {
	s := l.scale.idle[0]
	if l.scale.quiet[s.sock] {
		if err := l.sys.listen(s.sock); err != nil {
			l.log.Error("add worker: listen", "worker", s.id, "err", err)
			return false
		}
		delete(l.scale.quiet, s.sock)
	}
	l.scale.idle = l.scale.idle[1:]
	s.served = true // its socket listens: adopt it until its worker is ready
	s.crashes = nil
	l.slots = append(l.slots, s)
	l.log.Info("worker added", "worker", s.id, "workers", len(l.slots))
	l.rebalance()
	l.fill(s, false)
	return true
}

// removeSlot takes the last slot out of use: a worker of another slot
// adopts its socket for good, its own worker drains.
func (l *loop) removeSlot() {
	s := l.slots[len(l.slots)-1]
	l.slots = l.slots[:len(l.slots)-1]
	l.scale.idle = append([]*slot{s}, l.scale.idle...)
	l.stopTimer(&s.restart)
	s.served = true
	c := s.cur
	s.cur = nil
	l.log.Info("worker removed", "worker", s.id, "worker_pid", pidOf(c), "workers", len(l.slots))
	l.rebalance() // another worker accepts on its socket before its worker stops
	if c != nil {
		c.why = ExitScaledDown
		l.terminate(c)
	}
}

// Scale sets the number of workers (slots) to n, 1 to Config.MaxWorkers,
// while serving: new slots get a worker each; the last slots' workers
// drain and a remaining worker accepts on their sockets, so that no queued
// connection is lost. It returns at once; the change is made between
// rolling reloads and worker replacements. SIGTTIN and SIGTTOU to the
// master add and remove one worker.
func (m *Master) Scale(n int) error {
	if max := m.l.scale.max; n < 1 || n > max {
		return fmt.Errorf("scale to %d workers: %w (1 to %d, the master's MaxWorkers)", n, ErrScale, max)
	}
	return m.l.ask(evScale{n})
}

// RestartWorker replaces the worker of slot id the way a rolling reload
// does, that slot only: a new worker starts, and once it is ready the old
// one drains. It returns at once; replacements run one at a time.
func (m *Master) RestartWorker(id int) error {
	if n := m.Stats().Workers; id < 1 || int64(id) > n {
		return fmt.Errorf("restart worker %d: %w (workers are 1 to %d)", id, ErrNoWorker, n)
	}
	return m.l.ask(evRestartWorker{id})
}

// ErrNoWorker is wrapped by RestartWorker's error for a slot not in use.
var ErrNoWorker = errors.New("no such worker")

// errBusy: too many requests wait for the loop.
var errBusy = errors.New("cluster: too many requests pending in the master; try again")

// ask hands ev to the loop without blocking, even before the loop runs.
func (l *loop) ask(ev event) error {
	select {
	case l.asks <- ev:
		return nil
	default:
		return errBusy
	}
}

// controlScale answers the control commands "scale N" and "restart-worker
// ID" (from Scale and RestartWorker in another process): "ok" once the
// master has taken the request, or "error WHY". ok is false for any other
// command.
func (l *loop) controlScale(cmd string) (reply string, ok bool) {
	verb, arg, _ := strings.Cut(cmd, " ")
	n, err := strconv.Atoi(arg)
	m := &Master{l: l}
	switch verb {
	case "scale":
		if err == nil {
			err = m.Scale(n)
		}
	case "restart-worker":
		if err == nil {
			err = m.RestartWorker(n)
		}
	default:
		return "", false
	}
	if err != nil {
		return "error " + err.Error(), true
	}
	return "ok", true
}
