//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadResult is what one load run measured.
type loadResult struct {
	Tool     string
	Requests int64
	Errors   int64 // non-2xx answers plus connection errors and timeouts
	RPS      float64
	P50, P99 time.Duration
}

// loader runs a closed-loop load of conns connections against url for d.
type loader func(ctx context.Context, url string, conns int, d time.Duration) (loadResult, error)

// wrkLoad runs `wrk -t1 -c<conns> -d<secs> --latency --timeout 10s url`:
// one thread, so the load generator takes one core at most.
func wrkLoad(ctx context.Context, url string, conns int, d time.Duration) (loadResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s",
		"--latency", "--timeout", "10s", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkRPS     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkTotal   = regexp.MustCompile(`(?m)^\s*(\d+) requests in`)
	wrkNon2xx  = regexp.MustCompile(`(?m)Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErr = regexp.MustCompile(`(?m)Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
)

// parseWrk reads the figures out of wrk's --latency report.
func parseWrk(out string) (loadResult, error) {
	r := loadResult{Tool: "wrk"}
	m := wrkRPS.FindStringSubmatch(out)
	t := wrkTotal.FindStringSubmatch(out)
	if m == nil || t == nil {
		return r, fmt.Errorf("unexpected wrk output:\n%s", out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	r.Requests, _ = strconv.ParseInt(t[1], 10, 64)
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	if m := wrkSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	return r, nil
}

// goLoad is the built-in load generator: conns goroutines, each with its
// own keep-alive connection, sending GETs back to back for d.
func goLoad(ctx context.Context, url string, conns int, d time.Duration) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu   sync.Mutex // guards lats and errs
		lats []time.Duration
		errs int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var mine []time.Duration
			var bad int64
			for ctx.Err() == nil {
				t0 := time.Now()
				ok, err := get(ctx, client, url)
				if ctx.Err() != nil && err != nil {
					break // cut off by the end of the run, not a failure
				}
				if !ok {
					bad++
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	r := loadResult{Tool: "go", Requests: int64(len(lats)), Errors: errs, RPS: float64(len(lats)) / el.Seconds()}
	r.P50, r.P99 = percentile(lats, 50), percentile(lats, 99)
	return r, nil
}

// get does one GET and reads the body; ok means a 2xx answer.
func get(ctx context.Context, client *http.Client, url string) (ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode/100 == 2, err
}

// percentile is the p-th percentile (nearest rank) of ds; it sorts ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p/100+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// satResult is /api/info's latency while heavy requests keep the CPU busy.
type satResult struct {
	HeavyConns            int
	Samples               int
	P50, P99, Max         time.Duration
	HeavyOK, Heavy503     int64
	HeavyOther, ProbeErrs int64
}

// saturated runs heavyConns clients sending the default /api/randoms back to
// back, and meanwhile one client probing /api/info every 5 ms (a request,
// then a pause) for d, and reports the probe's latency.
func saturated(ctx context.Context, base string, heavyConns int, d time.Duration) satResult {
	res := satResult{HeavyConns: heavyConns}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	heavyTr := &http.Transport{MaxIdleConnsPerHost: heavyConns}
	defer heavyTr.CloseIdleConnections()
	heavy := &http.Client{Transport: heavyTr, Timeout: 60 * time.Second}
	var (
		mu sync.Mutex // guards the heavy counters in res
		wg sync.WaitGroup
	)
	for range heavyConns {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/randoms", nil)
				resp, err := heavy.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						res.HeavyOther++
						mu.Unlock()
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				switch resp.StatusCode {
				case http.StatusOK:
					res.HeavyOK++
				case http.StatusServiceUnavailable:
					res.Heavy503++
				default:
					res.HeavyOther++
				}
				mu.Unlock()
				if resp.StatusCode == http.StatusServiceUnavailable {
					time.Sleep(10 * time.Millisecond) // a client honouring Retry-After would wait longer
				}
			}
		})
	}
	// Let the heavy requests reach the CPU before probing.
	time.Sleep(min(d/5, 500*time.Millisecond))
	probeTr := &http.Transport{}
	defer probeTr.CloseIdleConnections()
	probe := &http.Client{Transport: probeTr, Timeout: 10 * time.Second}
	var lats []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		t0 := time.Now()
		ok, _ := get(ctx, probe, base+"/api/info")
		lats = append(lats, time.Since(t0))
		if !ok {
			res.ProbeErrs++
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	res.Samples = len(lats)
	res.P50, res.P99 = percentile(lats, 50), percentile(lats, 99)
	if len(lats) > 0 {
		res.Max = lats[len(lats)-1]
	}
	return res
}

// firstLine is the first line of s, trimmed.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}
