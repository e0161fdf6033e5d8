package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/lbserver/lbserver/cluster"
)

// echo is a TCP echo server built on Worker.Listeners instead of Serve:
// every line a client sends comes back. When ctx is done (the master
// stops this worker) it stops accepting, tells each open connection
// "draining", and returns once the clients have closed them all: no
// connection is cut.
func echo(ctx context.Context, w *cluster.Worker) error {
	var accepting, conns sync.WaitGroup
	lns := w.Listeners() // the slot's socket, and those of any slot it adopts
	for _, ln := range lns {
		accepting.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return // closed: the drain began
				}
				conns.Go(func() { echoConn(ctx, c) })
			}
		})
	}
	if err := w.Ready(); err != nil { // the master counts this worker from now on
		return err
	}
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close() // stop accepting; the master keeps the port open
	}
	accepting.Wait()
	conns.Wait() // the drain: every open connection finishes
	return nil
}

func echoConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { fmt.Fprintln(c, "draining") })
	defer stop()
	lines := bufio.NewScanner(c)
	for lines.Scan() {
		fmt.Fprintln(c, lines.Text())
	}
}

// A server of another protocol than HTTP drains too: here the master
// starts two echo workers, a client connects and says "hi", then the
// master stops while the connection is open. The worker tells the client
// it is draining, still answers its "bye", and exits once the client has
// closed the connection; Run returns nil.
func ExampleWorker_Listeners() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := exampleConfig(nil)
	cfg.Env = append(os.Environ(), "EXAMPLE_MODE=echo") // the workers run echo
	var addr string
	cfg.OnMaster = func(m *cluster.Master) (func(), error) {
		addr = m.Addr().String()
		return nil, nil
	}
	var client sync.WaitGroup
	cfg.OnEvent = func(e cluster.Event) {
		if e.Kind != cluster.EventServing {
			return
		}
		client.Go(func() {
			defer cancel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fmt.Println(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // bounded, on a loaded machine too
			answers := bufio.NewScanner(c)
			say := func(line string) {
				fmt.Fprintln(c, line)
			}
			hear := func() {
				if answers.Scan() {
					fmt.Println(answers.Text())
				} else {
					fmt.Println("no answer:", answers.Err())
				}
			}
			say("hi")
			hear()   // hi
			cancel() // the master stops its workers
			hear()   // draining
			say("bye")
			hear() // bye: the connection is still served
		})
	}
	err := cluster.Run(ctx, cfg, echo)
	client.Wait()
	fmt.Println("stopped:", err)
	// Output:
	// hi
	// draining
	// bye
	// stopped: <nil>
}
