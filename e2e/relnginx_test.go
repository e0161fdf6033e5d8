package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// relStartNginx runs nginx in the foreground with conf and its own prefix,
// and waits until url answers through it.
func relStartNginx(t *testing.T, nginx, conf, url string) string {
	t.Helper()
	prefix := ngxPrefix(t)
	args := []string{"-p", prefix, "-c", conf}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "\ndaemon ") {
		args = append(args, "-g", "daemon off;")
	}
	ng := StartCmd(t, exec.Command(nginx, args...))
	t.Cleanup(func() {
		_ = ng.Signal(syscall.SIGQUIT)
		ng.Wait(5 * time.Second)
		if !t.Failed() {
			return
		}
		// The errors that reached clients, without the retried ones.
		b, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
		var keep []string
		for line := range strings.Lines(string(b)) {
			if !strings.Contains(line, "while connecting to upstream") || strings.Contains(line, "no live upstreams") {
				keep = append(keep, line)
			}
		}
		if len(keep) > 200 {
			keep = keep[:200]
		}
		t.Logf("nginx error.log (connect failures left out):\n%s", strings.Join(keep, ""))
	})
	WaitHTTP(t, ng, url, 20*time.Second)
	return prefix
}

// TestReliabilityNginxTopologyAReload: through nginx topology A (port 80,
// /api/randoms to a CLUSTER on 8081 over upstream keep-alive connections),
// 20 rolling reloads of the CLUSTER by SIGHUP under 32 clients fail no
// request. This is where the keep-alive race of a drain shows: nginx may
// send a request on an idle upstream connection the worker is closing.
func TestReliabilityNginxTopologyAReload(t *testing.T) {
	nginx := requireTool(t, "nginx")
	if !ngxInNamespace(t) {
		return
	}
	cluster := StartLB(t, "--port", "8081", "--host", "127.0.0.1", "--mode", "CLUSTER", "--workers", "2")
	relNginxReloads(t, nginx, cluster, "SIGHUP", func(int) {
		if err := cluster.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReliabilityNginxTopologyAReloadWatch: the same, with the reloads made
// by --watch: the CLUSTER's executable is replaced on disk 20 times (as a
// deploy or a rebuild does) under 32 clients through nginx, and no request
// fails.
func TestReliabilityNginxTopologyAReloadWatch(t *testing.T) {
	nginx := requireTool(t, "nginx")
	if !ngxInNamespace(t) {
		return
	}
	exe := relCopyBin(t, t.TempDir())
	orig, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	cluster := StartCmd(t, exec.Command(exe, "--port", "8081", "--host", "127.0.0.1", "--mode", "CLUSTER", "--workers", "2", "--watch"))
	relWaitLog(t, cluster, "watching", 1, 20*time.Second)
	relNginxReloads(t, nginx, cluster, "--watch", func(i int) {
		// A different file each time, so that its build id changes.
		relReplaceFile(t, exe, append(slices.Clip(orig), []byte(fmt.Sprintf("\nrebuild %d\n", i))...))
	})
}

// relNginxReloads starts the rest of topology A around cluster (FORK on
// 8080, nginx on 80 with the shipped config), runs 32 clients through nginx
// and calls reload relReloads times, waiting each time for the master's
// "rolling reload finished"; no request may fail.
func relNginxReloads(t *testing.T, nginx string, cluster *Proc, how string, reload func(i int)) {
	t.Helper()
	conf := ngxConf("topology-a.conf")
	fork := StartLB(t, "--port", "8080", "--host", "127.0.0.1", "--mode", "FORK")
	WaitHTTP(t, fork, "http://127.0.0.1:8080/healthz", 20*time.Second)
	WaitHTTP(t, cluster, "http://127.0.0.1:8081/healthz", 20*time.Second)
	relWaitWorkers(t, cluster, 2)
	relStartNginx(t, nginx, conf, "http://127.0.0.1/api/randoms?cant=10")

	load := relStartLoad(t, relLoadOpts{URL: "http://127.0.0.1/api/randoms?cant=1000", KeepAlive: 16, PerRequest: 16,
		MaxTime: 90 * time.Second, Timeout: 20 * time.Second})
	start := time.Now()
	for i := range relReloads {
		reload(i)
		relWaitLog(t, cluster, "rolling reload finished", i+1, 30*time.Second)
	}
	took := time.Since(start)
	res := load.Stop()
	t.Logf("nginx topology A (%s): %d %s reloads in %s under 32 clients: %s", filepath.Base(conf), relReloads, how, took.Round(time.Millisecond), res)
	relAssertNoLoss(t, res)
	if got := len(res.ByPid); got < relReloads {
		t.Errorf("answers came from %d distinct worker pids, want at least %d (the load must span the reloads)", got, relReloads)
	}
}

// TestReliabilityNginxTopologyBKill: through nginx topology B (port 80,
// /api/randoms round robin over four FORK instances with retries), killing
// a random one of the four instances every 200ms for 10s (and starting it
// again at once) under 32 concurrent clients:
//
//   - with SIGTERM (kill's default, what a deploy sends) costs the clients
//     nothing: the instance stops accepting, finishes what it runs, and nginx
//     resends anything refused or cut before its header to another one;
//   - with SIGKILL costs nothing either, except a response the instance had
//     begun to send (its header reached nginx, the body was cut): nginx
//     has already passed the header to the client and cannot retry. Those
//     are bounded and reported.
//
// The instance on 8080 serves only the other routes (one upstream, nothing
// to retry on), so it is not killed.
func TestReliabilityNginxTopologyBKill(t *testing.T) {
	nginx := requireTool(t, "nginx")
	if !ngxInNamespace(t) {
		return
	}
	conf := ngxConf("topology-b.conf")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(relSigName(sig), func(t *testing.T) { relNginxKill(t, nginx, conf, sig) })
	}
}

func relNginxKill(t *testing.T, nginx, conf string, sig syscall.Signal) {
	start := func(port int) *Proc {
		return StartLB(t, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "FORK")
	}
	fork := start(8080)
	WaitHTTP(t, fork, "http://127.0.0.1:8080/healthz", 20*time.Second)
	ports := []int{8082, 8083, 8084, 8085}
	inst := map[int]*Proc{}
	for _, port := range ports {
		inst[port] = start(port)
		WaitHTTP(t, inst[port], "http://127.0.0.1:"+strconv.Itoa(port)+"/healthz", 20*time.Second)
	}
	prefix := relStartNginx(t, nginx, conf, "http://127.0.0.1/api/randoms?cant=10")

	load := relStartLoad(t, relLoadOpts{URL: "http://127.0.0.1/api/randoms?cant=1000", KeepAlive: 16, PerRequest: 16,
		MaxTime: 30 * time.Second, Timeout: 20 * time.Second})
	kills := 0
	end := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		<-tick.C
		port := ports[rand.IntN(len(ports))]
		p := inst[port]
		_ = p.Signal(sig)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		// Its listener is closed at once (SIGKILL: dead; SIGTERM: draining).
		Eventually(t, 5*time.Second, "instance on "+addr+" stopped listening", func() bool {
			return relDialRefused(addr)
		})
		kills++
		inst[port] = start(port) // back at once; nginx retries meanwhile
	}
	res := load.Stop()
	logs, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
	cut := strings.Count(string(logs), "while reading upstream") // body phase: the header was already sent
	t.Logf("nginx topology B (%s), %d %s in 10s under 32 clients: %s; nginx errors on the body (not retryable): %d",
		filepath.Base(conf), kills, relSigName(sig), res, cut)
	if kills < 40 {
		t.Errorf("only %d kills in 10s, want about 50", kills)
	}
	if res.OK < 1000 {
		t.Errorf("only %d requests answered: the load did not run", res.OK)
	}
	if sig == syscall.SIGTERM || res.Failed > 5 {
		relAssertNoLoss(t, res)
		return
	}
	for _, e := range res.Errors {
		if !strings.HasSuffix(e, "unexpected EOF") {
			t.Errorf("failure %q: with SIGKILL only a response cut after its header may fail", e)
		}
	}
}
