package server

import (
	"bytes"
	"html/template"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostileArgs are arguments a page must show as text, never as markup, and
// the page's own live-value markers, which must not be filled in when they
// come from the data.
var hostileArgs = []string{
	"--port", "8080",
	"</td><script>alert(1)</script>",
	`"'><img src=x onerror=alert(2)>&amp;`,
	markUptime, markRSSMiB, markRSSBytes,
	"{{.Pid}}",
}

// The page rendered once with live values filled in is byte for byte what
// html/template renders on the spot with the same values.
func TestInfoPageMatchesTemplate(t *testing.T) {
	for _, args := range [][]string{nil, {"--port", "8080"}, hostileArgs} {
		s := New(Options{Mode: "CLUSTER", WorkerID: 3, Port: 8081, Args: args, Build: "b<&>"})
		ref := template.Must(template.New("ref").Funcs(template.FuncMap{
			"uptime": func() string { return "" }, "rssMiB": func() string { return "" }, "rssBytes": func() string { return "" },
		}).Parse(infoHTML))
		for _, v := range []live{{rss: 0, uptime: 0}, {rss: 12_345_678, uptime: 90*time.Minute + 4*time.Second + 600*time.Millisecond}, {rss: -1, uptime: 49 * time.Hour}} {
			var buf bytes.Buffer
			r := template.Must(ref.Clone()).Funcs(template.FuncMap{
				"uptime":   func() string { return v.uptime.Round(time.Second).String() },
				"rssMiB":   func() string { return strconv.FormatFloat(float64(v.rss)/(1<<20), 'f', 1, 64) + " MiB" },
				"rssBytes": func() int64 { return v.rss },
			})
			if err := r.Execute(&buf, s.facts); err != nil {
				t.Fatal(err)
			}
			if got := string(s.info.appendHTML(nil, v)); got != buf.String() {
				t.Errorf("args %q, %+v: the pre-rendered page differs from html/template's:\ngot:\n%s\nwant:\n%s", args, v, got, buf.String())
			}
		}
	}
}

// Hostile arguments are shown escaped, and a marker in the data is text.
func TestInfoHTMLEscapesHostileArgs(t *testing.T) {
	s := New(Options{Mode: "FORK", Port: 8080, Args: hostileArgs, Build: "x"})
	body := do(t, s, "GET", "/info", "Accept", "text/html").Body.String()
	for _, bad := range []string{"<script>", "<img", "</td><script", "<!--lbserver:"} {
		if strings.Contains(body, bad) {
			t.Errorf("/info contains %q unescaped:\n%s", bad, body)
		}
	}
	for _, want := range []string{"&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;!--lbserver:uptime--&gt;", "&amp;amp;"} {
		if !strings.Contains(body, want) {
			t.Errorf("/info lacks %q:\n%s", want, body)
		}
	}
	// One uptime and one RSS, in their places.
	if m := regexp.MustCompile(`<dd id="uptime">[0-9hms.]+</dd>`).FindAllString(body, -1); len(m) != 1 {
		t.Errorf("/info: got uptime cells %q, want exactly one with a duration", m)
	}
	if m := regexp.MustCompile(`<td id="rss">[0-9]+\.[0-9] MiB <span class="muted">\([0-9]+ bytes\)</span></td>`).FindAllString(body, -1); len(m) != 1 {
		t.Errorf("/info: got RSS cells %q, want exactly one", m)
	}
}

// The uptime is live: a later request shows a larger one.
func TestInfoHTMLUptimeIsLive(t *testing.T) {
	s := newTestServer(t)
	s.facts.started = s.facts.started.Add(-75 * time.Second)
	body := do(t, s, "GET", "/info").Body.String()
	if !strings.Contains(body, `<dd id="uptime">1m15s</dd>`) {
		t.Errorf("/info after 75 s: got %s, want uptime 1m15s", regexp.MustCompile(`<dd id="uptime">[^<]*</dd>`).FindString(body))
	}
}

// The home page is styled like /info and /balance: the same stylesheet, the
// same header with the navigation, and it says who answered.
func TestHomeLooksLikeTheOtherPages(t *testing.T) {
	s := newTestServer(t)
	home := do(t, s, "GET", "/").Body.String()
	info := do(t, s, "GET", "/info").Body.String()
	for _, want := range []string{`<link rel="stylesheet" href="balance/app.css">`, `<header class="top">`, `<nav aria-label="Pages">`, `class="card"`} {
		if !strings.Contains(info, want) {
			t.Fatalf("/info lacks %q: the test's idea of the shared look is out of date", want)
		}
		if !strings.Contains(home, want) {
			t.Errorf("/ lacks %q, which /info has", want)
		}
	}
	pid := strconv.Itoa(s.facts.Pid)
	for _, want := range []string{`id="pid">` + pid + `<`, `id="port">8080<`, "default N = 20000"} {
		if !strings.Contains(home, want) {
			t.Errorf("/ lacks %q", want)
		}
	}
}
