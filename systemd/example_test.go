package systemd_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/lbserver/lbserver/systemd"
)

// A server: serve on systemd's socket when it passed one, say READY=1 once
// serving, STOPPING=1 when the drain starts.
func Example_server() {
	env := systemd.OSEnv()
	lns, err := systemd.Listeners(env) // also removes LISTEN_* from the environment
	if err != nil {
		log.Fatal(err) // a passed descriptor that is not a listening TCP socket
	}
	n, err := systemd.NewNotifier(env) // also removes NOTIFY_SOCKET and WATCHDOG_*
	if err != nil {
		log.Print(err) // a warning: a malformed variable turns its feature off
	}
	var ln net.Listener
	if len(lns) == 1 {
		ln = lns[0]
	} else if ln, err = net.Listen("tcp", "127.0.0.1:8080"); err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{}
	go srv.Serve(ln)
	if err := n.Ready("serving on " + ln.Addr().String()); err != nil {
		log.Print(err) // systemd unreachable: serve anyway
	}
	// ... on SIGTERM:
	_ = n.Stopping("draining")
	_ = srv.Shutdown(context.Background())
}

// A supervisor (a master with workers): the protocol a master follows.
func Example_supervisor() {
	env := systemd.OSEnv()
	files, err := systemd.Files(env) // close-on-exec; LISTEN_* removed, so workers do not see them
	if err != nil {
		log.Fatal(err)
	}
	n, _ := systemd.NewNotifier(env)

	// Hand the sockets to a worker explicitly: they become its 3, 4, ...
	worker := exec.Command(os.Args[0], "--worker")
	worker.ExtraFiles = files
	_ = worker.Start()

	// The master's event loop.
	var tick <-chan time.Time
	if d := n.WatchdogInterval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	ready, total := 0, 2
	workerReady := make(chan int)
	reload, stop := make(chan struct{}), make(chan struct{})
	for {
		select {
		case <-tick:
			_ = n.Watchdog() // from the loop: a stuck loop stops the pings
		case <-workerReady:
			ready++
			if ready == total {
				_ = n.Ready(fmt.Sprintf("%d of %d workers ready", ready, total))
			} else {
				_ = n.Status(fmt.Sprintf("%d of %d workers ready", ready, total))
			}
		case <-reload:
			_ = n.Reloading("reloading 1 of 2") // RELOADING=1, MONOTONIC_USEC=...
			// ... when the rolling reload has finished, or was given up:
			_ = n.Ready("reload finished: 2 of 2 workers ready")
		case <-stop:
			_ = n.Stopping("stopping 2 workers")
			return
		}
	}
}
