package cluster

import (
	"os"
	"testing"
	"time"
)

// A worker takes the count the master tells it on its lifeline; it starts
// from Config.Workers, and the slot commands are still obeyed around it.
func TestWorkerLearnsTheCount(t *testing.T) {
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := &Worker{id: 1, cfg: &Config{Workers: 2}, lifeline: r, slots: map[int]*os.File{}}
	if n := w.Workers(); n != 2 {
		t.Fatalf("Workers() = %d before any word from the master, want Config.Workers 2", n)
	}
	done := make(chan struct{})
	go func() { defer close(done); w.obey() }()
	if _, err := wr.WriteString("adopted workers=4\nadopt x\nadopted workers=0\nadopted workers=3\n"); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("obey did not return at EOF")
	}
	if n := w.Workers(); n != 3 {
		t.Errorf("Workers() = %d after workers=4, workers=0 (ignored), workers=3, want 3", n)
	}
}
