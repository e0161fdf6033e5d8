package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MetricsSource is one worker process whose /metrics a CLUSTER master
// gathers: its slot, its pid, and a transport that reaches its private
// socket (where a worker admits only its own user and root, and lbserver
// serves only /metrics).
type MetricsSource struct {
	Slot      int
	Pid       int
	Transport http.RoundTripper
}

// WorkerGatherer gathers the lbserver_* series this package's /metrics
// serves, from every source list returns (one per slot: its current, ready
// worker), and labels them worker="<slot>", so that one scrape of the
// master's --master-metrics shows every worker; a scrape of the shared port
// reaches one worker at a time. A worker that does not answer within timeout
// (default 2s) is left out, and named in the error.
type WorkerGatherer struct {
	List    func() []MetricsSource
	Timeout time.Duration
}

// Gather implements prometheus.Gatherer.
func (g WorkerGatherer) Gather() ([]*dto.MetricFamily, error) {
	timeout := g.Timeout
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
	for _, w := range g.List() {
		wg.Go(func() {
			got, err := scrapeWorker(ctx, w.Transport)
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

// scrapeWorker fetches /metrics through tr.
func scrapeWorker(ctx context.Context, tr http.RoundTripper) (map[string]*dto.MetricFamily, error) {
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
