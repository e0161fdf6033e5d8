package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lbserver/lbserver/internal/supervisor"
)

// workerGatherer gathers the lbserver_* series of every live worker from
// its private unix socket (each worker serves its routes there for the
// master only) and labels them worker="<slot>", so that one scrape of the
// master's --master-metrics shows every worker. A scrape of the shared port
// reaches one worker at a time.
type workerGatherer struct {
	m       *supervisor.Master
	timeout time.Duration // per worker; default 2s
}

// Gather implements prometheus.Gatherer.
func (g workerGatherer) Gather() ([]*dto.MetricFamily, error) {
	timeout := g.timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var (
		mu   sync.Mutex // guards fams, errs
		fams = map[string]*dto.MetricFamily{}
		errs []string
		wg   sync.WaitGroup
	)
	seen := map[int]bool{}
	for _, w := range g.m.Workers() {
		// One worker per slot: the current one (a replaced worker is draining).
		if w.Private == "" || !w.Ready || !w.Current || seen[w.Slot] {
			continue
		}
		seen[w.Slot] = true
		wg.Go(func() {
			got, err := scrapeWorker(ctx, w.Private)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Sprintf("worker %d (pid %d): %v", w.Slot, w.Pid, err))
				return
			}
			slot := strconv.Itoa(w.Slot)
			for name, f := range got {
				if !strings.HasPrefix(name, "lbserver_") {
					continue // the worker's go_ and process_ series would clash with the master's own
				}
				for _, mt := range f.Metric {
					mt.Label = append(mt.Label, &dto.LabelPair{Name: ptr("worker"), Value: ptr(slot)})
				}
				if have := fams[name]; have != nil {
					have.Metric = append(have.Metric, f.Metric...)
				} else {
					fams[name] = f
				}
			}
		})
	}
	wg.Wait()
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	if len(errs) > 0 {
		slices.Sort(errs)
		return out, fmt.Errorf("gather worker metrics: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// scrapeWorker fetches /metrics from a worker's private socket.
func scrapeWorker(ctx context.Context, path string) (map[string]*dto.MetricFamily, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://worker/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func ptr(s string) *string { return &s }
