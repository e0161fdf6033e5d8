package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestReliabilitySpread measures how evenly CLUSTER workers share the load:
// max/min of the requests each worker answered, for the default per-slot
// SO_REUSEPORT sockets and for --shared-socket (one accept queue), under a
// connection-per-request load (32 clients, a new connection per request,
// 4000 requests) and a keep-alive load (64 connections, 64000 requests).
// It asserts max/min <= 1.3 for the default sockets under connection-per-
// request load, and under keep-alive load with 2 workers (one per core
// here), and logs every figure (docs/RELIABILITY.md).
//
// With SO_REUSEPORT the kernel picks a slot by a hash of the connection's
// 4-tuple, so 64 keep-alive connections over 2 workers land 32 +- 4 apiece.
// The workers even that out through the master's connection table
// (internal/connbalance): a worker above its share of the open connections
// closes one after its answer and the client reconnects. Requests then
// follow each worker's share of the CPU; with 4 workers on 2 cores that
// share is uneven at times, so that figure is logged, not asserted.
func TestReliabilitySpread(t *testing.T) {
	type run struct {
		workers int
		shared  bool
		keep    bool
	}
	var runs []run
	for _, w := range []int{2, 4} {
		for _, shared := range []bool{false, true} {
			for _, keep := range []bool{false, true} {
				runs = append(runs, run{w, shared, keep})
			}
		}
	}
	var report []string
	for _, r := range runs {
		name := fmt.Sprintf("workers=%d/%s/%s", r.workers, map[bool]string{false: "reuseport", true: "shared-socket"}[r.shared],
			map[bool]string{false: "conn-per-request", true: "keep-alive"}[r.keep])
		t.Run(name, func(t *testing.T) {
			var extra []string
			if r.shared {
				extra = append(extra, "--shared-socket")
			}
			_, base := startCluster(t, r.workers, extra...)
			o := relLoadOpts{URL: base + "/api/info", MaxTime: 20 * time.Second}
			if r.keep {
				o.KeepAlive, o.MaxReqs = 64, 64000
			} else {
				o.PerRequest, o.MaxReqs = 32, 4000
			}
			res := relStartLoad(t, o).Wait()
			ratio, counts := relSpread(res.ByWorker, r.workers)
			line := fmt.Sprintf("%-45s max/min %.2f  per worker %v  (failed %d)", name, ratio, counts, res.Failed)
			t.Log(line)
			report = append(report, line)
			relAssertNoLoss(t, res)
			if !r.shared && (!r.keep || r.workers == 2) && ratio > 1.3 {
				t.Errorf("default sockets: max/min = %.2f, want <= 1.3 (per worker %v)", ratio, counts)
			}
		})
	}
	t.Logf("spread report:\n%s", strings.Join(report, "\n"))
}
