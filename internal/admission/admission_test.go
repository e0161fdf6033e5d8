package admission

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAcquireQueueThenBusy(t *testing.T) {
	l := New(1, 1)
	rel, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := l.Acquire(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for l.Waiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("second caller never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := l.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("third acquire: got %v, want ErrBusy", err)
	}
	rel()
	if err := <-got; err != nil {
		t.Fatalf("queued acquire: got %v, want nil", err)
	}
	if l.Busy() != 0 || l.Waiting() != 0 {
		t.Fatalf("after all released: busy=%d waiting=%d, want 0 0", l.Busy(), l.Waiting())
	}
}

func TestAcquireCancelledWhileQueued(t *testing.T) {
	l := New(1, 4)
	rel, _ := l.Acquire(context.Background())
	defer rel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if l.Waiting() != 0 {
		t.Fatalf("waiting=%d after cancel, want 0", l.Waiting())
	}
}
