package balancepage

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerServesPageAndAssets(t *testing.T) {
	h := Handler()
	tests := []struct {
		path        string
		contentType string
		contains    string
	}{
		{"/balance", "text/html; charset=utf-8", `<script src="balance/app.js" defer></script>`},
		{"/balance/app.css", "text/css; charset=utf-8", ".bars"},
		{"/balance/app.js", "text/javascript; charset=utf-8", "window.lbBalance"},
		{"/balance/icon.svg", "image/svg+xml", "<svg"},
		// Behind a proxy that mounts lbserver under a prefix.
		{"/lb/balance", "text/html; charset=utf-8", "<title>"},
		{"/lb/balance/app.js", "text/javascript; charset=utf-8", "X-Server-Pid"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := get(t, h, http.MethodGet, tc.path, nil)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", r.StatusCode)
			}
			if got := r.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type: got %q, want %q", got, tc.contentType)
			}
			if got := r.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") || strings.Contains(got, "unsafe") {
				t.Errorf("Content-Security-Policy: got %q, want default-src 'self' and nothing unsafe", got)
			}
			if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options: got %q, want nosniff", got)
			}
			if b := body(t, r); !strings.Contains(b, tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
		})
	}
}

func TestHandlerRejects(t *testing.T) {
	h := Handler()
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/balance/nope.js", http.StatusNotFound},
		{http.MethodGet, "/balance/../app.js", http.StatusNotFound},
		{http.MethodGet, "/app.js", http.StatusNotFound},
		{http.MethodGet, "/balance/assets/app.js", http.StatusNotFound},
		{http.MethodGet, "/balance/balance.html", http.StatusNotFound},
		{http.MethodPost, "/balance", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/balance/app.js", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		r := get(t, h, tc.method, tc.path, nil)
		if r.StatusCode != tc.want {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, r.StatusCode, tc.want)
		}
		if got, b := r.Header.Get("Content-Type"), body(t, r); got != "application/json" || !strings.HasPrefix(b, `{"error":"`) {
			t.Errorf("%s %s: got %s %q, want a JSON error", tc.method, tc.path, got, b)
		}
		if tc.want == http.StatusMethodNotAllowed && r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow got %q, want %q", tc.method, tc.path, r.Header.Get("Allow"), "GET, HEAD")
		}
	}
}

func TestHandlerTrailingSlashRedirectsRelative(t *testing.T) {
	r := get(t, Handler(), http.MethodGet, "/balance/", nil)
	if r.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("status: got %d, want 301", r.StatusCode)
	}
	if got := r.Header.Get("Location"); got != "../balance" {
		t.Errorf("Location: got %q, want %q (relative, so it survives a path prefix)", got, "../balance")
	}
}

func TestHandlerHeadAndConditionalGet(t *testing.T) {
	h := Handler()
	r := get(t, h, http.MethodHead, "/balance/app.js", nil)
	if r.StatusCode != http.StatusOK || body(t, r) != "" {
		t.Fatalf("HEAD: got status %d with a body, want 200 and no body", r.StatusCode)
	}
	etag := r.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	r = get(t, h, http.MethodGet, "/balance/app.js", map[string]string{"If-None-Match": etag})
	if r.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: got %d, want 304", r.StatusCode)
	}
	if got := r.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control: got %q, want no-cache (revalidate, so a new binary's page shows at once)", got)
	}
}

// The page must work offline and behind a proxy: no absolute URL to anywhere,
// no protocol-relative URL, no inline script or style (the CSP forbids them).
func TestAssetsHaveNoExternalURLsOrInlineCode(t *testing.T) {
	h := Handler()
	absURL := regexp.MustCompile(`(?i)\b(?:https?|wss?|ftp):|(?:src|href|action)\s*=\s*["']?//|url\(\s*["']?(?:[a-z]+:|//)|@import`)
	svgNS := `xmlns="http://www.w3.org/2000/svg"` // a name, never fetched
	for seg := range route {
		p := "/balance/" + seg
		if seg == "balance" {
			p = "/balance"
		}
		b := strings.ReplaceAll(body(t, get(t, h, http.MethodGet, p, nil)), svgNS, "")
		if m := absURL.FindString(b); m != "" {
			t.Errorf("%s: found an absolute or external URL: %q", p, m)
		}
	}
	page := body(t, get(t, h, http.MethodGet, "/balance", nil))
	checks := []struct {
		re, what string
	}{
		{`<script(?:\s[^>]*)?>\s*[^<\s]`, "an inline <script> body"},
		{`<script(?:\s[^>]*\s)?src="[^"]*"[^>]*>[^<]+</script>`, "a script with src and a body"},
		{`<style`, "a <style> element"},
		{`\sstyle\s*=`, "a style attribute"},
		{`\son[a-z]+\s*=`, "an inline event handler"},
		{`javascript:`, "a javascript: URL"},
	}
	for _, c := range checks {
		if m := regexp.MustCompile(`(?i)` + c.re).FindString(page); m != "" {
			t.Errorf("page has %s: %q", c.what, m)
		}
	}
}

// Every form control has a label, and the summary is announced.
func TestPageAccessibility(t *testing.T) {
	page := body(t, get(t, Handler(), http.MethodGet, "/balance", nil))
	for _, m := range regexp.MustCompile(`<input[^>]*\sid="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(page, `<label for="`+m[1]+`"`) {
			t.Errorf("input #%s has no <label for=%q>", m[1], m[1])
		}
	}
	for _, want := range []string{`<html lang="en">`, `name="viewport"`, `id="status" class="status" aria-live="polite"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}
