// Command testsummary reads `go test -json` on stdin and prints what plain
// `go test` would (the output of failed tests and the package results), and
// records every skipped test with its reason. With -report it prints one
// line counting the recorded skips by reason, e.g.
//
//	31 tests skipped: 14 need root, 9 need nginx, 6 need pm2, 2 need chromium
//
// `make test` runs it, so that a green run says what it did not test.
//
//	go test -json ./... | testsummary -record run/skips.txt
//	testsummary -report run/skips.txt
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("testsummary", flag.ContinueOnError)
	record := fs.String("record", "", "append one line per skipped test (`reason<TAB>package.Test`) to this file")
	report := fs.String("report", "", "print one line counting the skips recorded in this file, by reason")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *report != "" {
		b, err := os.ReadFile(*report)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fmt.Fprintln(stdout, Summary(string(b)))
		return nil
	}
	skips, err := Filter(stdin, stdout)
	if *record != "" && len(skips) > 0 {
		f, ferr := os.OpenFile(*record, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if ferr != nil {
			return ferr
		}
		defer f.Close()
		for _, s := range skips {
			fmt.Fprintf(f, "%s\t%s\n", s.Reason, s.Test)
		}
	}
	return err
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// Skip is a skipped test and the reason it gave.
type Skip struct{ Test, Reason string }

// Filter copies the output of failed tests and the package lines to w, and
// returns the skipped tests.
func Filter(r io.Reader, w io.Writer) ([]Skip, error) {
	var skips []Skip
	buf := map[string][]string{} // package/test -> its output so far
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(w, sc.Text()) // not JSON: a build error, say
			continue
		}
		key := e.Package + "/" + e.Test
		switch {
		case e.Action == "output" && e.Test == "":
			fmt.Fprint(w, e.Output)
		case e.Action == "output":
			buf[key] = append(buf[key], e.Output)
		case e.Action == "fail" && e.Test != "":
			fmt.Fprint(w, strings.Join(buf[key], ""))
			delete(buf, key)
		case e.Action == "skip" && e.Test != "":
			skips = append(skips, Skip{Test: filepath.Base(e.Package) + "." + e.Test, Reason: Reason(buf[key])})
			delete(buf, key)
		case e.Action == "pass" && e.Test != "":
			delete(buf, key)
		}
	}
	// Tests that never ended (a killed binary): show what they said.
	for _, k := range slices.Sorted(maps.Keys(buf)) {
		fmt.Fprint(w, strings.Join(buf[k], ""))
	}
	return skips, sc.Err()
}

var notInstalled = regexp.MustCompile(`(\S+) is not installed`)

// Reason reduces a skipped test's output to a short reason: "need root",
// "need TOOL", or the skip message itself.
func Reason(lines []string) string {
	var msg string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		// "file_test.go:12: message"
		if i := strings.Index(t, ": "); i > 0 && strings.Contains(t[:i], ".go:") {
			t = t[i+2:]
		}
		msg = t
	}
	switch m := notInstalled.FindStringSubmatch(msg); {
	case strings.Contains(msg, "needs root") || strings.Contains(msg, "need root"):
		return "need root"
	case m != nil:
		return "need " + filepath.Base(m[1])
	case msg == "":
		return "no reason given"
	}
	return msg
}

// Summary counts the recorded skips ("reason\ttest" lines) by reason, most
// frequent first.
func Summary(recorded string) string {
	by := map[string]int{}
	n := 0
	for line := range strings.Lines(recorded) {
		reason, _, ok := strings.Cut(strings.TrimRight(line, "\n"), "\t")
		if !ok {
			continue
		}
		by[reason]++
		n++
	}
	if n == 0 {
		return "0 tests skipped"
	}
	reasons := slices.SortedFunc(maps.Keys(by), func(a, b string) int {
		if by[a] != by[b] {
			return by[b] - by[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", by[r], r))
	}
	return fmt.Sprintf("%d tests skipped: %s", n, strings.Join(parts, ", "))
}
