//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestQuickReport runs the quick mode against one FORK instance (no nginx,
// no namespaces, no kernel timing) and checks it wrote a report with
// numbers: the runner must not rot. It checks that it runs, not the figures.
func TestQuickReport(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "lbserver")
	build := exec.Command("go", "build", "-o", bin, "./cmd/lbserver")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "docs")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"-quick", "-configs", "FORK", "-netns", "off", "-nginx", "off", "-kernel=false", "-bin", bin, "-out", out}
	if err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("lbbench %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`\| FORK \| /api/info \(light\) \| ([0-9.]+) \|`,
		`\| FORK \| /info \(HTML, light\) \| ([0-9.]+) \|`,
		`- FORK: /info \(HTML\) does ([0-9.]+)x the requests/s of /api/info`,
		`\| FORK \| /api/randoms\?cant=1000000 \(heavy\) \| ([0-9.]+) \|`,
		`\| FORK \| /api/randoms \(default, 100,000,000\) \| ([0-9.]+) \|`,
		`\| lbserver /api/info \| ([0-9.]+) \|`,
		`\| trivial handler, same document \| ([0-9.]+) \|`,
		`\| trivial handler, minimal [^|]* \| ([0-9.]+) \|`,
		`\| net/http, lbserver's answer from constants \| ([0-9.]+) \|`,
		`\| FORK \| one lbserver process \(--mode FORK\) \| 1 \| ([0-9.]+) MiB \|`,
	} {
		m := regexp.MustCompile(re).FindSubmatch(md)
		if m == nil {
			t.Errorf("report lacks a line matching %s:\n%s", re, md)
			continue
		}
		if v, _ := strconv.ParseFloat(string(m[1]), 64); v <= 0 {
			t.Errorf("report line %q: got %s, want a positive number", m[0], m[1])
		}
	}
	svg, err := os.ReadFile(filepath.Join(out, "benchmarks.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<svg")) || bytes.Count(svg, []byte("<rect")) < 4 {
		t.Errorf("benchmarks.svg does not look like a bar chart:\n%s", svg)
	}
}

func TestParseWrk(t *testing.T) {
	const out = `Running 5s test @ http://127.0.0.1:8080/api/info
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms    2.66ms  24.00ms   86.52%
    Req/Sec    28.10k     1.30k   30.20k    60.00%
  Latency Distribution
     50%  850.00us
     75%    1.25ms
     90%    2.38ms
     99%   12.44ms
  140200 requests in 5.01s, 89.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  27984.03
Transfer/sec:     17.78MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{Tool: "wrk", Requests: 140200, Errors: 10, RPS: 27984.03, P50: 850 * time.Microsecond, P99: 12440 * time.Microsecond}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Error("got no error for wrk output without figures")
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(ds, 50); got != 50*time.Millisecond {
		t.Errorf("p50: got %v, want 50ms", got)
	}
	if got := percentile(ds, 99); got != 99*time.Millisecond {
		t.Errorf("p99: got %v, want 99ms", got)
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing: got %v, want 0", got)
	}
}
