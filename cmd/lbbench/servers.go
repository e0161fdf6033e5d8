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
	"time"

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

// trivialInfo is what the trivial handler encodes: the same kind of facts,
// the way a first version would do it (encoding/json on every request).
type trivialInfo struct {
	Pid       int    `json:"pid"`
	Ppid      int    `json:"ppid"`
	Platform  string `json:"platform"`
	GoVersion string `json:"goVersion"`
	CPUs      int    `json:"cpus"`
	Cwd       string `json:"cwd"`
	Uptime    string `json:"uptime"`
}

// startTrivial serves GET /api/info with a trivial net/http JSON handler on a
// free loopback port, in this process.
func startTrivial() (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/info", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(trivialInfo{
			Pid: os.Getpid(), Ppid: os.Getppid(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
			GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Cwd: cwd, Uptime: time.Since(started).String(),
		})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with srv.Close
	return srv, "http://" + ln.Addr().String() + "/api/info", nil
}

// kernelResult is the randoms kernel measured in-process.
type kernelResult struct {
	SingleNs, AllNs, NaiveNs float64 // ns per number: one core, all cores (wall), naive on one core
	Cores                    int
	DefaultMs                float64 // the default request, 100,000,000 numbers, all cores
	JSONMicros               float64 // AppendJSON of 1000 keys
}

// measureKernel times the kernel (median of several runs) and the naive
// reference, one after the other in this process.
func measureKernel(ctx context.Context, quick bool) kernelResult {
	runs := 5
	if quick {
		runs = 3
	}
	median := func(f func()) time.Duration {
		ds := make([]time.Duration, runs)
		for i := range ds {
			t0 := time.Now()
			f()
			ds[i] = time.Since(t0)
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	const small = 1 << 24
	k := kernelResult{Cores: runtime.GOMAXPROCS(0)}
	k.SingleNs = float64(median(func() { _, _ = randoms.CountSeeded(ctx, small, 1, 1) }).Nanoseconds()) / small
	k.AllNs = float64(median(func() { _, _ = randoms.CountSeeded(ctx, 4*small, 0, 1) }).Nanoseconds()) / (4 * small)
	k.DefaultMs = float64(median(func() { _, _ = randoms.Count(ctx, 100_000_000, 0) }).Microseconds()) / 1000
	const naiveN = 1 << 20
	k.NaiveNs = float64(median(func() { _ = naiveCount(naiveN) }).Nanoseconds()) / naiveN
	c, _ := randoms.CountSeeded(ctx, 10_000_000, 0, 1)
	buf := make([]byte, 0, 16<<10)
	const reps = 200
	k.JSONMicros = float64(median(func() {
		for range reps {
			buf = c.AppendJSON(buf[:0])
		}
	}).Nanoseconds()) / reps / 1000
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
