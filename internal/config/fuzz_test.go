package config

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzParse: any command line (NUL-separated arguments) and any PORT and
// MODE environment either parse into a valid Config, ask for help, or fail
// with a one-line *UsageError; Parse never panics. Corpus:
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	seeds := [][3]string{
		{"--port\x008080\x00--mode\x00FORK", "", ""},
		{"-p\x000", "", ""},
		{"--modo\x00cluster\x00--workers\x004", "", ""},
		{"", "99999", "fork"},
		{"", "8080", "CLUSTER"},
		{"--workers\x00-1", "", ""},
		{"--port=65536", "", ""},
		{"--help", "", ""},
		{"--max-cant\x005\x00--default-cant\x006", "", ""},
		{"--build\x00make", "", ""},
		{"--reuseport\x00--mode\x00CLUSTER", "", ""},
		{"stray", "", ""},
		{"--drain-timeout\x00-1s", "", ""},
		{"--port\x00 8081 ", "", " cluster "},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, argv, port, mode string) {
		var args []string
		if argv != "" {
			args = strings.Split(argv, "\x00")
		}
		env := map[string]string{"PORT": port, "MODE": mode}
		c, err := Parse(args, func(k string) string { return env[k] }, io.Discard)
		if errors.Is(err, ErrHelp) {
			return
		}
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("Parse(%q) error %T %v, want a *UsageError", args, err, err)
			}
			if strings.Contains(ue.Msg, "\n") || ue.Msg == "" {
				t.Fatalf("Parse(%q) error %q, want one non-empty line", args, ue.Msg)
			}
			return
		}
		switch {
		case c.Port < 1 || c.Port > 65535:
			t.Fatalf("Parse(%q) port %d accepted", args, c.Port)
		case c.Mode != ModeFork && c.Mode != ModeCluster:
			t.Fatalf("Parse(%q) mode %q accepted", args, c.Mode)
		case c.Workers < 1 || c.Workers > 1024:
			t.Fatalf("Parse(%q) workers %d accepted", args, c.Workers)
		case c.DefaultCant < 1 || c.DefaultCant > c.MaxCant:
			t.Fatalf("Parse(%q) default-cant %d with max-cant %d accepted", args, c.DefaultCant, c.MaxCant)
		case c.DrainTimeout < 0 || c.ComputeSlots < 1 || c.Queue < 0:
			t.Fatalf("Parse(%q) accepted %+v", args, c)
		case c.ReusePort && c.Mode == ModeCluster:
			t.Fatalf("Parse(%q) accepted --reuseport in CLUSTER mode", args)
		}
		if s := c.String(); strings.Contains(s, "\n") {
			t.Fatalf("Config.String() has a newline: %q", s)
		}
	})
}
