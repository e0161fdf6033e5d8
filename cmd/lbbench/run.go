//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// envInside marks the lbbench process that runs inside the namespaces.
const envInside = "LBBENCH_INSIDE_NETNS"

// options are lbbench's flags.
type options struct {
	bin     string   // the lbserver binary
	out     string   // folder for BENCHMARKS.md and benchmarks.svg
	repo    string   // repository root (deploy/nginx/*.conf)
	quick   bool     // short measurements
	configs []string // which configurations, in order
	nginx   string   // auto | off
	netns   string   // auto | off
	load    string   // auto | wrk | go
	command string   // the command shown in the report
	kernel  bool     // measure the randoms kernel in-process
	inside  bool     // running inside the private namespaces
	peers   string   // folder of the peers' binaries (bench/peers); "" for none
}

// plan is how long and how hard each measurement runs.
type plan struct {
	warm, measure time.Duration // per route
	repeat        int           // measurements per route; the best one is kept
	sat           time.Duration // /api/info probing under saturation
	compare       time.Duration // /api/info vs the trivial handler
	lightConns    int
	heavyConns    int
	satConns      int
}

func planFor(quick bool) plan {
	if quick {
		return plan{warm: 300 * time.Millisecond, measure: time.Second, repeat: 1, sat: 1500 * time.Millisecond,
			compare: time.Second, lightConns: 50, heavyConns: 8, satConns: 4}
	}
	return plan{warm: time.Second, measure: 5 * time.Second, repeat: 2, sat: 5 * time.Second,
		compare: 5 * time.Second, lightConns: 50, heavyConns: 8, satConns: 4}
}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{inside: getenv(envInside) == "1"}
	fs := flag.NewFlagSet("lbbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "bin/lbserver", "lbserver binary to measure")
	fs.StringVar(&o.out, "out", "docs", "folder where BENCHMARKS.md and benchmarks.svg are written")
	fs.StringVar(&o.repo, "repo", ".", "repository root (for deploy/nginx/topology-*.conf)")
	fs.BoolVar(&o.quick, "quick", getenv("BENCH_QUICK") != "" && getenv("BENCH_QUICK") != "0", "short measurements (under a minute; env BENCH_QUICK=1)")
	configs := fs.String("configs", "FORK,CLUSTER,CLUSTER1,A,B", "configurations to measure: FORK, CLUSTER, CLUSTER1 (CLUSTER with GOMAXPROCS=1 per worker), A (nginx topology A), B (nginx topology B)")
	fs.StringVar(&o.nginx, "nginx", "auto", "auto: measure topologies A and B when nginx is installed; off: never")
	fs.StringVar(&o.netns, "netns", "auto", "auto: as root, run inside private net+pid namespaces (fixed ports, nothing leaks); off: free ports")
	fs.StringVar(&o.load, "load", "auto", "load generator: wrk, go (built in), or auto (wrk when installed)")
	fs.BoolVar(&o.kernel, "kernel", true, "measure the randoms kernel in-process (about 10 s)")
	fs.StringVar(&o.peers, "peers", "", "folder of the peers built from bench/peers (make bench: bin/peers): measure examples/hello against Node's cluster, fasthttp's prefork and net/http; empty: not measured")
	fs.StringVar(&o.command, "command", "", "the command shown in the report as the way to reproduce it")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for c := range strings.SplitSeq(*configs, ",") {
		c = strings.ToUpper(strings.TrimSpace(c))
		switch c {
		case "FORK", "CLUSTER", "CLUSTER1", "A", "B":
			o.configs = append(o.configs, c)
		case "":
		default:
			return o, fmt.Errorf("unknown configuration %q: use FORK, CLUSTER, CLUSTER1, A, B", c)
		}
	}
	if o.command == "" {
		o.command = "make bench"
		if o.quick {
			o.command = "BENCH_QUICK=1 make bench"
		}
	}
	var err error
	for _, p := range []*string{&o.bin, &o.out, &o.repo, &o.peers} {
		if *p == "" {
			continue
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return o, err
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("lbserver binary: %w (run make build, or pass -bin)", err)
	}
	if !o.inside && o.netns == "auto" && canUnshare() {
		return reexecInNamespaces(ctx, args, stdout, stderr)
	}
	rep, err := measureAll(ctx, o, stdout)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	md := filepath.Join(o.out, "BENCHMARKS.md")
	svg := filepath.Join(o.out, "benchmarks.svg")
	if err := os.WriteFile(md, []byte(rep.markdown()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(svg, []byte(rep.svg()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lbbench: wrote %s and %s\n", md, svg)
	return nil
}

// canUnshare says whether lbbench may run itself in private namespaces.
func canUnshare() bool {
	if os.Geteuid() != 0 {
		return false
	}
	for _, t := range []string{"unshare", "ip", "sh"} {
		if _, err := exec.LookPath(t); err != nil {
			return false
		}
	}
	return true
}

// reexecInNamespaces runs lbbench again inside new network and pid
// namespaces: loopback only, the fixed ports free, and everything started
// there killed by the kernel when the namespace's init (sh) ends.
func reexecInNamespaces(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmdArgs := append([]string{"--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
		"sh", "-c", `ip link set lo up && "$0" "$@"`, self}, args...)
	cmd := exec.CommandContext(ctx, "unshare", cmdArgs...)
	cmd.Env = append(os.Environ(), envInside+"=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run inside private namespaces: %w", err)
	}
	return nil
}

// app is one lbserver instance of a configuration.
type app struct {
	port int
	args []string
	env  []string // added to lbbench's environment
}

// setup is one configuration to measure.
type setup struct {
	key, name, desc string
	apps            []app
	nginxConf       string // "" = clients talk to the app directly
	entry           int    // the port clients use
	cluster         bool   // the entry app is a CLUSTER master
}

// setups builds the configurations to measure. Inside the namespaces they
// use the ports the topologies name; outside, free ports.
func setups(o options, nginxOK bool, notes *[]string) ([]setup, error) {
	port := func(fixed int) (int, error) {
		if o.inside {
			return fixed, nil
		}
		return freePort()
	}
	lb := func(p int, mode string, extra ...string) app {
		args := append([]string{"--port", strconv.Itoa(p), "--host", "127.0.0.1", "--mode", mode}, extra...)
		return app{port: p, args: args}
	}
	var out []setup
	for _, key := range o.configs {
		switch key {
		case "FORK":
			p, err := port(8080)
			if err != nil {
				return nil, err
			}
			out = append(out, setup{key: key, name: "FORK", desc: "one lbserver process (--mode FORK)",
				apps: []app{lb(p, "FORK")}, entry: p})
		case "CLUSTER":
			p, err := port(8081)
			if err != nil {
				return nil, err
			}
			out = append(out, setup{key: key, name: "CLUSTER", desc: "a master and 2 workers sharing the port (--mode CLUSTER --workers 2)",
				apps: []app{lb(p, "CLUSTER", "--workers", "2")}, entry: p, cluster: true})
		case "CLUSTER1":
			// lbserver keeps every CPU in each worker (cluster's
			// WorkerProcs -1); this is the cluster package's default
			// share instead, one CPU per worker, to measure that choice.
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			a := lb(p, "CLUSTER", "--workers", "2")
			a.env = []string{"GOMAXPROCS=1"}
			out = append(out, setup{key: key, name: "CLUSTER, GOMAXPROCS=1", desc: "CLUSTER with GOMAXPROCS=1 in each worker (cluster's default share) instead of every CPU (lbserver's choice)",
				apps: []app{a}, entry: p, cluster: true})
		case "A", "B":
			if !nginxOK {
				continue
			}
			if !o.inside {
				*notes = append(*notes, "Topology "+key+" skipped: it needs root (private namespaces for ports 80 and 8080-8085).")
				continue
			}
			conf := filepath.Join(o.repo, "deploy", "nginx", "topology-"+strings.ToLower(key)+".conf")
			if _, err := os.Stat(conf); err != nil {
				*notes = append(*notes, "Topology "+key+": "+conf+" not found; measured with lbbench's minimal equivalent.")
				conf = ""
			}
			s := setup{key: key, nginxConf: conf, entry: 80, apps: []app{lb(8080, "FORK")}}
			if key == "A" {
				s.name = "A: nginx + CLUSTER"
				s.desc = "nginx :80; /api/randoms -> CLUSTER :8081 (2 workers), the rest -> FORK :8080"
				s.apps = append(s.apps, lb(8081, "CLUSTER", "--workers", "2"))
			} else {
				s.name = "B: nginx + 4 FORK"
				s.desc = "nginx :80; /api/randoms round robin over FORK :8082-8085, the rest -> FORK :8080"
				for p := 8082; p <= 8085; p++ {
					s.apps = append(s.apps, lb(p, "FORK"))
				}
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// measureAll runs every measurement and gathers the report.
func measureAll(ctx context.Context, o options, log io.Writer) (*report, error) {
	p := planFor(o.quick)
	rep := newReport(o)
	began := time.Now()
	defer func() { rep.Took = time.Since(began).Round(time.Second) }()
	_, nginxErr := exec.LookPath("nginx")
	nginxOK := o.nginx != "off" && nginxErr == nil
	if o.nginx != "off" && nginxErr != nil {
		rep.Notes = append(rep.Notes, "nginx is not installed (apt-get install -y nginx): topologies A and B were not measured.")
	}
	load := loader(goLoad)
	rep.LoadTool = "built-in Go load generator"
	if _, err := exec.LookPath("wrk"); err == nil && o.load != "go" {
		load = wrkLoad
		rep.LoadTool = "wrk -t1 (" + toolVersion("wrk", "-v") + ")"
	} else if o.load == "wrk" {
		return nil, errors.New("wrk is not installed (apt-get install -y wrk)")
	}
	if nginxOK {
		rep.Nginx = toolVersion("nginx", "-v")
	}
	rep.Plan = p

	if o.kernel {
		fmt.Fprintln(log, "lbbench: measuring the randoms kernel in-process")
		rep.Kernel = measureKernel(ctx, o.quick)
	}

	if o.peers != "" {
		rep.Peers = measurePeers(ctx, o, p, load, log)
	}

	ss, err := setups(o, nginxOK, &rep.Notes)
	if err != nil {
		return nil, err
	}
	for _, s := range ss {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		fmt.Fprintf(log, "lbbench: %s (%s)\n", s.name, s.desc)
		res, err := measureSetup(ctx, o, p, s, load, rep)
		if err != nil {
			res.Err = err.Error()
			fmt.Fprintf(log, "lbbench: %s failed: %v\n", s.name, err)
		}
		rep.Configs = append(rep.Configs, res)
	}
	return rep, nil
}

// configResult is everything measured for one configuration.
type configResult struct {
	Key, Name, Desc string
	Procs           int
	RSSBytes        int64
	Startup         time.Duration
	Replace         time.Duration // CLUSTER: worker SIGKILL -> replacement answering
	ReplaceFailed   int           // requests that failed meanwhile
	Routes          []routeResult
	Sat             satResult
	Err             string
}

type routeResult struct {
	Name, Path string
	Conns      int
	loadResult
}

// routes are the routes measured everywhere. /info is the same facts as
// /api/info as an HTML page (wrk sends no Accept header).
func routes(p plan) []routeResult {
	return []routeResult{
		{Name: "/api/info (light)", Path: "/api/info", Conns: p.lightConns},
		{Name: "/info (HTML, light)", Path: "/info", Conns: p.lightConns},
		{Name: "/api/randoms?cant=1000000 (heavy)", Path: "/api/randoms?cant=1000000", Conns: p.heavyConns},
		{Name: "/api/randoms (default, 100,000,000)", Path: "/api/randoms", Conns: p.heavyConns},
	}
}

func measureSetup(ctx context.Context, o options, p plan, s setup, load loader, rep *report) (res configResult, err error) {
	res = configResult{Key: s.key, Name: s.name, Desc: s.desc}
	var (
		procs []*proc
		dirs  []string // removed once every process has stopped
	)
	defer func() {
		for _, pr := range slices.Backward(procs) {
			pr.stop(5 * time.Second)
		}
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}()
	start := time.Now()
	for _, a := range s.apps {
		pr, err := startProcEnv(a.env, o.bin, a.args...)
		if err != nil {
			return res, err
		}
		procs = append(procs, pr)
	}
	if s.key == "A" || s.key == "B" {
		pr, prefix, err := startNginx(o, s)
		if prefix != "" {
			dirs = append(dirs, prefix)
		}
		if err != nil {
			return res, err
		}
		procs = append(procs, pr)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(s.entry)
	// Answered: /api/info, and through nginx also the randoms upstream.
	if res.Startup, err = waitOK(ctx, base+"/api/info", start, 30*time.Second, procs); err != nil {
		return res, err
	}
	if s.key == "A" || s.key == "B" {
		if res.Startup, err = waitOK(ctx, base+"/api/randoms?cant=1", start, 30*time.Second, procs); err != nil {
			return res, err
		}
	}
	for _, r := range routes(p) {
		url := base + r.Path
		if _, err := goLoad(ctx, url, r.Conns, p.warm); err != nil {
			return res, err
		}
		// On a shared machine other work only ever slows a run down: the
		// run with the most requests/s is the least disturbed one.
		for range max(p.repeat, 1) {
			lr, err := load(ctx, url, r.Conns, p.measure)
			if err != nil {
				return res, err
			}
			if lr.RPS > r.RPS {
				r.loadResult = lr
			}
		}
		res.Routes = append(res.Routes, r)
	}
	for _, pr := range procs {
		b, n := treeRSS(pr.pid())
		res.RSSBytes += b
		res.Procs += n
	}
	for range max(p.repeat, 1) {
		if sr := saturated(ctx, base, p.satConns, p.sat); res.Sat.Samples == 0 || sr.P99 < res.Sat.P99 {
			res.Sat = sr // the least disturbed run, as for the routes
		}
	}
	if s.key == "FORK" {
		rep.Compare, err = compareTrivial(ctx, base+"/api/info", load, p)
		if err != nil {
			return res, err
		}
	}
	if s.cluster {
		res.Replace, res.ReplaceFailed, err = timeReplacement(ctx, procs[0].pid(), base)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// timeReplacement SIGKILLs one worker of the CLUSTER master and polls with
// new connections until a process that was not a worker before answers.
func timeReplacement(ctx context.Context, master int, base string) (time.Duration, int, error) {
	before := children(master)
	if len(before) == 0 {
		return 0, 0, fmt.Errorf("CLUSTER master %d has no workers", master)
	}
	old := map[string]bool{}
	for _, pid := range before {
		old[strconv.Itoa(pid)] = true
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	victim := before[0]
	t0 := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		return 0, 0, fmt.Errorf("kill worker %d: %w", victim, err)
	}
	failed := 0
	for time.Since(t0) < 20*time.Second {
		if ctx.Err() != nil {
			return 0, failed, ctx.Err()
		}
		resp, err := client.Get(base + "/api/info")
		if err != nil {
			failed++
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed++
			continue
		}
		if pid := resp.Header.Get("X-Server-Pid"); pid != "" && !old[pid] {
			return time.Since(t0), failed, nil
		}
		time.Sleep(500 * time.Microsecond)
	}
	return 0, failed, errNoReplacement
}

// compareResult is /api/info against trivial net/http JSON handlers, each
// loaded the same way, one after the other.
type compareResult struct {
	Info, Naive, Minimal, Ceiling loadResult
}

func compareTrivial(ctx context.Context, infoURL string, load loader, p plan) (compareResult, error) {
	var c compareResult
	hdr, body, err := capture(ctx, infoURL)
	if err != nil {
		return c, err
	}
	srv, naiveURL, minimalURL, ceilingURL, err := startTrivial(hdr, body)
	if err != nil {
		return c, err
	}
	defer srv.Close()
	// Interleaved rounds, best of each: other work on the machine hits all
	// three alike.
	for range max(p.repeat, 1) {
		for _, t := range []struct {
			url string
			dst *loadResult
		}{{infoURL, &c.Info}, {naiveURL, &c.Naive}, {minimalURL, &c.Minimal}, {ceilingURL, &c.Ceiling}} {
			if _, err := goLoad(ctx, t.url, p.lightConns, p.warm); err != nil {
				return c, err
			}
			r, err := load(ctx, t.url, p.lightConns, p.compare)
			if err != nil {
				return c, err
			}
			if r.RPS > t.dst.RPS {
				*t.dst = r
			}
		}
	}
	return c, nil
}

// capture fetches url once and returns the answer's headers and body.
func capture(ctx context.Context, url string) (http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Header, body, err
}

// toolVersion is the first line a tool prints about its version.
func toolVersion(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return firstLine(string(out))
}
