package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that keeps only the headers: the
// benchmark measures the handler, not a recorder's buffer.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkInfo compares /info (HTML) with /api/info (JSON), side by side,
// through the whole Server (headers, routing, metrics).
//
//	go test -run '^$' -bench Info -benchmem ./internal/server/
func BenchmarkInfo(b *testing.B) {
	s := newTestServer(b)
	for _, route := range []string{"/api/info", "/info"} {
		b.Run(route, func(b *testing.B) {
			r := httptest.NewRequest("GET", route, nil)
			r.Header.Set("Accept", "text/html")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					s.ServeHTTP(w, r)
				}
			})
		})
	}
}
