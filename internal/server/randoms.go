package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/lbserver/lbserver/internal/admission"
	"github.com/lbserver/lbserver/internal/randoms"
	"github.com/lbserver/lbserver/internal/respond"
)

// ParseCant reads the cant query value. present says whether the query had
// the key at all (absent means the default). It accepts only a plain whole
// number (ASCII digits) from 1 to max; the error says what is allowed.
func ParseCant(values []string, def, max int64) (int64, error) {
	switch len(values) {
	case 0:
		return def, nil
	case 1:
	default:
		return 0, fmt.Errorf("cant given %d times: give it once, a whole number from 1 to %d", len(values), max)
	}
	v := values[0]
	bad := func() error {
		shown := v
		if len(shown) > 32 {
			shown = shown[:32] + "..."
		}
		return fmt.Errorf("invalid cant %q: must be a whole number from 1 to %d", shown, max)
	}
	if v == "" || len(v) > 19 {
		return 0, bad()
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, bad()
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > max {
		return 0, bad()
	}
	return n, nil
}

func (s *Server) handleRandoms(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery) // r.URL.Query() would drop a malformed cant and compute the default
	if err != nil {
		respond.Error(w, http.StatusBadRequest, "malformed query string: give cant=N, N a whole number from 1 to "+strconv.FormatInt(s.opts.MaxCant, 10))
		return
	}
	n, err := ParseCant(q["cant"], s.opts.DefaultCant, s.opts.MaxCant)
	if err != nil {
		respond.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	release, err := s.limiter.Acquire(r.Context())
	if errors.Is(err, admission.ErrBusy) {
		w.Header().Set("Retry-After", "1")
		respond.Error(w, http.StatusServiceUnavailable, "busy: every compute slot is taken and the queue is full; retry later")
		return
	}
	if err != nil { // the client went away while queued
		w.WriteHeader(499) // nginx's "client closed request"; nobody reads it
		return
	}
	defer release()
	// Each slot gets its share of the CPUs, so that all slots together
	// compute on one goroutine per CPU and the spare P stays free.
	counts, err := randoms.Count(r.Context(), n, max(1, randoms.DefaultParallelism()/s.limiter.Slots()))
	if err != nil {
		w.WriteHeader(499)
		return
	}
	s.metrics.drawn.Add(float64(n))
	respond.JSON(w, http.StatusOK, counts.AppendJSON(make([]byte, 0, 16*1024)))
}
