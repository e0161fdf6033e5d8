package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browserErrorsJS runs in every document before its own scripts: it records
// uncaught errors, rejected promises and Content-Security-Policy violations,
// so a test can assert that the page ran clean.
const browserErrorsJS = `(function () {
  var errs = window.__lbErrors = [];
  window.addEventListener('error', function (e) { errs.push('error: ' + (e.message || e.type) + (e.filename ? ' at ' + e.filename + ':' + e.lineno : '')); }, true);
  window.addEventListener('unhandledrejection', function (e) { errs.push('unhandled rejection: ' + String(e.reason)); });
  document.addEventListener('securitypolicyviolation', function (e) { errs.push('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')); });
})();`

// browserNew starts a headless Chromium for the test (fresh profile in a
// temporary folder) and returns a tab of width x height CSS pixels. Cleanup
// closes the tab and kills the browser.
func browserNew(t *testing.T, width, height int64) context.Context {
	t.Helper()
	exe := "/usr/bin/chromium"
	if _, err := os.Stat(exe); err != nil {
		exe = requireTool(t, "chromium")
	}
	out := &syncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(width), int(height)),
		chromedp.CombinedOutput(out),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		tcancel()
		cancel()
		acancel()
		if t.Failed() {
			var keep []string
			for _, l := range strings.Split(out.String(), "\n") {
				if !strings.Contains(l, "dbus") { // no D-Bus in a container: noise
					keep = append(keep, l)
				}
			}
			t.Logf("chromium output:\n%s", strings.Join(keep, "\n"))
		}
	})
	if err := chromedp.Do(tctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(tctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: browserErrorsJS}); err != nil {
		t.Fatalf("add error recorder: %v", err)
	}
	return tctx
}

// browserOpen navigates the tab to url and waits for sel to be visible.
func browserOpen(t *testing.T, ctx context.Context, url, sel string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		t.Fatalf("open %s and wait for %s: %v", url, sel, err)
	}
}

// browserEval evaluates a JavaScript expression and decodes its value into T.
func browserEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// browserNoErrors fails the test when the page recorded a JavaScript error or
// a Content-Security-Policy violation.
func browserNoErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	if errs := browserEval[[]string](t, ctx, `window.__lbErrors || []`); len(errs) > 0 {
		t.Errorf("the page reported errors:\n  %s", strings.Join(errs, "\n  "))
	}
}

// browserNoHorizontalScroll fails when the page is wider than the viewport
// (the phone check).
func browserNoHorizontalScroll(t *testing.T, ctx context.Context) {
	t.Helper()
	w := browserEval[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`)
	if w[0] > w[1] {
		t.Errorf("page width: got %d px, want at most the viewport's %d px (no sideways scrolling on a phone)", w[0], w[1])
	}
}

// browserScreenshot saves a PNG of the whole page as artifacts/<name>.png and
// returns the bytes.
func browserScreenshot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(repoRoot(), "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d KB)", p, len(png)/1024)
	return png
}

// browserDocImage writes png to docs/img/<name>.png when LBSERVER_DOC_IMAGES
// is set (make screenshots sets it), so the README pictures come from the
// same runs the tests check.
func browserDocImage(t *testing.T, name string, png []byte) {
	t.Helper()
	if os.Getenv("LBSERVER_DOC_IMAGES") == "" {
		return
	}
	dir := filepath.Join(repoRoot(), "docs", "img")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if len(png) > 300<<10 {
		t.Errorf("%s.png is %d KB, want under 300 KB for the README", name, len(png)/1024)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// balanceSnapshot is window.lbBalance.snapshot() of the balance page.
type balanceSnapshot struct {
	Running      bool           `json:"running"`
	Sent         int            `json:"sent"`
	Done         int            `json:"done"`
	OK           int            `json:"ok"`
	HTTPErrors   int            `json:"httpErrors"`
	NetErrors    int            `json:"netErrors"`
	InFlight     int            `json:"inFlight"`
	Unattributed int            `json:"unattributed"`
	Statuses     map[string]int `json:"statuses"`
	LatencyMs    struct {
		P50     *float64 `json:"p50"`
		P99     *float64 `json:"p99"`
		Samples int      `json:"samples"`
	} `json:"latencyMs"`
	Ports []struct {
		Port  string `json:"port"`
		Count int    `json:"count"`
	} `json:"ports"`
	Pids []balanceWorker `json:"pids"`
}

type balanceWorker struct {
	Pid        string `json:"pid"`
	Port       string `json:"port"`
	Worker     string `json:"worker"`
	Count      int    `json:"count"`
	OK         int    `json:"ok"`
	HTTPErrors int    `json:"httpErrors"`
}

func (s balanceSnapshot) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// balanceBar is one bar drawn by the page, read from its data-* attributes
// and its visible text.
type balanceBar struct {
	Pid    string `json:"pid"`
	Port   string `json:"port"`
	Worker string `json:"worker"`
	Count  string `json:"count"`
	Text   string `json:"text"`
}

// balanceRun fills the balance page's form like a user (path, rate,
// concurrency, stop after limit requests), presses Start, waits until the run
// has finished, and returns the page's tallies.
func balanceRun(t *testing.T, ctx context.Context, path string, rate, concurrency, limit int, timeout time.Duration) balanceSnapshot {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("path"), path),
		chromedp.SetValue(chromedp.ID("rate"), fmt.Sprint(rate)),
		chromedp.SetValue(chromedp.ID("concurrency"), fmt.Sprint(concurrency)),
		chromedp.SetValue(chromedp.ID("limit"), fmt.Sprint(limit)),
		chromedp.Click(chromedp.ID("start")),
	); err != nil {
		t.Fatalf("start the run: %v", err)
	}
	var s balanceSnapshot
	Eventually(t, timeout, fmt.Sprintf("the page to finish %d requests", limit), func() bool {
		s = browserEval[balanceSnapshot](t, ctx, `window.lbBalance.snapshot()`)
		return !s.Running && s.Done >= limit
	})
	return s
}

// balanceBars reads the bars of list ("ports" or "pids").
func balanceBars(t *testing.T, ctx context.Context, list string) []balanceBar {
	t.Helper()
	return browserEval[[]balanceBar](t, ctx, `Array.from(document.querySelectorAll('#`+list+` > li')).map(function (li) {
	  return {pid: li.dataset.pid || '', port: li.dataset.port || '', worker: li.dataset.worker || '',
	          count: li.dataset.count || '', text: li.innerText};
	})`)
}

// balanceCheckBarsMatchSnapshot checks that the bars the page drew say what
// its tallies say: one bar per pid and per port, with the same counts, shown
// as text too.
func balanceCheckBarsMatchSnapshot(t *testing.T, ctx context.Context, s balanceSnapshot) {
	t.Helper()
	bars := balanceBars(t, ctx, "pids")
	if len(bars) != len(s.Pids) {
		t.Fatalf("pid bars: got %d, want %d (one per pid in %v)", len(bars), len(s.Pids), s)
	}
	byPid := map[string]balanceWorker{}
	for _, w := range s.Pids {
		byPid[w.Port+"/"+w.Pid] = w
	}
	for _, b := range bars {
		w, ok := byPid[b.Port+"/"+b.Pid]
		if !ok {
			t.Errorf("bar for pid %s port %s is not in the tallies %v", b.Pid, b.Port, s)
			continue
		}
		if b.Count != fmt.Sprint(w.Count) || b.Worker != w.Worker {
			t.Errorf("bar pid %s: got data-count %s worker %q, want %d worker %q", b.Pid, b.Count, b.Worker, w.Count, w.Worker)
		}
		if !strings.Contains(b.Text, "pid "+b.Pid) || !strings.Contains(b.Text, balanceThousands(w.Count)+" (") {
			t.Errorf("bar pid %s shows %q, want the pid and the count %s", b.Pid, b.Text, balanceThousands(w.Count))
		}
	}
	pbars := balanceBars(t, ctx, "ports")
	if len(pbars) != len(s.Ports) {
		t.Fatalf("port bars: got %d, want %d", len(pbars), len(s.Ports))
	}
	for _, b := range pbars {
		found := false
		for _, p := range s.Ports {
			if p.Port == b.Port {
				found = true
				if b.Count != fmt.Sprint(p.Count) {
					t.Errorf("bar port %s: got data-count %s, want %d", b.Port, b.Count, p.Count)
				}
			}
		}
		if !found {
			t.Errorf("bar for port %s is not in the tallies", b.Port)
		}
	}
}

// balanceThousands formats n like the page does (en-US grouping).
func balanceThousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// pidCounts turns the page's per-worker tallies into pid -> count.
func (s balanceSnapshot) pidCounts() map[string]int {
	m := map[string]int{}
	for _, w := range s.Pids {
		m[w.Pid] += w.Count
	}
	return m
}

func balanceKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
