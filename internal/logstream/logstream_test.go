package logstream

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestInfoToOutWarningsAndErrorsToErr(t *testing.T) {
	var out, errw bytes.Buffer
	log := slog.New(New(&out, &errw, nil)).With("role", "fork", "pid", 42)
	log.Info("serving", "port", 8080)
	log.Debug("hidden")
	log.Warn("master is gone; draining")
	log.WithGroup("g").Error("listen", "err", "boom")

	for _, want := range []string{"msg=serving", "role=fork", "pid=42", "port=8080"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	for _, want := range []string{`msg="master is gone; draining"`, "level=ERROR", "g.err=boom", "role=fork"} {
		if !strings.Contains(errw.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errw.String())
		}
	}
	if strings.Contains(out.String(), "WARN") || strings.Contains(out.String(), "ERROR") {
		t.Errorf("stdout has a warning or an error:\n%s", out.String())
	}
	if strings.Contains(errw.String(), "INFO") || strings.Contains(out.String()+errw.String(), "hidden") {
		t.Errorf("stderr has an info line, or a debug line was written:\nstdout:\n%s\nstderr:\n%s", out.String(), errw.String())
	}
}
