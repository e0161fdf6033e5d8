package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The figures docs/WHICH-MODE.md, docs/QUE-MODO.md and the tutorials quote
// are the ones docs/BENCHMARKS.md (written by make bench) has now: a new
// benchmark run that changes them fails this test until the pages say the
// same.
func TestDocsQuoteTheBenchmarks(t *testing.T) {
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repoRoot(), "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	bench := read("BENCHMARKS.md")
	find := func(what, re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(bench)
		if m == nil {
			t.Fatalf("BENCHMARKS.md has no %s (%s)", what, re)
		}
		return m[1]
	}
	type figure struct{ what, value, kind string } // kind: "int" (requests/s), "dec" (a decimal)
	figs := []figure{
		{"FORK /api/info req/s", find("FORK /api/info", `(?m)^\| FORK \| /api/info \(light\) \| (\d+) \|`), "int"},
		{"CLUSTER /api/info req/s", find("CLUSTER /api/info", `(?m)^\| CLUSTER \| /api/info \(light\) \| (\d+) \|`), "int"},
		{"CLUSTER/FORK /api/info ratio", find("the /api/info ratio", `CLUSTER vs FORK, /api/info: CLUSTER does (\d+\.\d+)x`), "dec"},
		{"FORK total RSS", find("FORK's RSS", `(?m)^\| FORK \| one lbserver process[^|]*\| 1 \| (\d+\.\d) MiB \|`), "dec"},
		{"CLUSTER total RSS", find("CLUSTER's RSS", `(?m)^\| CLUSTER \| a master and 2 workers[^|]*\| 3 \| (\d+\.\d) MiB \|`), "dec"},
		{"worker SIGKILL to replacement", find("the replacement time", `\| (\d+\.\d) ms \(0 requests failed meanwhile\) \|`), "dec"},
	}
	// english writes 59728 as 59,728 and 0.95 as is; spanish writes 59.728 and 0,95.
	english := func(f figure) string {
		if f.kind == "int" && len(f.value) > 3 {
			return f.value[:len(f.value)-3] + "," + f.value[len(f.value)-3:]
		}
		return f.value
	}
	spanish := func(f figure) string {
		if f.kind == "int" && len(f.value) > 3 {
			return f.value[:len(f.value)-3] + "." + f.value[len(f.value)-3:]
		}
		return strings.Replace(f.value, ".", ",", 1)
	}
	for _, page := range []struct {
		name   string
		format func(figure) string
		figs   []figure
	}{
		{"WHICH-MODE.md", english, figs},
		{"QUE-MODO.md", spanish, figs},
		{"TUTORIAL.md", english, figs[5:]},
		{"PRIMEROS-PASOS.md", spanish, figs[5:]},
	} {
		text := read(page.name)
		for _, f := range page.figs {
			if want := page.format(f); !strings.Contains(text, want) {
				t.Errorf("%s does not quote %s as BENCHMARKS.md has it now: %s", page.name, f.what, want)
			}
		}
	}
}
