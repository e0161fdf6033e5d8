// Package logstream splits lbserver's log by level between the two output
// streams: informational lines (serving, drained, worker started) go to
// stdout, warnings and errors to stderr. Process managers show the streams
// apart: PM2 writes stdout to APP-out.log and stderr to APP-error.log and
// prints stderr lines in red, so an info line on stderr looks like an error
// there. forever and nodemon interleave both streams in one log or terminal,
// and journald stores both with the same priority, so nothing changes for
// them.
package logstream

import (
	"context"
	"io"
	"log/slog"
)

// New returns a text handler that writes records below slog.LevelWarn to
// out and the others to errw, with the options opts (may be nil).
func New(out, errw io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return &handler{info: slog.NewTextHandler(out, opts), warn: slog.NewTextHandler(errw, opts)}
}

// handler sends each record to one of two handlers by its level.
type handler struct {
	info, warn slog.Handler // below slog.LevelWarn; the rest
}

func (h *handler) pick(l slog.Level) slog.Handler {
	if l < slog.LevelWarn {
		return h.info
	}
	return h.warn
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.pick(l).Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	return h.pick(r.Level).Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{info: h.info.WithAttrs(attrs), warn: h.warn.WithAttrs(attrs)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{info: h.info.WithGroup(name), warn: h.warn.WithGroup(name)}
}
