package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFilterAndSummary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"x/e2e","Test":"TestA"}`,
		`{"Action":"output","Package":"x/e2e","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"x/e2e","Test":"TestA","Output":"    nginx_test.go:12: nginx is not installed (make test installs it)\n"}`,
		`{"Action":"output","Package":"x/e2e","Test":"TestA","Output":"--- SKIP: TestA (0.00s)\n"}`,
		`{"Action":"skip","Package":"x/e2e","Test":"TestA"}`,
		`{"Action":"output","Package":"x/e2e","Test":"TestB","Output":"    r.go:1: this test needs root (namespaces)\n"}`,
		`{"Action":"skip","Package":"x/e2e","Test":"TestB"}`,
		`{"Action":"output","Package":"x/e2e","Test":"TestC","Output":"    p.go:9: /repo/tools/node_modules/.bin/pm2 is not installed (run: make deps)\n"}`,
		`{"Action":"skip","Package":"x/e2e","Test":"TestC"}`,
		`{"Action":"output","Package":"x/e2e","Test":"TestD","Output":"    d.go:3: root needed\n"}`,
		`{"Action":"output","Package":"x/e2e","Test":"TestD","Output":"--- FAIL: TestD (0.00s)\n"}`,
		`{"Action":"fail","Package":"x/e2e","Test":"TestD"}`,
		`{"Action":"output","Package":"x/e2e","Test":"TestE","Output":"quiet pass\n"}`,
		`{"Action":"pass","Package":"x/e2e","Test":"TestE"}`,
		`{"Action":"output","Package":"x/e2e","Output":"FAIL\tx/e2e\t1.0s\n"}`,
	}, "\n")
	var out bytes.Buffer
	skips, err := Filter(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "    d.go:3: root needed\n--- FAIL: TestD (0.00s)\nFAIL\tx/e2e\t1.0s\n"; got != want {
		t.Errorf("output:\ngot  %q\nwant %q", got, want)
	}
	var rec strings.Builder
	for _, s := range skips {
		rec.WriteString(s.Reason + "\t" + s.Test + "\n")
	}
	rec.WriteString("need root\tother.TestF\n")
	if got, want := Summary(rec.String()), "4 tests skipped: 2 need root, 1 need nginx, 1 need pm2"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if got := Summary(""); got != "0 tests skipped" {
		t.Errorf("Summary of nothing = %q", got)
	}
}
