package config

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// nproc is the number of CPUs this process may run on, as coreutils'
// nproc counts them (sched_getaffinity): the expectation comes from outside
// the code under test.
func nproc(tb testing.TB) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nproc").Output()
	if err != nil {
		tb.Fatalf("nproc: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n < 1 {
		tb.Fatalf("nproc printed %q", out)
	}
	return n
}

func TestParseGood(t *testing.T) {
	cpus := nproc(t) // the default: one worker per CPU
	tests := []struct {
		name    string
		args    []string
		env     func(string) string
		port    int
		mode    Mode
		workers int
	}{
		{"defaults", nil, env(), 8080, ModeFork, cpus},
		{"long flags", []string{"--port", "8081", "--mode", "CLUSTER"}, env(), 8081, ModeCluster, cpus},
		{"equals form", []string{"--port=8082", "--mode=fork"}, env(), 8082, ModeFork, cpus},
		{"short flags", []string{"-p", "9000", "-m", "cluster", "--workers", "3"}, env(), 9000, ModeCluster, 3},
		{"spanish alias", []string{"--modo", "Cluster"}, env(), 8080, ModeCluster, cpus},
		{"env", nil, env("PORT", "7000", "MODE", "cluster"), 7000, ModeCluster, cpus},
		{"flag beats env", []string{"--port", "7001"}, env("PORT", "7000"), 7001, ModeFork, cpus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, tt.env, &bytes.Buffer{})
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			if c.Port != tt.port || c.Mode != tt.mode || c.Workers != tt.workers {
				t.Errorf("got port=%d mode=%s workers=%d, want %d %s %d", c.Port, c.Mode, c.Workers, tt.port, tt.mode, tt.workers)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		args []string
		env  func(string) string
		want string // part of the one-line message
	}{
		{[]string{"--mode", "turbo"}, env(), "valid modes are FORK and CLUSTER"},
		{[]string{"--modo", ""}, env(), "valid modes are FORK and CLUSTER"},
		{nil, env("MODE", "x"), "valid modes are FORK and CLUSTER"},
		{[]string{"--port", "0"}, env(), "1 to 65535"},
		{[]string{"--port", "65536"}, env(), "1 to 65535"},
		{[]string{"--port", "-1"}, env(), "1 to 65535"},
		{[]string{"--port", "http"}, env(), "1 to 65535"},
		{nil, env("PORT", "99999"), "1 to 65535"},
		{[]string{"--bogus"}, env(), "flag provided but not defined: -bogus"},
		{[]string{"--port"}, env(), "flag needs an argument"},
		{[]string{"extra"}, env(), "unexpected argument"},
		{[]string{"--workers", "0", "--mode", "cluster"}, env(), "1 to 1024"},
		{[]string{"--max-cant", "0"}, env(), "at least 1"},
		{[]string{"--default-cant", "5", "--max-cant", "4"}, env(), "--max-cant"},
		{[]string{"--drain-timeout", "-1s"}, env(), "negative"},
		{[]string{"--shutdown-delay", "-1s"}, env(), "invalid --shutdown-delay -1s: valid values are 0 to 5m0s"},
		{[]string{"--shutdown-delay", "6m"}, env(), "invalid --shutdown-delay 6m0s"},
		{[]string{"--shutdown-delay", "3"}, env(), "invalid value \"3\" for flag -shutdown-delay"},
		{[]string{"--build", "make"}, env(), "--build needs --watch-dir"},
		{[]string{"--watch-dir", "."}, env(), "--watch-dir needs --watch"},
		{[]string{"--reuseport", "--mode", "cluster"}, env(), "--reuseport is for FORK"},
		{[]string{"--host-name", "a b"}, env(), "invalid --host-name"},
		{[]string{"--host-name", "x\r\nSet-Cookie: y"}, env(), "invalid --host-name"},
		{nil, env("LBSERVER_HOST_NAME", "host:1"), "invalid --host-name"},
		{[]string{"--host-name", strings.Repeat("h", 254)}, env(), "invalid --host-name"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.args, tt.env, &bytes.Buffer{})
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("Parse(%q): got %v, want a *UsageError", tt.args, err)
			continue
		}
		if !strings.Contains(ue.Msg, tt.want) || strings.Contains(ue.Msg, "\n") {
			t.Errorf("Parse(%q): got %q, want one line containing %q", tt.args, ue.Msg, tt.want)
		}
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if _, err := Parse([]string{"--help"}, env(), &out); !errors.Is(err, ErrHelp) {
		t.Fatalf("got %v, want ErrHelp", err)
	}
	for _, f := range []string{"--port", "--mode", "--modo", "--workers", "--host", "--max-cant", "--drain-timeout",
		"--reuseport", "--watch", "--watch-dir", "--build", "--check", "--compute-slots", "--queue", "--master-metrics", "--shared-socket", "--host-name", "--shutdown-delay"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
}

func TestHostName(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  func(string) string
		want string
	}{
		{"default", nil, env(), ""},
		{"flag", []string{"--host-name", "host1"}, env(), "host1"},
		{"env", nil, env("LBSERVER_HOST_NAME", "app-2.example.net"), "app-2.example.net"},
		{"flag beats env", []string{"--host-name", "lb"}, env("LBSERVER_HOST_NAME", "host3"), "lb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, tt.env, &bytes.Buffer{})
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			if c.HostName != tt.want {
				t.Errorf("HostName: got %q, want %q", c.HostName, tt.want)
			}
			if tt.want != "" && !strings.Contains(c.String(), "host-name="+tt.want) {
				t.Errorf("String() = %q, want it to show host-name=%s", c.String(), tt.want)
			}
		})
	}
}

func TestSupervised(t *testing.T) {
	c, _ := Parse([]string{"--watch"}, env(), &bytes.Buffer{})
	if !c.Supervised() || c.WorkerCount() != 1 {
		t.Errorf("FORK --watch: supervised=%v workers=%d, want true 1", c.Supervised(), c.WorkerCount())
	}
	c, _ = Parse(nil, env(), &bytes.Buffer{})
	if c.Supervised() {
		t.Error("plain FORK must not be supervised")
	}
	c, _ = Parse([]string{"--drain-timeout", "3s", "--host", "::1", "--port", "81"}, env(), &bytes.Buffer{})
	if c.DrainTimeout != 3*time.Second || c.Addr() != "[::1]:81" {
		t.Errorf("got drain=%s addr=%s, want 3s [::1]:81", c.DrainTimeout, c.Addr())
	}
	if c.ShutdownDelay != 0 || strings.Contains(c.String(), "shutdown-delay") {
		t.Errorf("default shutdown delay: got %s (%q), want 0 and not in the summary", c.ShutdownDelay, c.String())
	}
	c, err := Parse([]string{"--shutdown-delay", "3s", "--mode", "cluster"}, env(), &bytes.Buffer{})
	if err != nil || c.ShutdownDelay != 3*time.Second || !strings.Contains(c.String(), " shutdown-delay=3s") {
		t.Errorf("--shutdown-delay 3s: got %s (%q), err %v, want 3s in the summary", c.ShutdownDelay, c.String(), err)
	}
}

// A bad value that came from the environment names the variable, so a user
// who typed no flag knows where to look.
func TestParseBadEnvNamesTheVariable(t *testing.T) {
	tests := []struct {
		args []string
		env  func(string) string
		want string
		not  string
	}{
		{nil, env("MODE", "clustre"), "environment variable MODE", ""},
		{nil, env("PORT", "80x"), "environment variable PORT", ""},
		{[]string{"--mode", "clustre"}, env("MODE", "fork"), "--mode", "environment"},
		{[]string{"--port", "0"}, env("PORT", "8080"), "1 to 65535", "environment"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.args, tt.env, &bytes.Buffer{})
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("Parse(%q): got %v, want a *UsageError", tt.args, err)
			continue
		}
		if !strings.Contains(ue.Msg, tt.want) || (tt.not != "" && strings.Contains(ue.Msg, tt.not)) {
			t.Errorf("Parse(%q): got %q, want it to contain %q and not %q", tt.args, ue.Msg, tt.want, tt.not)
		}
	}
}

// --shared-socket is a CLUSTER setting: FORK refuses it, as nginx refuses a
// directive where it does not apply, rather than ignoring it.
func TestSharedSocketNeedsCluster(t *testing.T) {
	for _, args := range [][]string{{"--shared-socket"}, {"--shared-socket", "--watch"}, {"--mode", "fork", "--shared-socket"}} {
		_, err := Parse(args, env(), &bytes.Buffer{})
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(ue.Msg, "CLUSTER") {
			t.Errorf("Parse(%q): got %v, want a usage error naming CLUSTER", args, err)
		}
	}
	if _, err := Parse([]string{"--mode", "cluster", "--shared-socket"}, env(), &bytes.Buffer{}); err != nil {
		t.Errorf("CLUSTER --shared-socket: %v", err)
	}
}

// --check prints every setting that changes what runs.
func TestStringShowsEverySetting(t *testing.T) {
	c, err := Parse([]string{"--mode", "cluster", "--master-metrics", "127.0.0.1:9100", "--shared-socket"}, env(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"master-metrics=127.0.0.1:9100", "shared-socket", "mode=CLUSTER"} {
		if !strings.Contains(c.String(), want) {
			t.Errorf("String() = %q, want it to contain %q", c.String(), want)
		}
	}
}

// A flag that does not apply to the mode is refused with exit 2 (as the
// README says), not accepted by --check and then ignored: --workers belongs
// to CLUSTER, --master-metrics to a master (CLUSTER, or FORK with --watch).
func TestFlagsOutsideTheirModeAreRefused(t *testing.T) {
	bad := []struct {
		args []string
		env  func(string) string
		want string
	}{
		{[]string{"--mode", "FORK", "--workers", "4"}, env(), "--workers is for CLUSTER"},
		{[]string{"--workers", "4"}, env(), "--workers is for CLUSTER"},
		{[]string{"--workers", "2", "--watch"}, env(), "--workers is for CLUSTER"},
		{[]string{"--workers", "2"}, env("MODE", "cluster", "PORT", "8081"), ""}, // valid: MODE says CLUSTER
		{[]string{"--mode", "FORK", "--master-metrics", "127.0.0.1:9100"}, env(), "--master-metrics is for a master"},
		{[]string{"--master-metrics", "127.0.0.1:9100"}, env("MODE", "fork"), "--master-metrics is for a master"},
	}
	for _, tt := range bad {
		_, err := Parse(tt.args, tt.env, &bytes.Buffer{})
		if tt.want == "" {
			if err != nil {
				t.Errorf("Parse(%q): got %v, want no error", tt.args, err)
			}
			continue
		}
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(ue.Msg, tt.want) || strings.Contains(ue.Msg, "\n") {
			t.Errorf("Parse(%q): got %v, want a one-line usage error containing %q", tt.args, err, tt.want)
		}
	}
	for _, args := range [][]string{
		{"--mode", "CLUSTER", "--workers", "4"},
		{"--mode", "CLUSTER", "--master-metrics", "127.0.0.1:9100"},
		{"--mode", "FORK", "--watch", "--master-metrics", "127.0.0.1:9100"},
	} {
		if _, err := Parse(args, env(), &bytes.Buffer{}); err != nil {
			t.Errorf("Parse(%q): got %v, want no error", args, err)
		}
	}
}
