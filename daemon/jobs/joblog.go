package jobs

import (
	"context"
	"database/sql"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/transfer"
)

// maxLogLinesPerAttempt bounds what one attempt can write to job_logs, so a
// provider logging in a loop cannot fill the database.
const maxLogLinesPerAttempt = 10000

// logSink buffers an attempt's log records until the next heartbeat writes
// them in the same transaction as the progress update.
type logSink struct {
	jobID   string
	mu      sync.Mutex
	pending []logRecord
	written int
	dropped int
}

func newLogSink(jobID string) *logSink { return &logSink{jobID: jobID} }

func (s *logSink) add(r logRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written+len(s.pending) >= maxLogLinesPerAttempt {
		s.dropped++
		return
	}
	s.pending = append(s.pending, r)
}

func (s *logSink) flush(ctx context.Context, tx *sql.Tx) error {
	s.mu.Lock()
	recs := s.pending
	s.pending = nil
	if s.dropped > 0 && s.written+len(recs) >= maxLogLinesPerAttempt {
		recs = append(recs, logRecord{jobID: s.jobID, at: time.Now(), level: slog.LevelWarn,
			msg: "log lines dropped: per-attempt limit reached", attrs: map[string]any{"dropped": s.dropped}})
		s.dropped = 0
	}
	s.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	if err := insertLogs(ctx, tx, recs); err != nil {
		// Keep them for the next flush.
		s.mu.Lock()
		s.pending = append(recs, s.pending...)
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	s.written += len(recs)
	s.mu.Unlock()
	return nil
}

// jobLogHandler sends every record to the daemon's log and, from Info up,
// to the job's own persisted log.
type jobLogHandler struct {
	next   slog.Handler
	sink   *logSink
	attrs  []slog.Attr
	groups []string
}

func (h *jobLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

// Handle stores and forwards r with every http(s) URL in its message and
// string values redacted (transfer.RedactURLs): viewers read job logs, and a
// provider's line may carry a pre-signed or NFC lease URL.
func (h *jobLogHandler) Handle(ctx context.Context, r slog.Record) error {
	r = redactRecord(r)
	if r.Level >= slog.LevelInfo {
		attrs := map[string]any{}
		prefix := ""
		for _, g := range h.groups {
			prefix += g + "."
		}
		for _, a := range h.attrs {
			if a.Key != "job_id" {
				addAttr(attrs, "", a)
			}
		}
		r.Attrs(func(a slog.Attr) bool {
			addAttr(attrs, prefix, a)
			return true
		})
		h.sink.add(logRecord{jobID: h.sink.jobID, at: r.Time, level: r.Level, msg: r.Message, attrs: attrs})
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func redactRecord(r slog.Record) slog.Record {
	out := slog.NewRecord(r.Time, r.Level, transfer.RedactURLs(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return out
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, transfer.RedactURLs(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = redactAttr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, transfer.RedactURLs(err.Error()))
		}
		// Other values keep their type unless their text holds a URL.
		if s := v.String(); strings.Contains(s, "://") {
			return slog.String(a.Key, transfer.RedactURLs(s))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func addAttr(m map[string]any, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, ga := range v.Group() {
			addAttr(m, prefix+a.Key+".", ga)
		}
		return
	}
	switch v.Kind() {
	case slog.KindString:
		m[prefix+a.Key] = v.String()
	case slog.KindInt64:
		m[prefix+a.Key] = v.Int64()
	case slog.KindUint64:
		m[prefix+a.Key] = v.Uint64()
	case slog.KindFloat64:
		m[prefix+a.Key] = v.Float64()
	case slog.KindBool:
		m[prefix+a.Key] = v.Bool()
	case slog.KindDuration:
		m[prefix+a.Key] = v.Duration().String()
	case slog.KindTime:
		m[prefix+a.Key] = v.Time()
	default:
		if err, ok := v.Any().(error); ok {
			m[prefix+a.Key] = err.Error()
		} else {
			m[prefix+a.Key] = v.String()
		}
	}
}

func (h *jobLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	as = slices.Clone(as)
	for i := range as {
		as[i] = redactAttr(as[i])
	}
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &c
}

func (h *jobLogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.groups = append(append([]string{}, h.groups...), name)
	return &c
}
