package cluster

import (
	"runtime"
	"strings"
	"testing"
)

// Each limit the configuration runs into is said at start, in one warning.
func TestLimitsAreWarnedOf(t *testing.T) {
	many := max(65, cpusPerWorkerLimit*runtime.NumCPU()+1)
	h := newHarness(t, Config{Workers: many})
	h.sync()
	for _, want := range []string{
		`level=WARN msg="more slots than can be adopted`,
		`level=WARN msg="connection table too small`,
		`level=WARN msg="many more workers than CPUs"`,
	} {
		if n := strings.Count(h.logs.String(), want); n != 1 {
			t.Errorf("%d warnings %s with %d workers, want 1", n, want, many)
		}
	}
	h2 := newHarness(t, Config{Workers: 2})
	h2.sync()
	if n := strings.Count(h2.logs.String(), "level=WARN"); n != 0 {
		t.Errorf("%d warnings with 2 workers, want none:\n%s", n, h2.logs)
	}
}
