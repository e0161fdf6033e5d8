package cluster

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// Messages go both ways: a worker's reaches OnMessage with its slot and
// pid; the master's reaches one worker (Send) or every one (Broadcast).
// Too large is refused; a reader that does not read makes Send fail at
// once, it never blocks; a gone worker has no channel.
func TestMessagesBothWays(t *testing.T) {
	got := make(chan Message, 10)
	h := newHarness(t, Config{Workers: 2, Messages: true, OnMessage: func(m Message) { got <- m }})
	m := &Master{l: h.l}
	ps := h.startAll()
	if ps[0].msgs == nil {
		t.Fatal("worker has no message channel")
	}
	if err := sendMessage(ps[1].msgs, []byte("requests 42")); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-got:
		if msg.Slot != 2 || msg.Pid != ps[1].pid || string(msg.Data) != "requests 42" {
			t.Errorf("OnMessage got %+v, want slot 2, pid %d, %q", msg, ps[1].pid, "requests 42")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message reached OnMessage")
	}
	read := func(p *fakeProc) string {
		t.Helper()
		_ = p.msgs.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, MaxMessage+1)
		n, err := p.msgs.Read(b)
		if err != nil {
			t.Fatalf("worker %d read: %v", p.pid, err)
		}
		return string(b[:n])
	}
	if err := m.Send(1, []byte("flush users")); err != nil {
		t.Fatal(err)
	}
	if s := read(ps[0]); s != "flush users" {
		t.Errorf("worker 1 read %q, want flush users", s)
	}
	if err := m.Broadcast([]byte("flush all")); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if s := read(p); s != "flush all" {
			t.Errorf("worker %d read %q, want flush all", p.pid, s)
		}
	}
	if err := m.Send(1, make([]byte, MaxMessage+1)); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("Send of MaxMessage+1 bytes = %v, want ErrMessageTooLarge", err)
	}
	big := bytes.Repeat([]byte("x"), MaxMessage)
	var err error
	start := time.Now()
	for i := 0; i < 1000 && err == nil; i++ {
		err = m.Send(1, big)
	}
	if !errors.Is(err, ErrMessageQueueFull) || time.Since(start) > 2*time.Second {
		t.Errorf("sending to a worker that reads nothing: %v after %s, want ErrMessageQueueFull at once", err, time.Since(start))
	}
	if s := read(ps[0]); len(s) != MaxMessage {
		t.Errorf("the worker then reads %d bytes, want a whole message of %d", len(s), MaxMessage)
	}
	h.exit(ps[1], errors.New("signal: killed"))
	if err := m.Send(2, []byte("x")); !errors.Is(err, ErrNoMessages) {
		t.Errorf("Send to a slot without a ready worker = %v, want ErrNoMessages", err)
	}
}

// Without Config.Messages there is no channel.
func TestNoMessagesByDefault(t *testing.T) {
	h := newHarness(t, Config{Workers: 1})
	m := &Master{l: h.l}
	ps := h.startAll()
	if ps[0].msgs != nil {
		t.Errorf("a message channel without Config.Messages")
	}
	if err := m.Send(1, []byte("x")); !errors.Is(err, ErrNoMessages) {
		t.Errorf("Send = %v, want ErrNoMessages", err)
	}
}
