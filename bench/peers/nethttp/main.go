// Command nethttp is a peer for make bench: examples/hello's handler bytes
// served by net/http in one process with Go's default GOMAXPROCS.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	port := flag.Int("port", 8090, "TCP port to listen on")
	flag.Parse()
	http.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello from worker %d, pid %d\n", 1, os.Getpid())
	})
	log.Fatal(http.ListenAndServe(fmt.Sprintf(":%d", *port), nil))
}
