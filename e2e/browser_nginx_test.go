package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// (c) The live page behind nginx topology B (deploy/nginx/topology-b.conf,
// run as shipped in a private network namespace): the page itself comes from
// the FORK instance on 8080 through nginx, its /api/randoms requests are
// spread by nginx over the four FORK instances on 8082..8085, and the bars
// must match what each instance counted itself (its own /metrics).
func TestBrowserBalanceNginxTopologyB(t *testing.T) {
	if !ngxInNamespace(t) {
		return
	}
	ngxStartLB(t, "127.0.0.1", 8080, "--mode", "FORK")
	pidOf := map[string]string{}
	for port := 8082; port <= 8085; port++ {
		p := ngxStartLB(t, "127.0.0.1", port, "--mode", "FORK")
		pidOf[strconv.Itoa(port)] = strconv.Itoa(p.Pid())
	}
	ngxStart(t, ngxConf("topology-b.conf"))
	served := func() map[string]int { // port -> /api/randoms answered 200, per the instance
		m := map[string]int{}
		for port := range pidOf {
			r := MustGet(t, "http://127.0.0.1:"+port+"/metrics")
			m[port] = int(balanceMetric(t, r.Body, "lbserver_http_requests_total", `route="GET /api/randoms"`, `code="200"`))
		}
		return m
	}
	before := served()

	const n = 400
	ctx, s := browserBalanceThroughNginx(t, n)
	page := map[string]int{}
	for _, w := range s.Pids {
		page[w.Port] += w.Count
		if pidOf[w.Port] != w.Pid {
			t.Errorf("port %s answered with pid %s, want the instance's pid %s", w.Port, w.Pid, pidOf[w.Port])
		}
	}
	after := served()
	server := map[string]int{}
	for port, v := range after {
		server[port] = v - before[port]
	}
	if fmt.Sprint(page) != fmt.Sprint(server) {
		t.Errorf("answers per port: the page counted %v, the instances answered %v", page, server)
	}
	// nginx balances each request (round robin): every instance has its share.
	for port := range pidOf {
		if page[port] < n/8 {
			t.Errorf("port %s answered %d of %d, want at least %d (round robin over 4 gives %d each)", port, page[port], n, n/8, n/4)
		}
	}
	t.Logf("answers per port through nginx: %v", page)
	balanceCheckBarsMatchSnapshot(t, ctx, s)
	browserNoErrors(t, ctx)
	browserScreenshot(t, ctx, "balance-nginx-topology-b")
}

// The live page behind nginx topology A (deploy/nginx/topology-a.conf, as
// shipped, in a private network namespace): the page comes from the FORK
// instance on 8080 through nginx, its /api/randoms requests all go to the
// CLUSTER on 8081, and the bars show that CLUSTER's workers with the counts
// each worker reports itself (its own /metrics).
func TestBrowserBalanceNginxTopologyA(t *testing.T) {
	if !ngxInNamespace(t) {
		return
	}
	ngxStartLB(t, "127.0.0.1", 8080, "--mode", "FORK")
	cluster := ngxStartLB(t, "127.0.0.1", 8081, "--mode", "CLUSTER", "--workers", "2")
	var workers []int
	Eventually(t, 20*time.Second, "2 workers on 8081", func() bool {
		workers = ChildPids(cluster.Pid())
		return len(workers) == 2
	})
	ngxStart(t, ngxConf("topology-a.conf"))
	const clusterBase = "http://127.0.0.1:8081"
	before := balanceWorkerServed(t, clusterBase, workers)

	const n = 400
	ctx, s := browserBalanceThroughNginx(t, n)
	if len(s.Ports) != 1 || s.Ports[0].Port != "8081" || s.Ports[0].Count != n {
		t.Errorf("ports on the page: %v, want only 8081 with %d", s.Ports, n)
	}
	for _, w := range s.Pids {
		if pid, _ := strconv.Atoi(w.Pid); !slices.Contains(workers, pid) {
			t.Errorf("pid %s on the page is not a worker of the CLUSTER on 8081 (workers %v)", w.Pid, workers)
		}
	}
	after := balanceWorkerServed(t, clusterBase, workers)
	server := map[string]int{}
	for pid, v := range after {
		if d := v - before[pid]; d != 0 {
			server[pid] = d
		}
	}
	balanceSameCounts(t, s.pidCounts(), server)
	t.Logf("answers per worker pid through nginx topology A: %v", s.pidCounts())
	balanceCheckBarsMatchSnapshot(t, ctx, s)
	browserNoErrors(t, ctx)
	browserScreenshot(t, ctx, "balance-nginx-topology-a")
}

// browserBalanceThroughNginx opens /balance through nginx on port 80 (served
// by the instance on 8080), runs n requests to /api/randoms?cant=1000 from
// the page, and requires every one answered 200 with an X-Server-Pid.
func browserBalanceThroughNginx(t *testing.T, n int) (context.Context, balanceSnapshot) {
	t.Helper()
	ctx := browserNew(t, 1100, 900)
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse("http://127.0.0.1/balance"))
	if err != nil {
		t.Fatalf("open /balance through nginx: %v", err)
	}
	if resp.Status != http.StatusOK || fmt.Sprint(resp.Headers["X-Server-Port"]) != "8080" {
		t.Fatalf("/balance through nginx: status %d, X-Server-Port %v; want 200 from the instance on 8080", resp.Status, resp.Headers["X-Server-Port"])
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("start"))); err != nil {
		t.Fatal(err)
	}
	s := balanceRun(t, ctx, "/api/randoms?cant=1000", 0, 8, n, 90*time.Second)
	if s.Done != n || s.OK != n || s.HTTPErrors != 0 || s.NetErrors != 0 || s.Unattributed != 0 {
		t.Fatalf("got %v, want %d requests, all answered 200 with X-Server-Pid", s, n)
	}
	return ctx, s
}
