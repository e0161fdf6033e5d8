//go:build linux

package main

import (
	"fmt"
	"html"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// report is everything one run measured, with the machine it ran on.
type report struct {
	Date, CPU, OS, GoVersion string
	Cores                    int
	LoadTool, Nginx          string
	Command                  string
	Quick, Namespaced        bool
	LoadBefore               string // /proc/loadavg: other work on the machine
	Plan                     plan
	Kernel                   kernelResult
	Configs                  []configResult
	Compare                  compareResult
	Peers                    *peersResult // nil: not measured
	Notes                    []string
	Took                     time.Duration // the whole run, measured
}

func newReport(o options) *report {
	r := &report{
		Date:       time.Now().UTC().Format("2006-01-02 15:04 MST"),
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		GoVersion:  runtime.Version(),
		Command:    o.command,
		Quick:      o.quick,
		Namespaced: o.inside,
		LoadBefore: loadAvg(),
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		r.OS = "Linux " + cstr(u.Release[:])
	}
	return r
}

func cstr(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// loadAvg is the 1, 5 and 15-minute load averages.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is the "model name" of /proc/cpuinfo, with its clock.
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	name, mhz := runtime.GOARCH, ""
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			name = strings.TrimSpace(v)
		case "cpu MHz":
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				mhz = fmt.Sprintf(" at %.0f MHz", f)
			}
		}
		if name != runtime.GOARCH && mhz != "" {
			break
		}
	}
	return name + mhz
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 1:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func rps(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func check(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// route finds a configuration's result for a route path.
func (c configResult) route(path string) (routeResult, bool) {
	for _, r := range c.Routes {
		if r.Path == path {
			return r, true
		}
	}
	return routeResult{}, false
}

func (r *report) config(key string) (configResult, bool) {
	for _, c := range r.Configs {
		if c.Key == key && c.Err == "" {
			return c, true
		}
	}
	return configResult{}, false
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	mode := "full"
	if r.Quick {
		mode = "quick (short measurements: indicative only)"
	}
	p("# Benchmarks\n\n")
	p("Written by `lbbench` (cmd/lbbench) on %s by `%s`, which took %s. Reproduce with `make bench` (the full run) or `BENCH_QUICK=1 make bench` (under a minute, indicative only).\n\n", r.Date, r.Command, r.Took)
	p("| Machine | |\n|---|---|\n")
	p("| CPU | %s, %d cores |\n| OS | %s |\n| Go | %s |\n| Load generator | %s |\n", r.CPU, r.Cores, r.OS, r.GoVersion, r.LoadTool)
	if r.Nginx != "" {
		p("| nginx | %s |\n", strings.TrimPrefix(r.Nginx, "nginx version: "))
	}
	p("| Load average before the run (1, 5, 15 min) | %s |\n", r.LoadBefore)
	p("| Mode | %s: each route warmed up %v, then loaded %v (best of %d runs); %d connections on /api/info, %d on the randoms routes |\n\n",
		mode, r.Plan.warm, r.Plan.measure, r.Plan.repeat, r.Plan.lightConns, r.Plan.heavyConns)
	p("Everything runs on this one machine: the servers, nginx and the load generator share the same %d cores, ", r.Cores)
	p("so the figures compare configurations measured in the same run; they are not the capacity of a dedicated server. ")
	p("A load average before the run well above 0 means other work shared the cores; the runs keep the best of their repeats to limit its effect.")
	if r.Namespaced {
		p(" The run used private network and pid namespaces, so the topologies used their shipped ports (80, 8080-8085).")
	}
	p("\n\n![requests per second by configuration and route, and /api/info p99 under saturation](benchmarks.svg)\n\n")

	k := r.Kernel
	if k.SingleNs > 0 {
		r.kernelSection(&b)
	}

	p("## Requests per second and latency\n\n")
	p("| Configuration | Route | req/s | p50 | p99 | errors |\n|---|---|---|---|---|---|\n")
	for _, c := range r.Configs {
		if c.Err != "" {
			p("| %s | (failed: %s) | | | | |\n", c.Name, firstLine(c.Err))
			continue
		}
		for _, rt := range c.Routes {
			p("| %s | %s | %s | %s | %s | %d of %d |\n", c.Name, rt.Name, rps(rt.RPS), ms(rt.P50), ms(rt.P99), rt.Errors, rt.Requests)
		}
	}
	p("\nErrors are non-2xx answers (a 503 from admission control counts) plus connection errors and timeouts.\n\n")

	p("## Processes, memory, start-up and recovery\n\n")
	p("| Configuration | What runs | Processes | Total RSS | Start-up to first answered request | Worker SIGKILL to replacement answering |\n|---|---|---|---|---|---|\n")
	for _, c := range r.Configs {
		if c.Err != "" {
			continue
		}
		rep := "n/a"
		if c.Replace > 0 {
			rep = fmt.Sprintf("%s (%d requests failed meanwhile)", ms(c.Replace), c.ReplaceFailed)
		}
		p("| %s | %s | %d | %s | %s | %s |\n", c.Name, c.Desc, c.Procs, mib(c.RSSBytes), ms(c.Startup), rep)
	}
	p("\nTotal RSS is the sum of VmRSS over every process the configuration runs (nginx included), read after the load. ")
	p("Start-up runs from starting the processes to the first 200 on /api/info (through nginx: also on /api/randoms). ")
	p("The replacement time polls /api/info with a new connection each time until a pid that was not a worker before answers.\n\n")

	p("## /api/info while the CPU is saturated\n\n")
	p("Heavy clients send the default /api/randoms (100,000,000 numbers) back to back; meanwhile one client asks /api/info every 5 ms ")
	p("for %v (best of %d runs: the lowest p99). In topologies A and B /api/info is served by its own FORK instance on 8080, which is the point of them.\n\n", r.Plan.sat, r.Plan.repeat)
	p("| Configuration | Heavy clients | Heavy answered 200 / 503 | /api/info samples | p50 | p99 | max | p99 under 10 ms |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Configs {
		if c.Err != "" || c.Sat.Samples == 0 {
			continue
		}
		s := c.Sat
		p("| %s | %d | %d / %d | %d | %s | %s | %s | %s |\n", c.Name, s.HeavyConns, s.HeavyOK, s.Heavy503, s.Samples, ms(s.P50), ms(s.P99), ms(s.Max), check(s.P99 < 10*time.Millisecond))
	}
	p("\n")

	if cmp := r.Compare; cmp.Naive.RPS > 0 && cmp.Minimal.RPS > 0 {
		p("## /api/info against trivial net/http JSON handlers\n\n")
		p("Same load generator and connections (%d), %v each, in interleaved rounds (best of %d): lbserver FORK's /api/info, then two ", r.Plan.lightConns, r.Plan.compare, r.Plan.repeat)
		p("handlers written the way a first version would be (cmd/lbbench/servers.go), served by a plain `http.Server`: ")
		p("the same document (same keys) built per request with encoding/json from facts looked up each time, ")
		p("and a minimal two-key map through encoding/json. The last row is net/http sending lbserver's own answer (its headers and body, captured once) from constants, ")
		p("with no timeouts, metrics or connection tracking: the ceiling for any net/http handler that sends what lbserver sends.\n\n")
		p("| Server | req/s | p50 | p99 | errors | lbserver's ratio |\n|---|---|---|---|---|---|\n")
		p("| lbserver /api/info | %s | %s | %s | %d | |\n", rps(cmp.Info.RPS), ms(cmp.Info.P50), ms(cmp.Info.P99), cmp.Info.Errors)
		p("| trivial handler, same document | %s | %s | %s | %d | **%.2fx** |\n", rps(cmp.Naive.RPS), ms(cmp.Naive.P50), ms(cmp.Naive.P99), cmp.Naive.Errors, cmp.Info.RPS/cmp.Naive.RPS)
		p("| trivial handler, minimal `{\"pid\",\"platform\"}` | %s | %s | %s | %d | %.2fx |\n", rps(cmp.Minimal.RPS), ms(cmp.Minimal.P50), ms(cmp.Minimal.P99), cmp.Minimal.Errors, cmp.Info.RPS/cmp.Minimal.RPS)
		if cmp.Ceiling.RPS > 0 {
			p("| net/http, lbserver's answer from constants | %s | %s | %s | %d | %.2fx |\n", rps(cmp.Ceiling.RPS), ms(cmp.Ceiling.P50), ms(cmp.Ceiling.P99), cmp.Ceiling.Errors, cmp.Info.RPS/cmp.Ceiling.RPS)
		}
		p("\n")
	}

	if r.Peers != nil {
		r.Peers.section(&b, r.Command)
	}

	p("## Ratios measured in this run\n\n")
	ratio := func(a, b string, path, label string) {
		ca, ok1 := r.config(a)
		cb, ok2 := r.config(b)
		if !ok1 || !ok2 {
			return
		}
		ra, _ := ca.route(path)
		rb, _ := cb.route(path)
		if rb.RPS > 0 {
			p("- %s, %s: %s does %.2fx the requests/s of %s.\n", label, path, ca.Name, ra.RPS/rb.RPS, cb.Name)
		}
	}
	for _, path := range []string{"/api/info", "/info", "/api/randoms?cant=1000000", "/api/randoms"} {
		ratio("CLUSTER", "FORK", path, "CLUSTER vs FORK")
	}
	for _, path := range []string{"/api/randoms?cant=1000000", "/api/randoms"} {
		ratio("CLUSTER", "CLUSTER1", path, "Every CPU per worker (lbserver's choice) vs GOMAXPROCS=1")
	}
	for _, c := range r.Configs {
		html, ok1 := c.route("/info")
		js, ok2 := c.route("/api/info")
		if ok1 && ok2 && js.RPS > 0 {
			p("- %s: /info (HTML) does %.2fx the requests/s of /api/info (p99 %s vs %s).\n", c.Name, html.RPS/js.RPS, ms(html.P99), ms(js.P99))
		}
	}
	for _, path := range []string{"/api/randoms?cant=1000000", "/api/randoms"} {
		ratio("B", "A", path, "Topology B vs A")
		ratio("A", "CLUSTER", path, "Topology A vs CLUSTER direct")
	}
	if k.SingleNs > 0 {
		p("- Kernel vs naive reference, one core: %.0fx.\n", k.NaiveNs/k.SingleNs)
	}
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	for _, c := range r.Configs {
		if c.Err != "" {
			p("- %s failed: %s\n", c.Name, strings.ReplaceAll(firstLine(c.Err), "|", "/"))
		}
	}
	return b.String()
}

func (r *report) kernelSection(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	k := r.Kernel
	p("## The randoms kernel (in-process, median of runs)\n\n")
	p("CPU time comes from clock_gettime's CPU clocks, so time spent waiting for a core is not counted; ")
	p("`go test -bench . ./internal/randoms` gives the same figures as Go benchmarks.\n\n")
	p("The drawing loop is bound by its counter increments, not by drawing: `go test -bench 'FillWords|IncrementsOnly' ./internal/randoms` shows that a loop doing only the increments, from indices drawn beforehand, costs about as much per number.\n\n")
	p("| Figure | Measured | Target | Met |\n|---|---|---|---|\n")
	p("| ns per number, one core (CPU time) | %.3f | at most 0.8 | %s |\n", k.SingleNs, check(k.SingleNs <= 0.8))
	p("| ns per number per core, all %d cores drawing (CPU time) | %.3f | at most 0.8 | %s |\n", k.Cores, k.AllCoreNs, check(k.AllCoreNs <= 0.8))
	p("| default request, 100,000,000 numbers, all cores (wall time) | %.1f ms | under 50 ms | %s |\n", k.DefaultMs, check(k.DefaultMs < 50))
	p("| encoding the answer, 1000 keys (CPU time) | %.1f µs | under 50 µs | %s |\n", k.JSONMicros, check(k.JSONMicros < 50))
	p("| naive reference (math/rand/v2 IntN into a map), one core (CPU time) | %.2f ns per number | | |\n", k.NaiveNs)
	p("| kernel vs naive, one core | **%.0fx** faster | at least 30x | %s |\n\n", k.NaiveNs/k.SingleNs, check(k.NaiveNs/k.SingleNs >= 30))
}

// panel is one bar group of the chart: a figure per configuration.
type panel struct {
	title  string
	value  func(configResult) float64
	label  func(float64) string
	target float64 // drawn as a dashed line when > 0
}

// svg draws one panel per route (requests/s) and one for /api/info's p99
// under saturation, a bar per configuration in each.
func (r *report) svg() string {
	const (
		panelW, panelH = 300, 260
		top, bottom    = 50, 70
		left           = 20
	)
	colors := []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"}
	var ok []configResult
	for _, c := range r.Configs {
		if c.Err == "" {
			ok = append(ok, c)
		}
	}
	var panels []panel
	for _, rt := range routes(r.Plan) {
		panels = append(panels, panel{
			title: rt.Name + ", req/s",
			value: func(c configResult) float64 { v, _ := c.route(rt.Path); return v.RPS },
			label: rps,
		})
	}
	panels = append(panels, panel{
		title:  "/api/info p99 under saturation, ms",
		value:  func(c configResult) float64 { return float64(c.Sat.P99) / float64(time.Millisecond) },
		label:  func(v float64) string { return fmt.Sprintf("%.1f", v) },
		target: 10,
	})
	w := panelW*len(panels) + left
	h := panelH + top + bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<title>lbserver benchmarks (%s, %s)</title>`+"\n", html.EscapeString(r.CPU), r.Date)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">lbserver: requests/s by route (higher is better) and /api/info p99 while the CPU is saturated (lower is better); %d cores, %s</text>`+"\n", left, r.Cores, r.Date)
	for i, pn := range panels {
		x0 := left + i*panelW
		maxV := pn.target * 1.2
		for _, c := range ok {
			maxV = max(maxV, pn.value(c))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, top-10, html.EscapeString(pn.title))
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`+"\n", x0, top+panelH, x0+panelW-30, top+panelH)
		if len(ok) == 0 || maxV == 0 {
			continue
		}
		scale := float64(panelH-20) / maxV
		barW := (panelW - 40) / len(ok)
		for j, c := range ok {
			v := pn.value(c)
			bh := int(v * scale)
			x := x0 + j*barW + 4
			y := top + panelH - bh
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %s</title></rect>`+"\n",
				x, y, barW-8, bh, colors[j%len(colors)], html.EscapeString(c.Name), pn.label(v))
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+(barW-8)/2, y-4, pn.label(v))
		}
		if pn.target > 0 {
			y := top + panelH - int(pn.target*scale)
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#c00" stroke-dasharray="5,4"/><text x="%d" y="%d" fill="#c00">target %s</text>`+"\n",
				x0, y, x0+panelW-30, y, x0+panelW-90, y-4, pn.label(pn.target))
		}
	}
	// Legend.
	for j, c := range ok {
		x := left + j*190
		y := top + panelH + 30
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			x, y-10, colors[j%len(colors)], x+16, y, html.EscapeString(c.Name))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">%s; reproduce with: %s</text>`+"\n", left, h-12, html.EscapeString(r.CPU), html.EscapeString(r.Command))
	b.WriteString("</svg>\n")
	return b.String()
}
