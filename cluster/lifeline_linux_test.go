package cluster

import (
	"bufio"
	"fmt"
	"os"
	"testing"
	"time"
)

// A worker that does not read its lifeline for a while (a long GC pause, a
// stopped process) still gets the latest state once it reads: lines told
// meanwhile are replaced, never the last one lost.
func TestLifelineNeverLosesTheLatestState(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := newOSProcess(nil)
	writer := make(chan struct{})
	go func() { defer close(writer); p.writeLifeline(w) }()
	defer func() { close(p.done); r.Close(); <-writer }()
	for i := range 20000 { // more than the pipe holds
		p.Tell(fmt.Sprintf("adopted %d", i%64+1))
	}
	p.Tell("adopted")
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if sc.Text() == "adopted" {
				got <- sc.Text()
				return
			}
		}
		got <- "EOF"
	}()
	select {
	case line := <-got:
		if line != "adopted" {
			t.Fatalf("the last line told never arrived: %s", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the last line told never arrived (a release lost: the worker would accept for a slot it gave back)")
	}
}
