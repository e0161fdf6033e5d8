//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/lbserver/lbserver/internal/randoms"
)

// startNginx runs nginx in the foreground with the topology's shipped
// configuration (or a minimal equivalent) and its own prefix folder.
func startNginx(o options, s setup) (*proc, string, error) {
	prefix, err := os.MkdirTemp("", "lbbench-nginx-")
	if err != nil {
		return nil, "", err
	}
	// nginx's workers run as nobody when started by root: they must be
	// able to enter the prefix.
	if err := os.Chmod(prefix, 0o755); err != nil {
		return nil, prefix, err
	}
	if err := os.Mkdir(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return nil, prefix, err
	}
	conf := s.nginxConf
	if conf == "" {
		conf = filepath.Join(prefix, "nginx.conf")
		if err := os.WriteFile(conf, []byte(minimalNginxConf(s)), 0o644); err != nil {
			return nil, prefix, err
		}
	}
	confText, err := os.ReadFile(conf)
	if err != nil {
		return nil, prefix, err
	}
	if out, err := exec.Command("nginx", "-t", "-q", "-p", prefix+"/", "-c", conf).CombinedOutput(); err != nil {
		return nil, prefix, fmt.Errorf("nginx -t -c %s: %w\n%s", conf, err, out)
	}
	args := []string{"-p", prefix + "/", "-c", conf}
	if !strings.Contains(string(confText), "daemon ") {
		args = append(args, "-g", "daemon off;")
	}
	p, err := startProc("nginx", args...)
	return p, prefix, err
}

// minimalNginxConf is the topology when deploy/nginx has no configuration
// for it: keep-alive upstreams, /api/randoms to the heavy upstream.
func minimalNginxConf(s setup) string {
	var heavy strings.Builder
	for _, a := range s.apps[1:] {
		fmt.Fprintf(&heavy, "        server 127.0.0.1:%d;\n", a.port)
	}
	return `pid logs/nginx.pid;
error_log logs/error.log warn;
worker_processes auto;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    upstream light { server 127.0.0.1:` + strconv.Itoa(s.apps[0].port) + `; keepalive 16; }
    upstream heavy {
` + heavy.String() + `        keepalive 32;
    }
    server {
        listen ` + strconv.Itoa(s.entry) + `;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffers 8 16k;
        location = /api/randoms { proxy_pass http://heavy; proxy_read_timeout 300s; proxy_next_upstream error timeout http_503; }
        location / { proxy_pass http://light; }
    }
}
`
}

// startTrivial serves, on a free loopback port in this process, two
// trivial net/http JSON handlers, the way a first version would write them:
//
//   - /api/info: the same document as lbserver's /api/info (same keys), built
//     on every request with encoding/json from facts looked up each time
//     (os.Executable, os.Getwd, /proc/self/statm for the RSS);
//   - /minimal: a two-key map ({"pid", "platform"}) through encoding/json,
//     the least a JSON handler can do;
//   - /same-bytes: lbserver's own answer (ceilHeader, ceilBody: its headers
//     and body, captured once) written from constants, with no timeouts,
//     metrics or connection tracking: the ceiling for any net/http handler
//     that sends what lbserver sends.
func startTrivial(ceilHeader http.Header, ceilBody []byte) (srv *http.Server, infoURL, minimalURL, ceilingURL string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", "", "", err
	}
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/info", func(w http.ResponseWriter, r *http.Request) {
		exe, _ := os.Executable()
		cwd, _ := os.Getwd()
		var rss int64
		if b, err := os.ReadFile("/proc/self/statm"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 1 {
				pages, _ := strconv.ParseInt(f[1], 10, 64)
				rss = pages * int64(os.Getpagesize())
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"args": os.Args, "platform": runtime.GOOS + "/" + runtime.GOARCH, "goVersion": runtime.Version(),
			"rssBytes": rss, "execPath": exe, "pid": os.Getpid(), "ppid": os.Getppid(), "cwd": cwd,
			"cpus": runtime.NumCPU(), "mode": "FORK", "workerId": 0, "port": ln.Addr().(*net.TCPAddr).Port,
			"uptimeSeconds": time.Since(started).Seconds(), "build": "trivial",
		})
	})
	mux.HandleFunc("GET /minimal", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"pid": os.Getpid(), "platform": runtime.GOOS})
	})
	ceil := ceilHeader.Clone()
	ceil.Del("Date") // net/http adds its own
	mux.HandleFunc("GET /same-bytes", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range ceil {
			h[k] = v
		}
		_, _ = w.Write(ceilBody)
	})
	srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with srv.Close
	base := "http://" + ln.Addr().String()
	return srv, base + "/api/info", base + "/minimal", base + "/same-bytes", nil
}

// kernelResult is the randoms kernel measured in-process. Per-number costs
// are CPU time (clock_gettime), so other load on the machine does not inflate
// them; the default request is wall time, as a client sees it.
type kernelResult struct {
	SingleNs, NaiveNs float64 // CPU ns per number on one core: the kernel, the naive reference
	AllCoreNs         float64 // CPU ns per number per core with every core drawing
	Cores             int
	DefaultMs         float64 // wall time of the default request, 100,000,000 numbers, all cores
	JSONMicros        float64 // AppendJSON of 1000 keys
}

// cpuTime reads a CPU-time clock with clock_gettime: precise to the
// nanosecond (getrusage counts in scheduler ticks).
func cpuTime(clock uintptr) time.Duration {
	var ts syscall.Timespec
	_, _, _ = syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clock, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// clockProcessCPU is CLOCK_PROCESS_CPUTIME_ID of clock_gettime(2).
const clockProcessCPU = 2

// measureKernel times the kernel and the naive reference, one after the
// other in this process, and keeps the median of several runs of each.
func measureKernel(ctx context.Context, quick bool) kernelResult {
	runs := 5
	if quick {
		runs = 3
	}
	median := func(clock func() time.Duration, f func()) time.Duration {
		ds := make([]time.Duration, runs)
		for i := range ds {
			t0 := clock()
			f()
			ds[i] = clock() - t0
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	// The process clock: nothing else runs in lbbench meanwhile. (A thread
	// clock would need LockOSThread, which makes every yield of the kernel
	// a hand-off between threads.)
	process := func() time.Duration { return cpuTime(clockProcessCPU) }
	wall := func() time.Duration { return time.Duration(time.Now().UnixNano()) }
	const small = 1 << 26
	k := kernelResult{Cores: randoms.DefaultParallelism()}
	// One core: GOMAXPROCS 1, so that no idle P's thread spins looking for
	// work (the process clock would count it) when the kernel yields.
	prev := runtime.GOMAXPROCS(1)
	k.SingleNs = float64(median(process, func() { _, _ = randoms.CountSeeded(ctx, small, 1, 1) })) / small
	const naiveN = 1 << 20
	k.NaiveNs = float64(median(process, func() { _ = naiveCount(naiveN) })) / naiveN
	runtime.GOMAXPROCS(prev)
	k.AllCoreNs = float64(median(process, func() { _, _ = randoms.CountSeeded(ctx, 4*small, 0, 1) })) / (4 * small)
	k.DefaultMs = float64(median(wall, func() { _, _ = randoms.Count(ctx, 100_000_000, 0) })) / 1e6
	c, _ := randoms.CountSeeded(ctx, 10_000_000, 0, 1)
	buf := make([]byte, 0, 16<<10)
	const reps = 200
	k.JSONMicros = float64(median(process, func() {
		for range reps {
			buf = c.AppendJSON(buf[:0])
		}
	})) / reps / 1000
	return k
}

// naiveCount is the reference most first versions look like: the global
// generator and a map (the same as in internal/randoms' benchmarks).
func naiveCount(total int) map[int]int {
	m := make(map[int]int)
	for range total {
		m[rand.IntN(randoms.Max-randoms.Min+1)+randoms.Min]++
	}
	return m
}
