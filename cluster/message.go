package cluster

import (
	"errors"
	"net"
	"sync"
)

// Messages between the master and its workers, both ways, as in Node's
// cluster (worker.send and process.on('message')): with Config.Messages
// every worker gets a private channel to the master (a SOCK_SEQPACKET
// socket pair: each Send is one message, never merged nor split). A
// message is at most MaxMessage bytes. Nobody waits for a slow reader: a
// Send finds room in the kernel's buffer of the channel at once or fails
// with ErrMessageQueueFull, so the master's loop, which reads every
// worker's messages and hands them to Config.OnMessage, never waits on a
// worker, and a worker that reads nothing only loses what is sent to it.

// MaxMessage is the largest message, in bytes.
const MaxMessage = 64 << 10

// Message errors.
var (
	ErrMessageTooLarge  = errors.New("cluster: message larger than MaxMessage")
	ErrMessageQueueFull = errors.New("cluster: the reader's message queue is full; try again later")
	ErrNoMessages       = errors.New("cluster: no message channel (Config.Messages is off, or the worker is gone)")
)

// Message is one message from a worker (Config.OnMessage).
type Message struct {
	Slot int    // the sender's slot
	Pid  int    // the sender's process id
	Data []byte // the message, owned by the receiver
}

// evMessage: a worker's message, from its reader goroutine.
type evMessage struct{ m Message }

// messageState is the master's side of the channels: the goroutines that
// read them, owned by the loop (they end when a worker's end closes).
type messageState struct {
	wg sync.WaitGroup
}

// readMessages reads c's messages until its channel closes (c exited), and
// hands them to the loop.
func (l *loop) readMessages(c *child) {
	conn := c.msgs
	l.msgs.wg.Go(func() {
		buf := make([]byte, MaxMessage+1)
		for {
			n, err := conn.Read(buf)
			if err != nil || n == 0 {
				return // the worker is gone (EOF), or the master closed its end
			}
			if n > MaxMessage {
				continue
			}
			l.send(evMessage{Message{Slot: c.slot.id, Pid: c.pid, Data: append([]byte(nil), buf[:n]...)}})
		}
	})
}

func (l *loop) onMessage(m Message) {
	if l.cfg.OnMessage != nil {
		l.cfg.OnMessage(m)
	}
}

// closeMessages closes the master's end of c's channel (c exited).
func closeMessages(c *child) {
	if c.msgs != nil {
		_ = c.msgs.Close()
	}
}

// Send sends data to the current worker of slot (Worker.Messages). It never
// blocks: ErrMessageQueueFull when that worker has not read what was sent
// before, ErrNoMessages when the slot has no ready worker or Config.Messages
// is off.
func (m *Master) Send(slot int, data []byte) error {
	for _, w := range m.l.snap.Load().workers {
		if w.Slot == slot && w.Current && w.Ready {
			return sendMessage(w.msgs, data)
		}
	}
	return ErrNoMessages
}

// Broadcast sends data to the current worker of every slot, as Send does;
// the error joins those of the workers that did not get it.
func (m *Master) Broadcast(data []byte) error {
	var errs []error
	for _, w := range m.l.snap.Load().workers {
		if w.Current && w.Ready {
			errs = append(errs, sendMessage(w.msgs, data))
		}
	}
	return errors.Join(errs...)
}

// Send sends data to the master (Config.OnMessage). It never blocks:
// ErrMessageQueueFull when the master has not read what was sent before.
func (w *Worker) Send(data []byte) error { return sendMessage(w.msgConn, data) }

// Messages are the master's messages to this worker (Master.Send,
// Master.Broadcast); the channel closes when the worker's ctx is done
// (it is stopping, or the master is gone). nil without Config.Messages. Messages wait in the channel's kernel buffer while this
// worker does not read them; past that the master's Send fails.
func (w *Worker) Messages() <-chan []byte {
	if w.msgConn == nil {
		return nil
	}
	w.msgOnce.Do(func() {
		w.msgCh = make(chan []byte)
		w.msgDone = make(chan struct{})
		go w.readMessages()
	})
	return w.msgCh
}

// readMessages delivers the master's messages to msgCh until the channel
// closes (the master is gone, or closeMessages at the worker's end).
func (w *Worker) readMessages() {
	defer close(w.msgCh)
	buf := make([]byte, MaxMessage+1)
	for {
		n, err := w.msgConn.Read(buf)
		if err != nil || n == 0 {
			return
		}
		if n > MaxMessage {
			continue
		}
		select {
		case w.msgCh <- append([]byte(nil), buf[:n]...):
		case <-w.msgDone:
			return
		}
	}
}

// closeMessages ends the worker's channel and its reader; Run calls it
// when the worker's ctx is done (it is stopping, or the master is gone),
// and again once the worker function has returned.
func (w *Worker) closeMessages() {
	if w.msgConn == nil {
		return
	}
	w.msgClose.Do(func() {
		_ = w.msgConn.Close()
		w.msgOnce.Do(func() {}) // no reader from now on
		if w.msgDone != nil {
			close(w.msgDone)
			for range w.msgCh { // until the reader has returned
			}
		}
	})
}

// workerMessages is a worker's end of its channel.
type workerMessages struct {
	msgConn  net.Conn
	msgOnce  sync.Once // starts the reader
	msgClose sync.Once // closes the channel
	msgCh    chan []byte
	msgDone  chan struct{}
}
