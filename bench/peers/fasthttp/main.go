// Command fasthttp is a peer for make bench: examples/hello's handler bytes
// ("hello from worker ID, pid PID\n") served by fasthttp's prefork, one
// child per CPU, each child GOMAXPROCS 1 (fasthttp's own choice).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/prefork"
)

func main() {
	port := flag.Int("port", 8090, "TCP port to listen on")
	flag.Parse()
	id := 1 // prefork children are not numbered; the bytes' length is what matters
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		fmt.Fprintf(ctx, "hello from worker %d, pid %d\n", id, os.Getpid())
	}}
	if err := prefork.New(srv).ListenAndServe(fmt.Sprintf(":%d", *port)); err != nil {
		log.Fatal(err)
	}
}
