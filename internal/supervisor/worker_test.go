package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// fakeAdopter records the listeners it is given and stopped.
type fakeAdopter struct {
	mu      sync.Mutex // guards serving
	serving map[string]net.Listener
}

func (f *fakeAdopter) ServeListener(ln net.Listener) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serving[ln.Addr().String()] = ln
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.serving, ln.Addr().String())
		ln.Close()
	}
}

func (f *fakeAdopter) addrs() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for a := range f.serving {
		out[a] = true
	}
	return out
}

// The lifeline carries "adopt K" / "release K"; the worker serves slot K's
// socket in between, ignores its own slot, unknown slots and junk, and
// reports the master gone at EOF.
func TestWorkerObeysAdoptRelease(t *testing.T) {
	slots := map[int]*os.File{}
	addrs := map[int]string{}
	for k := 1; k <= 3; k++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		addrs[k] = ln.Addr().String()
		ln.Close()
		t.Cleanup(func() { f.Close() })
		slots[k] = f
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	wk := &Worker{ID: 1, lifeline: r, slots: slots}
	a := &fakeAdopter{serving: map[string]net.Listener{}}
	done := make(chan bool)
	go func() { done <- wk.WatchMaster(context.Background(), a) }()

	step := func(cmds string, want ...int) {
		t.Helper()
		if _, err := fmt.Fprint(w, cmds); err != nil {
			t.Fatal(err)
		}
		// Poll: one goroutine applies the commands in order.
		wantSet := map[string]bool{}
		for _, k := range want {
			wantSet[addrs[k]] = true
		}
		for range 500 {
			got := a.addrs()
			if fmt.Sprint(got) == fmt.Sprint(wantSet) {
				return
			}
			waitABit()
		}
		t.Fatalf("after %q serving %v, want slots %v", cmds, a.addrs(), want)
	}
	step("adopt 2\n", 2)
	step("adopt 2\nadopt 1\nadopt 9\nbogus\nadopt x\n", 2) // again, own slot, unknown, junk
	step("adopt 3\n", 2, 3)
	step("release 2\n", 3)
	step("release 2\nrelease 3\n")
	w.Close()
	if gone := <-done; !gone {
		t.Error("WatchMaster at EOF = false, want true (master gone)")
	}
}

// WatchMaster returns false when ctx ends while the master lives.
func TestWatchMasterCancel(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wk := &Worker{ID: 1, lifeline: r, slots: map[int]*os.File{}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if wk.WatchMaster(ctx, nil) {
		t.Error("WatchMaster after cancel = true, want false")
	}
}

func waitABit() { <-time.After(2 * time.Millisecond) }
