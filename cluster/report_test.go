package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestReadReport(t *testing.T) {
	for _, tc := range []struct {
		in    string
		ready int
		words string
	}{
		{"", 0, ""},
		{"\x01", 1, ""},
		{"\x01\x01\x01", 1, ""},
		{"\x01\x02listen: address in use\n", 1, "listen: address in use"},
		{"\x02panic: boom\n\ngoroutine 1 [running]:\nmain.main()", 0, "panic: boom |  | goroutine 1 [running]: | main.main()"},
		{"\x02\x01not ready\x1b[31m", 0, "\uFFFDnot ready\uFFFD[31m"},
		{"junk\x00\xff\x01", 1, ""},
		{"\x02" + strings.Repeat("é", maxLastWords), 0, strings.Repeat("é", maxLastWords/2)},
	} {
		ready := 0
		got := readReport(strings.NewReader(tc.in), func() { ready++ })
		if ready != tc.ready || got != tc.words {
			t.Errorf("readReport(%q): ready %d, words %q; want %d, %q", tc.in, ready, got, tc.ready, tc.words)
		}
	}
}

// What a worker says: its error, its panic, that it was stopped from
// outside; and Ready after farewell does nothing.
func TestWorkerLastWords(t *testing.T) {
	if got := lastWords(false, nil); got != "" {
		t.Errorf("lastWords(nil) = %q, want nothing", got)
	}
	if got := lastWords(false, errors.New("listen: denied")); got != "listen: denied" {
		t.Errorf("lastWords(err) = %q", got)
	}
	if got := lastWords(true, nil); got != stoppedOutside {
		t.Errorf("lastWords(stopped) = %q, want %q", got, stoppedOutside)
	}
	// A worker that was ready, then panicked: the master reads both.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	w := &Worker{ready: pw}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the panic to go on", v)
			}
		}()
		_ = callWorker(context.Background(), w, func(context.Context, *Worker) error {
			_ = w.Ready()
			panic("boom")
		})
	}()
	ready := 0
	if got := readReport(pr, func() { ready++ }); ready != 1 || got != "panic: boom" {
		t.Errorf("the master read ready %d times and %q, want 1 and %q", ready, got, "panic: boom")
	}
	if err := w.Ready(); err != nil {
		t.Errorf("Ready after the farewell = %v, want nil (nothing)", err)
	}
}

// FuzzReport: whatever a worker writes on its report pipe, in whatever
// chunks, the master reports ready at most once (exactly when a ready
// record comes before any last words) and keeps at most maxLastWords bytes
// of last words, as one printable line.
func FuzzReport(f *testing.F) {
	f.Add([]byte("\x01\x02bye\n"), uint8(1))
	f.Add([]byte("\x02\x01\x01"), uint8(0))
	f.Add([]byte(strings.Repeat("\x02x", 700)), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var r reportReader
		readies := 0
		step := int(chunk) + 1
		for i := 0; i < len(data); i += step {
			if r.feed(data[i:min(i+step, len(data))]) {
				readies++
			}
		}
		wantReady := 0
		if i := bytes.IndexAny(data, "\x01\x02"); i >= 0 && data[i] == recReady {
			wantReady = 1
		}
		if readies != wantReady {
			t.Fatalf("ready reported %d times, want %d", readies, wantReady)
		}
		if len(r.words) > maxLastWords {
			t.Fatalf("kept %d bytes of last words, limit %d", len(r.words), maxLastWords)
		}
		words := r.lastWords()
		if !utf8.ValidString(words) || strings.ContainsFunc(words, func(c rune) bool { return !unicode.IsPrint(c) && c != ' ' }) {
			t.Fatalf("last words %q: not one printable line", words)
		}
		var one reportReader
		one.feed(data)
		if one.lastWords() != words || one.ready != r.ready {
			t.Fatalf("chunks of %d read differently from one chunk", step)
		}
	})
}
