package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// relScrape fetches a Prometheus text page.
func relScrape(tb testing.TB, url string) (string, string) {
	tb.Helper()
	r := MustGet(tb, url)
	if r.Status != http.StatusOK {
		tb.Fatalf("GET %s: %d", url, r.Status)
	}
	return string(r.Body), r.Header.Get("X-Worker-Id")
}

// relSeries returns the value of the series whose line starts with prefix
// (name and labels as Prometheus writes them), or -1.
func relSeries(body, prefix string) float64 {
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestReliabilityMetrics: every worker serves /metrics (requests by route
// and status, a latency histogram, numbers drawn, compute slots busy and
// waiting) and a scrape of the shared port reaches one worker, named by
// X-Worker-Id; the master's own counters (starts, exits, restarts,
// reloads, live workers) are on --master-metrics and follow a kill and a
// reload.
func TestReliabilityMetrics(t *testing.T) {
	mport := FreePort(t)
	maddr := "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
	p, base := startCluster(t, 2, "--master-metrics", "127.0.0.1:"+strconv.Itoa(mport))
	const n = 20
	for range n {
		if r := MustGet(t, base+"/api/randoms?cant=1000"); r.Status != 200 {
			t.Fatalf("status %d", r.Status)
		}
	}
	MustGet(t, base+"/api/randoms?cant=abc")
	MustGet(t, base+"/nope")

	// Scrape until both workers have answered; sum their figures.
	seen := map[string]string{}
	Eventually(t, 10*time.Second, "a /metrics scrape from each worker", func() bool {
		body, id := relScrape(t, base+"/metrics")
		seen[id] = body
		return len(seen) == 2
	})
	var ok200, drawn, bad400, notFound float64
	for id, body := range seen {
		for _, name := range []string{
			"lbserver_http_request_duration_seconds_bucket", "lbserver_compute_slots_busy",
			"lbserver_compute_queue_waiting", "lbserver_compute_slots", "lbserver_randoms_numbers_drawn_total",
		} {
			if !strings.Contains(body, "\n"+name) {
				t.Errorf("worker %s /metrics lacks %s", id, name)
			}
		}
		ok200 += max(0, relSeries(body, `lbserver_http_requests_total{code="200",route="GET /api/randoms"}`))
		bad400 += max(0, relSeries(body, `lbserver_http_requests_total{code="400",route="GET /api/randoms"}`))
		notFound += max(0, relSeries(body, `lbserver_http_requests_total{code="404",route="unmatched"}`))
		drawn += max(0, relSeries(body, "lbserver_randoms_numbers_drawn_total"))
	}
	if ok200 != n || bad400 != 1 || notFound != 1 || drawn != n*1000 {
		t.Errorf("summed over both workers: 200s %v, 400s %v, 404s %v, drawn %v; want %d, 1, 1, %d", ok200, bad400, notFound, drawn, n, n*1000)
	}

	// The master gathers every worker's lbserver_* series, labelled by worker.
	mbody, _ := relScrape(t, maddr)
	var sum200 float64
	for id := range 2 {
		v := relSeries(mbody, `lbserver_http_requests_total{code="200",route="GET /api/randoms",worker="`+strconv.Itoa(id+1)+`"}`)
		if v < 0 {
			t.Errorf("master metrics lack worker %d's requests:\n%s", id+1, mbody)
		}
		sum200 += max(0, v)
	}
	if sum200 != n {
		t.Errorf("master's gathered 200s on /api/randoms = %v, want %d", sum200, n)
	}
	for _, name := range []string{"lbserver_randoms_numbers_drawn_total{worker=", "lbserver_compute_slots_busy{worker=", "lbserver_master_slots_adopted 0"} {
		if !strings.Contains(mbody, name) {
			t.Errorf("master metrics lack %s", name)
		}
	}

	master := func(name string) float64 {
		body, _ := relScrape(t, maddr)
		return relMetric(body, name)
	}
	if got := master("lbserver_master_worker_starts_total"); got != 2 {
		t.Errorf("master starts = %v, want 2", got)
	}
	if got := master("lbserver_master_workers_live"); got != 2 {
		t.Errorf("master live workers = %v, want 2", got)
	}
	pids := relWaitWorkers(t, p, 2)
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "restart counted", func() bool {
		return master("lbserver_master_worker_restarts_total") == 1 && master("lbserver_master_worker_exits_total") == 1 &&
			master("lbserver_master_workers_live") == 2
	})
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 20*time.Second, "reload counted", func() bool {
		return master("lbserver_master_reloads_total") == 1 && master("lbserver_master_worker_starts_total") == 5
	})
	body, _ := relScrape(t, maddr)
	if !strings.Contains(body, "process_resident_memory_bytes") {
		t.Error("master metrics lack the process collector")
	}
}
