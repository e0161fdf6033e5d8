package cluster_test

import (
	"fmt"

	"github.com/lbserver/lbserver/cluster"
)

// Before Run, a process can tell whether it is the master or one of its
// workers, e.g. to name its logs or to do master-only set-up. This program
// was not started by a master, so it is not a worker.
func ExampleWorkerID() {
	role := "master"
	if id := cluster.WorkerID(); id > 0 {
		role = fmt.Sprintf("worker %d", id)
	}
	fmt.Println(role)
	// Output: master
}
