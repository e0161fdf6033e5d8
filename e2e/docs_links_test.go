package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// mdLink is a Markdown link's target: ](target) or ](target "title").
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// githubSlug is the anchor GitHub gives a heading: lower case, spaces to
// hyphens, letters, digits, '-' and '_' kept, everything else dropped.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdAnchors are the anchors of a Markdown file's headings (outside code blocks).
func mdAnchors(text string) map[string]bool {
	out := map[string]bool{}
	fenced := false
	for line := range strings.Lines(text) {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "```") {
			fenced = !fenced
			continue
		}
		if !fenced && strings.HasPrefix(t, "#") {
			out[githubSlug(strings.TrimLeft(t, "# "))] = true
		}
	}
	return out
}

// Every relative link of the docs names a file of the repository, and every
// #anchor a heading of the page it points to: the docs index in the READMEs
// and the links between the pages cannot go stale.
func TestDocsLinksResolve(t *testing.T) {
	root := repoRoot()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"README.md", "README.es.md", "CHANGELOG.md"} {
		files = append(files, filepath.Join(root, f))
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		var prose strings.Builder // the file without its code blocks
		fenced := false
		for line := range strings.Lines(text) {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
				continue
			}
			if !fenced {
				prose.WriteString(line)
			}
		}
		rel, _ := filepath.Rel(root, f)
		for _, m := range mdLink.FindAllStringSubmatch(prose.String(), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s links %q: %v", rel, target, err)
					continue
				}
			}
			checked++
			if anchor == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			db, err := os.ReadFile(dest)
			if err != nil {
				t.Fatal(err)
			}
			if !mdAnchors(string(db))[anchor] {
				t.Errorf("%s links %q: %s has no heading with that anchor", rel, target, filepath.Base(dest))
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d relative links checked; the pattern missed them?", checked)
	}
	t.Logf("%d relative links in %d files resolve", checked, len(files))
}
