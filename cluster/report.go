package cluster

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The report pipe (fd 4) is what a worker tells its master, as records:
//
//	0x01           ready (Worker.Ready)
//	0x02 TEXT EOF  the worker's last words: why it ends (the error its
//	               function returned to Run, its panic, or "stopped by
//	               signal ..."), up to the end of the pipe
//
// The master reads it until EOF, which comes when the worker has exited
// (the pipe is close-on-exec in the worker, so its own children do not
// hold it). Anything else is ignored: a worker cannot make the master
// misbehave by what it writes there.
const (
	recReady     = 0x01
	recLastWords = 0x02
	// maxLastWords bounds the last words the master keeps (their start).
	maxLastWords = 1024
)

// reportReader decodes the report pipe, chunk by chunk.
type reportReader struct {
	ready   bool   // a ready record was read
	inWords bool   // the last words have begun: every byte from here is text
	words   []byte // their first maxLastWords bytes
}

// feed decodes the next bytes; it reports whether they held the first
// ready record.
func (r *reportReader) feed(b []byte) (readyNow bool) {
	for i, c := range b {
		if r.inWords {
			n := min(len(b)-i, maxLastWords-len(r.words))
			r.words = append(r.words, b[i:i+n]...)
			return readyNow
		}
		switch c {
		case recReady:
			if !r.ready {
				r.ready, readyNow = true, true
			}
		case recLastWords:
			r.inWords = true
		}
	}
	return readyNow
}

// lastWords are the words read, as one line of printable text: invalid
// UTF-8 and control characters are replaced, line breaks become " | ",
// surrounding space is trimmed.
func (r *reportReader) lastWords() string {
	var b strings.Builder
	s := strings.ToValidUTF8(string(r.words), "\uFFFD")
	s = strings.TrimSpace(s)
	for len(s) > 0 {
		c, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		switch {
		case c == '\n':
			b.WriteString(" | ")
		case !unicode.IsPrint(c) && c != ' ':
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// readReport reads a worker's report pipe until EOF (or an error), calls
// onReady at its ready record, and returns its last words.
func readReport(rd io.Reader, onReady func()) string {
	var r reportReader
	feedReport(rd, &r, onReady)
	return r.lastWords()
}

// feedReport feeds r what rd holds until EOF or an error, calling onReady
// at the ready record.
func feedReport(rd io.Reader, r *reportReader, onReady func()) {
	buf := make([]byte, 512)
	for {
		n, err := rd.Read(buf)
		if r.feed(buf[:n]) {
			onReady()
		}
		if err != nil {
			return
		}
	}
}

// lastWordsRecord is the record of a worker's last words.
func lastWordsRecord(words string) []byte {
	if len(words) > maxLastWords {
		words = words[:maxLastWords]
	}
	return append([]byte{recLastWords}, words...)
}

// callWorker runs fn; a panic of fn is told to the master as the worker's
// last words before it goes on.
func callWorker(ctx context.Context, w *Worker, fn func(context.Context, *Worker) error) error {
	defer func() {
		if v := recover(); v != nil {
			w.farewell(fmt.Sprintf("panic: %v", v))
			panic(v)
		}
	}()
	return fn(ctx, w)
}

// lastWords are what a worker whose function returned err tells its
// master. A worker that a stop signal reached (its own SIGTERM, or its
// caller's ctx done, through Signals) says it was stopped: the master
// counts no crash for a stop it did not ask for (an operator's SIGTERM).
func lastWords(stopped bool, err error) string {
	var words string
	if stopped {
		words = stoppedOutside
	}
	if err != nil {
		if words != "" {
			words += "; "
		}
		words += err.Error()
	}
	return words
}
