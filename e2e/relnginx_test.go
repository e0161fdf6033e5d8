package e2e

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// relNetnsEnv marks the run of a test inside its private network namespace.
const relNetnsEnv = "LBSERVER_REL_NETNS"

// relInNetns re-runs the calling test alone inside `unshare -n` (a private
// network namespace with only loopback), where nginx's fixed ports (80,
// 8080-8085) are free whatever runs on the machine. It reports true in the
// outer run (the caller returns) and false inside (the caller goes on).
func relInNetns(t *testing.T) (outer bool) {
	t.Helper()
	if os.Getenv(relNetnsEnv) != "" {
		return false
	}
	relRequireRoot(t)
	requireTool(t, "unshare")
	requireTool(t, "ip")
	cmd := exec.Command("unshare", "-n", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), relNetnsEnv+"=1", "LBSERVER_BIN="+binPath)
	p := StartCmd(t, cmd)
	if !p.Wait(5 * time.Minute) {
		t.Fatal("the test in its network namespace did not finish in 5m")
	}
	out := p.Output.String()
	if err := p.Err(); err != nil || !strings.Contains(out, "--- PASS: "+t.Name()) {
		t.Fatalf("the test failed inside its network namespace: %v\n%s", err, out)
	}
	var report []string // the test's own lines, without the processes' logs
	for line := range strings.Lines(out) {
		if strings.Contains(line, "_test.go:") || strings.Contains(line, "--- ") {
			report = append(report, strings.TrimRight(line, "\n"))
		}
	}
	t.Logf("inside unshare -n:\n%s", strings.Join(report, "\n"))
	return true
}

// relNginxConf is deploy/nginx/topology-b.conf, or the minimal equivalent
// in testdata while that file is not in the tree.
func relNginxConf(t *testing.T) string {
	t.Helper()
	conf := filepath.Join(repoRoot(), "deploy", "nginx", "topology-b.conf")
	if _, err := os.Stat(conf); err == nil {
		return conf
	}
	conf, _ = filepath.Abs(filepath.Join("testdata", "nginx-topology-b.conf"))
	t.Logf("deploy/nginx/topology-b.conf not in the tree; using %s", conf)
	return conf
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
	if relInNetns(t) {
		return
	}
	conf := relNginxConf(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(unixSigName(sig), func(t *testing.T) { relNginxKill(t, nginx, conf, sig) })
	}
}

func relNginxKill(t *testing.T, nginx, conf string, sig syscall.Signal) {
	prefix := t.TempDir()
	// nginx's workers run as nobody: let them reach the prefix.
	for _, d := range []string{filepath.Dir(prefix), prefix} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
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
	args := []string{"-p", prefix, "-c", conf}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "\ndaemon ") {
		args = append(args, "-g", "daemon off;")
	}
	ng := StartCmd(t, exec.Command(nginx, args...))
	t.Cleanup(func() {
		_ = ng.Signal(syscall.SIGQUIT)
		ng.Wait(5 * time.Second)
	})
	WaitHTTP(t, ng, "http://127.0.0.1/api/randoms?cant=10", 20*time.Second)

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
		filepath.Base(conf), kills, unixSigName(sig), res, cut)
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
