package e2e

// Hostile and careless clients against the real binary (issue 6): bad
// requests, slow-header connections, secrets in the environment, security
// headers on HTML pages.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReliabilityBadInputBinary: a few bad requests against the real binary
// answer 4xx with a JSON error, and the process keeps serving.
func TestReliabilityBadInputBinary(t *testing.T) {
	_, base, _ := relStartMode(t, "FORK")
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/randoms?cant=-5", 400},
		{"GET", "/api/randoms?cant=abc", 400},
		{"GET", "/api/randoms?cant=1e9", 400},
		{"GET", "/api/randoms?cant=99999999999999999999", 400},
		{"GET", "/api/randoms?cant=", 400},
		{"GET", "/api/randoms?cant=1&cant=2", 400},
		{"GET", "/api/randoms?cant=" + strings.Repeat("7", 1<<20), 400},
		{"GET", "/nope", 404},
		{"POST", "/api/randoms", 405},
		{"DELETE", "/info", 405},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		r, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %.50s: %v", c.method, c.path, err)
		}
		var body struct {
			Error string `json:"error"`
		}
		err = json.NewDecoder(r.Body).Decode(&body)
		r.Body.Close()
		if r.StatusCode != c.want || err != nil || body.Error == "" {
			t.Errorf("%s %.50s: status %d, error %q (%v), want %d and a JSON error", c.method, c.path, r.StatusCode, body.Error, err, c.want)
		}
	}
	req, _ := http.NewRequest("GET", base+"/info", nil)
	req.Header.Set("X-Big", strings.Repeat("h", 2<<20))
	if r, err := client.Do(req); err != nil || r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("2 MiB header: %v %v, want 431", err, r)
	} else {
		r.Body.Close()
	}
	if r := MustGet(t, base+"/api/randoms?cant=10"); r.Status != 200 {
		t.Errorf("valid request after the bad ones: %d", r.Status)
	}
}

// TestReliabilitySlowloris: 400 connections that send their headers a line
// every 500ms do not stop /info from answering other clients at once, and
// the server drops them at its header deadline (ReadHeaderTimeout, 10s):
// not before 10s after each connection was opened (an early close would cut
// honest slow clients) and all within 16s.
func TestReliabilitySlowloris(t *testing.T) {
	_, base, _ := relStartMode(t, "FORK")
	addr := strings.TrimPrefix(base, "http://")
	const n = 400
	start := time.Now()
	var wg sync.WaitGroup
	type closing struct {
		after time.Duration // since this connection was dialled
		err   error         // what the reader saw: EOF or a reset means the server closed it
	}
	closed := make(chan closing, n)
	stop := make(chan struct{})
	defer func() { close(stop); wg.Wait() }()
	for i := range n {
		dialled := time.Now()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		if _, err := fmt.Fprintf(c, "GET /info HTTP/1.1\r\nHost: lb\r\n"); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { // the trickle: one header line every 500ms, for at most 20s
			defer c.Close()
			for j := 0; j < 40; j++ {
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Millisecond):
				}
				if _, err := fmt.Fprintf(c, "X-Slow-%d: %d\r\n", j, j); err != nil {
					return
				}
			}
		})
		wg.Go(func() { // notices the server closing the connection
			_ = c.SetReadDeadline(time.Now().Add(25 * time.Second))
			_, err := io.Copy(io.Discard, c)
			closed <- closing{time.Since(dialled), err}
		})
	}
	var worst time.Duration
	for range 50 {
		t0 := time.Now()
		r, err := Get(base + "/info")
		d := time.Since(t0)
		worst = max(worst, d)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("GET /info with %d slow connections open: %v %d", n, err, r.Status)
		}
	}
	t.Logf("/info with %d slow-header connections open: slowest of 50 answers %s", n, worst)
	if worst > 2*time.Second {
		t.Errorf("/info took %s with slow connections open, want under 2s", worst)
	}
	// The server cuts them at the header deadline (10s), however they trickle.
	const headerTimeout = 10 * time.Second
	got, early := 0, 0
	var first, last time.Duration
	deadline := time.After(16 * time.Second)
	for got < n {
		select {
		case c := <-closed:
			var ne net.Error
			if errors.As(c.err, &ne) && ne.Timeout() {
				t.Fatalf("a slow connection was still open after 25s: the server never closed it")
			}
			if c.after < headerTimeout {
				early++
			}
			if got == 0 || c.after < first {
				first = c.after
			}
			last = max(last, c.after)
			got++
		case <-deadline:
			t.Fatalf("after 16s only %d of %d slow-header connections were closed by the server (ReadHeaderTimeout 10s)", got, n)
		}
	}
	if early > 0 {
		t.Errorf("%d of %d slow connections were closed before the %s header deadline (the first %s after it opened): honest slow clients would be cut",
			early, n, headerTimeout, first.Round(time.Millisecond))
	}
	t.Logf("all %d slow connections closed by the server %s to %s after each opened (%s after the first opened)", n,
		first.Round(time.Millisecond), last.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestReliabilityNoSecretsInInfo: /info shows process facts by design, but
// no environment variable: a secret in the environment appears on no page.
func TestReliabilityNoSecretsInInfo(t *testing.T) {
	port := FreePort(t)
	secret := "s3cr3t-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cmd := exec.Command(binPath, "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--mode", "CLUSTER", "--workers", "1")
	cmd.Env = append(cmd.Environ(), "DATABASE_PASSWORD="+secret, "AWS_SECRET_ACCESS_KEY="+secret, "LBSERVER_TOKEN="+secret)
	p := StartCmd(t, cmd)
	base := relBase(port)
	WaitHTTP(t, p, base+"/healthz", 20*time.Second)
	for _, path := range []string{"/", "/info", "/api/info", "/metrics", "/healthz", "/nope"} {
		for _, accept := range []string{"text/html", "application/json"} {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Header.Set("Accept", accept)
			r, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			for _, leak := range []string{secret, "DATABASE_PASSWORD", "AWS_SECRET_ACCESS_KEY"} {
				if strings.Contains(string(b), leak) || strings.Contains(fmt.Sprint(r.Header), leak) {
					t.Errorf("GET %s (Accept %s) shows %q", path, accept, leak)
				}
			}
		}
	}
	// /api/info has exactly the documented keys: no "env" or the like.
	var info map[string]any
	if err := json.Unmarshal(MustGet(t, base+"/api/info").Body, &info); err != nil {
		t.Fatal(err)
	}
	for k := range info {
		if strings.Contains(strings.ToLower(k), "env") {
			t.Errorf("/api/info has a key %q", k)
		}
	}
}

// TestReliabilitySecurityHeaders: HTML pages carry a Content-Security-Policy
// and X-Content-Type-Options: nosniff; JSON answers carry nosniff too.
func TestReliabilitySecurityHeaders(t *testing.T) {
	_, base, _ := relStartMode(t, "FORK")
	for _, path := range []string{"/", "/info"} {
		r := MustGet(t, base+path)
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: Content-Type %q, want HTML", path, r.Header.Get("Content-Type"))
		}
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src") || strings.Contains(csp, "script-src 'unsafe-inline'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want a default-src policy", path, csp)
		}
		if strings.Contains(csp, "*") {
			t.Errorf("GET %s: Content-Security-Policy %q allows any origin", path, csp)
		}
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
	}
	for _, path := range []string{"/api/info", "/api/randoms?cant=5", "/nope"} {
		if got := MustGet(t, base+path).Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
	}
}
