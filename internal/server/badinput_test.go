package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// newBadInputServer is a Server with a small max so that a valid request
// is cheap.
func newBadInputServer(t *testing.T) *httptest.Server {
	t.Helper()
	s := New(Options{Mode: "FORK", Port: 8080, MaxCant: 1000, DefaultCant: 10, Slots: 1, Queue: 4})
	s.SetReady(true)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

// Every bad request is answered with a 4xx and a JSON {"error": "..."} that
// says what went wrong; never a 5xx, never a crash.
func TestBadInputAnsweredWithJSON4xx(t *testing.T) {
	ts := newBadInputServer(t)
	long := strings.Repeat("9", 1<<20) // a megabyte of digits: fits net/http's header limit plus slack
	cases := []struct {
		name, method, target string
		want                 int
		mention              string // the error message must contain this
	}{
		{"negative", "GET", "/api/randoms?cant=-5", 400, `"-5"`},
		{"zero", "GET", "/api/randoms?cant=0", 400, `"0"`},
		{"letters", "GET", "/api/randoms?cant=abc", 400, `"abc"`},
		{"fraction", "GET", "/api/randoms?cant=1.5", 400, `"1.5"`},
		{"exponent", "GET", "/api/randoms?cant=1e9", 400, `"1e9"`},
		{"hex", "GET", "/api/randoms?cant=0x10", 400, `"0x10"`},
		{"plus sign", "GET", "/api/randoms?cant=%2B5", 400, `"+5"`},
		{"spaces", "GET", "/api/randoms?cant=%205", 400, "whole number"},
		{"unicode digits", "GET", "/api/randoms?cant=%E0%A5%A7", 400, "whole number"},
		{"above max", "GET", "/api/randoms?cant=1001", 400, "1 to 1000"},
		{"overflows int64", "GET", "/api/randoms?cant=99999999999999999999", 400, "whole number"},
		{"max int64", "GET", "/api/randoms?cant=9223372036854775807", 400, "1 to 1000"},
		{"empty", "GET", "/api/randoms?cant=", 400, `""`},
		{"repeated", "GET", "/api/randoms?cant=5&cant=6", 400, "2 times"},
		{"repeated empty", "GET", "/api/randoms?cant&cant", 400, "2 times"},
		{"a megabyte long", "GET", "/api/randoms?cant=" + long, 400, "..."},
		{"bad escape", "GET", "/api/randoms?cant=%zz", 400, "malformed query"},
		{"semicolon", "GET", "/api/randoms?cant=5;x=1", 400, "malformed query"},
		{"unknown route", "GET", "/nope", 404, "/nope"},
		{"unknown api route", "GET", "/api/nope", 404, "routes"},
		{"route with suffix", "GET", "/api/randoms/extra", 404, "routes"},
		{"upper case route", "GET", "/API/INFO", 404, "routes"},
		{"dot dot", "GET", "/api/../../etc/passwd", 404, "routes"},
		{"POST randoms", "POST", "/api/randoms?cant=5", 405, "Allow"},
		{"DELETE info", "DELETE", "/info", 405, "allowed"},
		{"PUT home", "PUT", "/", 405, "allowed"},
		{"PATCH api info", "PATCH", "/api/info", 405, "allowed"},
		{"POST metrics", "POST", "/metrics", 405, "allowed"},
		{"POST healthz", "POST", "/healthz", 405, "allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, ts.URL+c.target, strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(c.target, "/../") { // keep the path as sent: a client may not clean it
				req.URL.Opaque = c.target[:strings.IndexByte(c.target+"?", '?')]
			}
			r, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Body.Close()
			if r.StatusCode != c.want {
				t.Errorf("%s %.60s: status %d, want %d", c.method, c.target, r.StatusCode, c.want)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var body struct {
				Error string `json:"error"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Error == "" {
				t.Fatalf("body is not a JSON error (%v): %+v", err, body)
			}
			msg := body.Error
			if c.want == 405 {
				if r.Header.Get("Allow") == "" {
					t.Error("405 without an Allow header")
				}
				msg += " Allow" // the header counts as the mention
			}
			if !strings.Contains(msg, c.mention) {
				t.Errorf("error %q does not mention %q", body.Error, c.mention)
			}
			if len(body.Error) > 300 {
				t.Errorf("error message is %d bytes long: the input must not be echoed whole", len(body.Error))
			}
		})
	}
}

// Headers past net/http's limit are refused by net/http itself with 431.
func TestBadInputOversizeHeaders(t *testing.T) {
	ts := newBadInputServer(t)
	req, _ := http.NewRequest("GET", ts.URL+"/info", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2<<20))
	r, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("2 MiB of headers: status %d, want 431", r.StatusCode)
	}
	// The server is still fine afterwards.
	r, err = ts.Client().Get(ts.URL + "/api/randoms?cant=5")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Errorf("valid request after the bad one: status %d, want 200", r.StatusCode)
	}
}

// Valid edge values are accepted: leading zeros, the max, the default
// (10 here), an unrelated extra parameter.
func TestBadInputValidEdges(t *testing.T) {
	ts := newBadInputServer(t)
	for _, c := range []struct {
		q    string
		want uint64
	}{{"?cant=1", 1}, {"?cant=0005", 5}, {"?cant=1000", 1000}, {"", 10}, {"?x=1&cant=7", 7}} {
		r, err := ts.Client().Get(ts.URL + "/api/randoms" + c.q)
		if err != nil {
			t.Fatal(err)
		}
		var counts map[string]uint64
		err = json.NewDecoder(r.Body).Decode(&counts)
		r.Body.Close()
		var sum uint64
		for _, v := range counts {
			sum += v
		}
		if r.StatusCode != 200 || err != nil || sum != c.want {
			t.Errorf("/api/randoms%s: status %d, counts sum to %d (%v), want 200 and %d", c.q, r.StatusCode, sum, err, c.want)
		}
	}
}
