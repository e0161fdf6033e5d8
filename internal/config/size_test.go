package config

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"1024", 1024, true}, {"512K", 512 << 10, true},
		{"200M", 200 << 20, true}, {"200m", 200 << 20, true}, {"1G", 1 << 30, true},
		{"1.5G", 0, false}, {"abc", 0, false}, {"-1M", 0, false}, {"M", 0, false}, {"10T", 0, false},
		{"99999999999G", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// The supervision flags: defaults, values, and errors that name the flag.
func TestSupervisionFlags(t *testing.T) {
	env := func(string) string { return "" }
	c, err := Parse([]string{"--mode", "cluster", "--workers", "2"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HealthInterval != 5*time.Second || c.HealthMisses != 3 || c.MaxRequests != 0 || c.MaxMemory != 0 || c.MaxWorkers != 0 {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Parse([]string{"--mode", "cluster", "--workers", "2", "--max-workers", "4", "--health-interval", "500ms",
		"--health-misses", "2", "--max-requests", "100", "--max-requests-jitter", "10", "--max-memory", "1G"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxWorkers != 4 || c.HealthInterval != 500*time.Millisecond || c.HealthMisses != 2 || c.MaxRequests != 100 || c.MaxRequestsJitter != 10 || c.MaxMemory != 1<<30 {
		t.Errorf("parsed: %+v", c)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-memory", "lots"}, `invalid size "lots" (from --max-memory)`},
		{[]string{"--max-workers", "1"}, "invalid --max-workers 1"},
		{[]string{"--health-misses", "0"}, "invalid --health-misses 0"},
		{[]string{"--health-interval", "-1s"}, "invalid --health-interval"},
		{[]string{"--max-requests-jitter", "5"}, "--max-requests-jitter needs --max-requests"},
	} {
		_, err := Parse(append([]string{"--mode", "cluster", "--workers", "2"}, tc.args...), env, io.Discard)
		if ue, ok := errors.AsType[*UsageError](err); !ok || !strings.Contains(ue.Msg, tc.want) {
			t.Errorf("Parse(%v) = %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}
