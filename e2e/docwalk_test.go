package e2e

// The documents, followed in order, work. TestDocWalk runs the shell blocks
// (```sh fences) of README.md, docs/TROUBLESHOOTING.md, docs/PROBLEMAS.md,
// docs/COMMANDS.md and docs/PROCESS-MANAGERS.md (TestDocWalkFirstSteps: docs/TUTORIAL.md and
// docs/PRIMEROS-PASOS.md) one after the other, as a user pastes them, in a fresh copy of the
// repository with its own HOME, PM2_HOME and FOREVER_ROOT, inside a private
// network and pid namespace (the shipped ports 80 and 8080-8085 are free
// there, and nothing outlives the namespace). After some blocks it checks
// what the text around them claims: which port answers, "100 each", that a
// pid file names the process that runs, that nothing is left running after
// the stop commands.
//
// A block that cannot run in a test is preceded by a marker the walk reads:
//
//	<!-- docwalk: skip (reason) -->        not run (holds a terminal, needs systemd, ...)
//	<!-- docwalk: any-status (reason) -->  run; a non-zero exit is expected
//
// TestDocWalkTwinsSayTheSame checks that the Spanish twins have the same
// commands, in the same order, with the same markers.

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walkBlock is one ```sh block of a document.
type walkBlock struct {
	File   string // base name
	Line   int    // of the opening fence
	Text   string
	Mark   string // "", "skip" or "any-status"
	Reason string
}

func (b walkBlock) String() string { return fmt.Sprintf("%s:%d", b.File, b.Line) }

var walkMarker = regexp.MustCompile(`^<!-- docwalk: (skip|any-status) \((.+)\) -->$`)

// walkBlocks returns the sh blocks of a Markdown file with their markers
// (the nearest non-empty line before the fence).
func walkBlocks(path string) ([]walkBlock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	var out []walkBlock
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(trimmed, "```") {
			continue
		}
		lang := strings.TrimPrefix(trimmed, "```")
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if lang != "sh" {
			continue
		}
		blk := walkBlock{File: filepath.Base(path), Line: start + 1, Text: strings.Join(body, "\n") + "\n"}
		for j := start - 1; j >= 0; j-- {
			prev := strings.TrimSpace(lines[j])
			if prev == "" {
				continue
			}
			if m := walkMarker.FindStringSubmatch(prev); m != nil {
				blk.Mark, blk.Reason = m[1], m[2]
			} else if strings.HasPrefix(prev, "<!-- docwalk") {
				return nil, fmt.Errorf("%s:%d: malformed marker %q (want <!-- docwalk: skip|any-status (reason) -->)", blk.File, j+1, prev)
			}
			break
		}
		out = append(out, blk)
	}
	return out, nil
}

// walkCommands is a block's commands without comments, one string per line.
func walkCommands(tb testing.TB, b walkBlock) []string {
	tb.Helper()
	var out []string
	for line := range strings.Lines(b.Text) {
		words, err := docLex(line)
		if err != nil {
			tb.Fatalf("%s: %v", b, err)
		}
		var ws []string
		for _, w := range words {
			ws = append(ws, w.S)
		}
		if len(ws) > 0 {
			out = append(out, strings.Join(ws, " "))
		}
	}
	return out
}

func TestDocWalkTwinsSayTheSame(t *testing.T) {
	skipped := 0
	for _, pair := range [][2]string{{"COMMANDS.md", "COMANDOS.md"}, {"PROCESS-MANAGERS.md", "GESTORES-DE-PROCESOS.md"},
		{"TUTORIAL.md", "PRIMEROS-PASOS.md"}, {"TROUBLESHOOTING.md", "PROBLEMAS.md"}} {
		en, err := walkBlocks(filepath.Join(repoRoot(), "docs", pair[0]))
		if err != nil {
			t.Fatal(err)
		}
		es, err := walkBlocks(filepath.Join(repoRoot(), "docs", pair[1]))
		if err != nil {
			t.Fatal(err)
		}
		if len(en) != len(es) {
			t.Errorf("%s has %d sh blocks, %s has %d", pair[0], len(en), pair[1], len(es))
			continue
		}
		for i := range en {
			a, b := walkCommands(t, en[i]), walkCommands(t, es[i])
			if strings.Join(a, "\n") != strings.Join(b, "\n") {
				t.Errorf("%s and %s say different commands:\n%s\n---\n%s", en[i], es[i], strings.Join(a, "\n"), strings.Join(b, "\n"))
			}
			if en[i].Mark != es[i].Mark {
				t.Errorf("%s is marked %q, %s %q", en[i], en[i].Mark, es[i], es[i].Mark)
			}
		}
	}
	for _, f := range walkDocs {
		bs, err := walkBlocks(filepath.Join(repoRoot(), f))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.Mark == "skip" {
				skipped++
				t.Logf("%s skipped: %s", b, b.Reason)
			}
		}
	}
	t.Logf("%d sh blocks of %v are marked skip", skipped, walkDocs)
}

// walkDocs are the documents TestDocWalk follows, in this order.
var walkDocs = []string{"README.md", "docs/TROUBLESHOOTING.md", "docs/PROBLEMAS.md", "docs/COMMANDS.md", "docs/PROCESS-MANAGERS.md"}

// walkCheck is a claim of the text around a block, checked after the first
// block (of file) whose text contains after.
type walkCheck struct {
	file, after string
	check       func(t *testing.T, w *walker, out string)
}

// walker runs blocks in one copy of the repository, carrying the exported
// environment from block to block as a user's shell does.
type walker struct {
	dir   string   // the copy
	env   []string // the environment of every block
	state string   // file with `export -p` after the last block
}

// run runs one block under bash -e -o pipefail and returns its output (the
// processes it leaves behind keep writing to a file, not a pipe) and error.
func (w *walker) run(t *testing.T, b walkBlock, timeout time.Duration) (string, error) {
	t.Helper()
	outFile := filepath.Join(filepath.Dir(w.state), fmt.Sprintf("out-%s-%d", b.File, b.Line))
	f, err := os.Create(outFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	script := fmt.Sprintf("[ -f %[1]q ] && source %[1]q\ntrap 'export -p > %[1]q' EXIT\nset -eo pipefail\n%[2]s", w.state, userPace(b.Text))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = w.dir, w.env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("did not finish within %s", timeout)
	}
	out, _ := os.ReadFile(outFile)
	return string(out), err
}

// walkForeverStart matches a line that starts forever monitors.
var walkForeverStart = regexp.MustCompile(`(?m)^(forever start .*)$`)

// userPace gives each `forever start` the second a user takes to read its
// output: forever returns before its monitors have registered, and a
// `forever stop` or `stopall` typed at once does not see them yet.
func userPace(text string) string {
	return walkForeverStart.ReplaceAllString(text, "$1\nsleep 1")
}

// walkProcs lists the processes in the namespace whose command line matches re.
func walkProcs(re string) []string {
	rx := regexp.MustCompile(re)
	var out []string
	for _, pid := range Pids(func(pid int) bool { return pid != os.Getpid() }) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		cl := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		if rx.MatchString(cl) {
			out = append(out, strconv.Itoa(pid)+" "+cl)
		}
	}
	return out
}

// nothingLeft waits until no lbserver and no nginx runs in the namespace.
func nothingLeft(t *testing.T, after string) {
	t.Helper()
	var left []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		left = walkProcs(`(^|/)lbserver( |$)|^nginx: `)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still running:\n%s", after, strings.Join(left, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pidFileRuns checks that run/pids/lbserver-PORT.pid names a live lbserver
// on PORT, and returns the pid.
func (w *walker) pidFileRuns(t *testing.T, port string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, "run", "pids", "lbserver-"+port+".pid"))
	if err != nil {
		t.Fatalf("pid file of %s: %v", port, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !Alive(pid) || !strings.Contains(string(cl), "lbserver") || !strings.Contains(string(cl), port) {
		t.Fatalf("run/pids/lbserver-%s.pid says %d, which is not a live lbserver on %s (%q)", port, pid, port, cl)
	}
	return pid
}

// answeredBy is the X-Server-Pid of GET http://127.0.0.1:PORT/healthz.
func answeredBy(t *testing.T, port string) int {
	t.Helper()
	r := MustGet(t, "http://127.0.0.1:"+port+"/healthz")
	pid, _ := strconv.Atoi(r.Header.Get("X-Server-Pid"))
	return pid
}

var hundredEach = regexp.MustCompile(`(?mi)^\s*100 X-Server-Port: (808[2-5])\r?$`)

func walkChecks() []walkCheck {
	contains := func(wants ...string) func(*testing.T, *walker, string) {
		return func(t *testing.T, _ *walker, out string) {
			t.Helper()
			for _, want := range wants {
				if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		}
	}
	demo := func(t *testing.T, _ *walker, out string) {
		t.Helper()
		m := regexp.MustCompile(`(?m)^\s+(808[2-5])\s+100$`).FindAllStringSubmatch(out, -1)
		if len(m) != 4 || !regexp.MustCompile(`(?m)^\s+failed\s+0$`).MatchString(out) {
			t.Errorf("make demo: want 100 answers from each of 8082-8085 and 0 failed:\n%s", out)
		}
	}
	var pid8080 int
	checks := []walkCheck{
		// README.md
		{"README.md", "--mode CLUSTER --workers 2 &", func(t *testing.T, w *walker, out string) {
			contains("X-Server-Pid:")(t, w, out)
			if n := len(regexp.MustCompile(`(?m)^\s*\d+ .*lbserver --port 8081`).FindAllString(out, -1)); n < 2 {
				t.Errorf("ps --ppid listed %d workers, want 2:\n%s", n, out)
			}
			nothingLeft(t, "kill -TERM of the master")
		}},
		{"README.md", "make stack-a      #", func(t *testing.T, w *walker, out string) {
			contains("topology A is up", "topology B is up")(t, w, out)
			demo(t, w, out)
			nothingLeft(t, "make stack-down")
		}},
		{"README.md", "make pm2-a", func(t *testing.T, w *walker, out string) {
			contains("lbserver-cluster", "online", "forever: stopped lbserver-8081")(t, w, out)
			if strings.Contains(out, "errored") || strings.Contains(out, "STOPPED") {
				t.Errorf("a PM2 app errored or a forever process stopped:\n%s", out)
			}
			nothingLeft(t, "make pm2-down and make forever-down")
		}},
		// docs/COMMANDS.md
		{"COMMANDS.md", "make build ", func(t *testing.T, w *walker, out string) {
			contains("lbserver build ", "--mode")(t, w, out)
		}},
		{"COMMANDS.md", "make stack-a ", func(t *testing.T, w *walker, out string) {
			contains("topology A is up", "topology B is up", "topology B, run folder")(t, w, out)
			demo(t, w, out)
			nothingLeft(t, "make stack-down")
		}},
		{"COMMANDS.md", "scripts/bg.sh ./bin/lbserver --host 127.0.0.1 --port 8081 --mode CLUSTER", func(t *testing.T, w *walker, out string) {
			pid8080 = w.pidFileRuns(t, "8080")
			w.pidFileRuns(t, "8081")
			if got := answeredBy(t, "8080"); got != pid8080 {
				t.Errorf("8080 answered from pid %d, its pid file says %d", got, pid8080)
			}
		}},
		{"COMMANDS.md", "topology-a.conf\"       #", contains("X-Server-Port: 8081", "X-Upstream: 127.0.0.1:8081", "X-Server-Port: 8080")},
		{"COMMANDS.md", "topology-a.conf\" -s quit", func(t *testing.T, w *walker, out string) {
			Eventually(t, 30*time.Second, "topology A's 8081 and nginx gone", func() bool {
				return len(walkProcs(`^nginx: |lbserver --host 127.0.0.1 --port 8081`)) == 0
			})
		}},
		{"COMMANDS.md", "scripts/bg.sh ./bin/lbserver --host 127.0.0.1 --port 8085 --mode FORK", func(t *testing.T, w *walker, out string) {
			contains("lbserver :8080 already runs")(t, w, out)
			for _, p := range []string{"8082", "8083", "8084", "8085"} {
				w.pidFileRuns(t, p)
			}
			if got := w.pidFileRuns(t, "8080"); got != pid8080 || answeredBy(t, "8080") != pid8080 {
				t.Errorf("8080: pid file %d, answered by %d; want topology A's instance, pid %d, untouched", got, answeredBy(t, "8080"), pid8080)
			}
		}},
		{"COMMANDS.md", "topology-b.conf\"\n", func(t *testing.T, w *walker, out string) {
			if m := hundredEach.FindAllStringSubmatch(out, -1); len(m) != 4 {
				t.Errorf("want 100 answers from each of 8082-8085 (round robin):\n%s", out)
			}
		}},
		{"COMMANDS.md", "make stack-down                                     #", func(t *testing.T, w *walker, out string) {
			nothingLeft(t, "the stop commands")
		}},
		{"COMMANDS.md", "make stack-b BALANCER=haproxy", func(t *testing.T, w *walker, out string) {
			contains("topology B is up (haproxy on port 80)", "lbserver_randoms,r8082,UP", "lbserver_randoms,r8085,UP")(t, w, out)
			demo(t, w, out)
		}},
		{"COMMANDS.md", "--shutdown-delay 3s >>", func(t *testing.T, w *walker, out string) {
			contains(`{"error":"stopping"} 503`)(t, w, out)
			if n := len(regexp.MustCompile(`(?m)^200$`).FindAllString(out, -1)); n != 2 {
				t.Errorf("want 200 from /api/randoms and from /livez while 8083 stops (2 lines), got %d:\n%s", n, out)
			}
		}},
		{"COMMANDS.md", "kill -USR2", func(t *testing.T, w *walker, out string) {
			contains("X-Server-Port: 8081")(t, w, out)
			nothingLeft(t, "make stack-down after HAProxy")
			if left := walkProcs(`(^|/)haproxy `); len(left) != 0 {
				t.Errorf("HAProxy still runs after make stack-down: %v", left)
			}
		}},
		{"COMMANDS.md", "pm2 kill", func(t *testing.T, w *walker, out string) {
			contains("lbserver-cluster", "online", "lbserver-b")(t, w, out)
			nothingLeft(t, "pm2 kill")
			if left := walkProcs(`^PM2 v`); len(left) != 0 {
				t.Errorf("the PM2 daemon still runs after pm2 kill: %v", left)
			}
		}},
		{"COMMANDS.md", "forever stopall", func(t *testing.T, w *walker, out string) {
			if strings.Contains(out, "STOPPED") {
				t.Errorf("a forever process stopped on its own (a port taken?):\n%s", out)
			}
			nothingLeft(t, "forever stopall")
		}},
		// docs/PROCESS-MANAGERS.md
		{"PROCESS-MANAGERS.md", "pm2 delete deploy/pm2/ecosystem.config.js", func(t *testing.T, w *walker, out string) {
			contains("lbserver-cluster", "lbserver-b", "online")(t, w, out)
			nothingLeft(t, "pm2 delete")
		}},
		{"PROCESS-MANAGERS.md", "forever stopall", func(t *testing.T, w *walker, out string) {
			if strings.Contains(out, "STOPPED") {
				t.Errorf("a forever process stopped on its own:\n%s", out)
			}
			nothingLeft(t, "forever stopall")
		}},
	}
	checks = append(checks, troubleshootingChecks("TROUBLESHOOTING.md")...)
	return append(checks, troubleshootingChecks("PROBLEMAS.md")...)
}

// walkCopy copies the repository to dst, without what a build or a run
// leaves (bin/, run/, .git), and links tools/node_modules.
func walkCopy(t *testing.T, dst string) {
	t.Helper()
	src := repoRoot()
	err := copyRepo(dst, func(rel string, d fs.DirEntry) bool {
		switch rel {
		case ".git", "bin", "run", filepath.Join("tools", "node_modules"):
			return true // a worktree's .git is a file
		}
		return strings.HasSuffix(rel, ".test")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "tools", "node_modules"), filepath.Join(dst, "tools", "node_modules")); err != nil {
		t.Fatal(err)
	}
}

func TestDocWalk(t *testing.T) {
	if !inNamespace(t, "nginx", "haproxy") {
		return
	}
	for _, tool := range []string{"make", "curl", "setsid", "go"} {
		requireTool(t, tool)
	}
	pmTool(t, "pm2")
	pmTool(t, "forever")
	w := newWalker(t)
	pm2 := filepath.Join(repoRoot(), "tools", "node_modules", ".bin", "pm2")
	forever := filepath.Join(repoRoot(), "tools", "node_modules", ".bin", "forever")
	t.Cleanup(func() {
		for _, c := range [][]string{{pm2, "kill"}, {forever, "stopall"}} {
			cmd := exec.Command(c[0], c[1:]...)
			cmd.Env = w.env
			_ = cmd.Run()
		}
	})
	w.follow(t, walkDocs, walkChecks())
}

// TestDocWalkFirstSteps follows the tutorial and its Spanish twin, which
// need nothing but Go and curl (and no root; the test runs them in a private
// namespace only so that their fixed ports are free and nothing outlives it).
func TestDocWalkFirstSteps(t *testing.T) {
	if !inPrivateNamespace(t) {
		return
	}
	for _, tool := range []string{"curl", "go", "ps", "pgrep"} {
		requireTool(t, tool)
	}
	var checks []walkCheck
	for _, f := range firstStepsDocs {
		checks = append(checks, tutorialChecks(filepath.Base(f))...)
	}
	newWalker(t).follow(t, firstStepsDocs, checks)
}

// firstStepsDocs are the documents TestDocWalkFirstSteps follows.
var firstStepsDocs = []string{"docs/TUTORIAL.md", "docs/PRIMEROS-PASOS.md"}

// newWalker makes a fresh copy of the repository with its own HOME,
// PM2_HOME and FOREVER_ROOT, and the environment its blocks run with.
func newWalker(t *testing.T) *walker {
	t.Helper()
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		_ = os.Chmod(d, 0o755) // nginx's workers run as nobody: they enter run/nginx
	}
	w := &walker{dir: filepath.Join(tmp, "lbserver"), state: filepath.Join(tmp, "walk", "env")}
	for _, d := range []string{w.dir, filepath.Dir(w.state), filepath.Join(tmp, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	walkCopy(t, w.dir)
	goEnv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	ge := strings.Split(strings.TrimSpace(string(goEnv)), "\n")
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "PORT", "MODE", "LBSERVER_BIN", "HOME", "PM2_HOME", "FOREVER_ROOT", "GOCACHE", "GOMODCACHE", "GOPATH", ngxEnvInside:
		default:
			w.env = append(w.env, kv)
		}
	}
	w.env = append(w.env, "HOME="+filepath.Join(tmp, "home"), "PM2_HOME="+filepath.Join(tmp, "pm2"),
		"FOREVER_ROOT="+filepath.Join(tmp, "forever"), "GOCACHE="+ge[0], "GOMODCACHE="+ge[1], "GOPATH="+ge[2], "GOFLAGS=-buildvcs=false")
	return w
}

// follow runs the sh blocks of docs in order, each check after the first
// block its text names, and fails for a check that did not run.
func (w *walker) follow(t *testing.T, docs []string, checks []walkCheck) {
	t.Helper()
	used := make([]bool, len(checks))
	ran, skipped, start := 0, 0, time.Now()
	for _, doc := range docs {
		blocks, err := walkBlocks(filepath.Join(w.dir, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			if b.Mark == "skip" {
				skipped++
				continue
			}
			bStart := time.Now()
			out, err := w.run(t, b, 2*time.Minute)
			ran++
			t.Logf("%s ran in %s", b, time.Since(bStart).Round(time.Millisecond))
			if err != nil && b.Mark != "any-status" {
				t.Fatalf("%s failed: %v\n%s\noutput:\n%s", b, err, b.Text, out)
			}
			for i, c := range checks {
				if !used[i] && c.file == b.File && strings.Contains(b.Text, c.after) {
					used[i] = true
					t.Run(fmt.Sprintf("%s/%s", b, strings.TrimSpace(c.after)), func(t *testing.T) { c.check(t, w, out) })
					if t.Failed() {
						t.FailNow()
					}
				}
			}
		}
		nothingLeft(t, "the whole of "+doc)
	}
	for i, c := range checks {
		if !used[i] {
			t.Errorf("no block of %s contains %q: the walk's check of that claim did not run", c.file, c.after)
		}
	}
	t.Logf("walked %v: %d sh blocks run, %d marked skip, in %s", docs, ran, skipped, time.Since(start).Round(time.Second))
}
