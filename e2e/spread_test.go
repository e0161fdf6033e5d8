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
// connection-per-request load (32 clients, a new connection per request)
// and a keep-alive load (64 connections, each reused). It asserts the
// default's connection-per-request spread (max/min <= 1.3) and logs every
// figure (docs/RELIABILITY.md).
//
// With SO_REUSEPORT the kernel picks a slot by a hash of the connection's
// 4-tuple, so a keep-alive load is spread by connection: 64 connections
// over 4 workers give each a binomial share (16 +- 3.5), and the requests
// follow the connections as long as no worker is CPU-bound. That is why the
// keep-alive figure is logged, not asserted.
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
			_, base := relStartCluster(t, r.workers, extra...)
			o := relLoadOpts{URL: base + "/api/info", MaxTime: 20 * time.Second}
			if r.keep {
				o.KeepAlive, o.MaxReqs = 64, 8000
			} else {
				o.PerRequest, o.MaxReqs = 32, 4000
			}
			res := relStartLoad(t, o).Wait()
			ratio, counts := relSpread(res.ByWorker, r.workers)
			line := fmt.Sprintf("%-45s max/min %.2f  per worker %v  (failed %d)", name, ratio, counts, res.Failed)
			t.Log(line)
			report = append(report, line)
			relAssertNoLoss(t, res)
			if !r.shared && !r.keep && ratio > 1.3 {
				t.Errorf("default sockets, connection per request: max/min = %.2f, want <= 1.3 (per worker %v)", ratio, counts)
			}
		})
	}
	t.Logf("spread report:\n%s", strings.Join(report, "\n"))
}
