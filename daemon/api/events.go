package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/events"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/scheduler"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
)

// Event stream defaults (Options.Stream).
const (
	defaultMaxStreams = 64
	defaultPoll       = time.Second
	defaultHeartbeat  = 15 * time.Second
	// streamWriteTimeout drops a client that stops reading, so a stream
	// never holds a goroutine and a connection forever.
	streamWriteTimeout = 30 * time.Second
	// eventStats is the stream's own event: the daemon's state now.
	eventStats = "stats"
)

// StreamOptions tune the event stream.
type StreamOptions struct {
	// MaxStreams caps concurrent streams; more get 429 (default 64).
	MaxStreams int
	// Poll is the fallback read interval, which is how events of other
	// daemons arrive (default 1 s); this daemon's job changes wake the
	// stream at once.
	Poll time.Duration
	// Heartbeat is the interval of comment lines that keep proxies from
	// closing an idle stream (default 15 s).
	Heartbeat time.Duration
}

type eventsInput struct {
	LastEventID string   `header:"Last-Event-ID" doc:"Resume after this event id (sent by EventSource clients on reconnect)"`
	After       string   `query:"after" doc:"Resume after this event id, for clients that cannot set Last-Event-ID; 0 replays every stored event"`
	Types       []string `query:"types" explode:"false" doc:"Only these event types (comma-separated; job.* selects a group; stats is the periodic state event); default all"`
}

// jobEventMessage and scheduleEventMessage document the data of stored
// events: the stream sends webhook payloads unchanged.
type jobEventMessage struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      jobs.EventData `json:"data"`
}

type scheduleEventMessage struct {
	Type      string                `json:"type"`
	Timestamp time.Time             `json:"timestamp"`
	Data      scheduler.TriggerData `json:"data"`
}

func (s *Server) registerEvents() {
	if s.opts.Events == nil {
		return
	}
	if s.opts.Stream.MaxStreams <= 0 {
		s.opts.Stream.MaxStreams = defaultMaxStreams
	}
	if s.opts.Stream.Poll <= 0 {
		s.opts.Stream.Poll = defaultPoll
	}
	if s.opts.Stream.Heartbeat <= 0 {
		s.opts.Stream.Heartbeat = defaultHeartbeat
	}
	s.streams = make(chan struct{}, s.opts.Stream.MaxStreams)

	o := op("streamEvents", http.MethodGet, apitypes.APIPrefix+"/events", "viewer",
		"Live events as Server-Sent Events: every job, schedule and webhook event as webhooks receive it, and a periodic stats event", "events")
	o.Description = "Each message is `id: <sequence>`, `event: <type>` and `data: <JSON>`: for job and schedule events the webhook payload, " +
		"for `stats` an apitypes StatsSample (sent about every sampling interval, without an id). Reconnect with `Last-Event-ID` " +
		"(or `after`) to resume without gaps while the events are retained; a comment line is sent every 15 s. " +
		"Authenticate with the Authorization header (a browser reads the stream with fetch; EventSource cannot send the header)."
	o.Errors = append(o.Errors, http.StatusUnprocessableEntity, http.StatusTooManyRequests)
	o.Responses = map[string]*huma.Response{"200": {
		Description: "An endless text/event-stream",
		Content:     map[string]*huma.MediaType{"text/event-stream": {Schema: s.streamSchema()}},
	}}
	huma.Register(s.api, o, func(ctx context.Context, in *eventsInput) (*huma.StreamResponse, error) {
		types, err := streamTypes(in.Types)
		if err != nil {
			return nil, err
		}
		after, err := s.resumePoint(ctx, in)
		if err != nil {
			return nil, err
		}
		select {
		case s.streams <- struct{}{}:
		default:
			p := problem(http.StatusTooManyRequests, "too-many-requests", fmt.Sprintf("%d event streams are open, the most this daemon serves; retry later", cap(s.streams)))
			return nil, huma.ErrorWithHeaders(p, http.Header{"Retry-After": {"10"}})
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			defer func() { <-s.streams }()
			s.stream(ctx, hctx, s.opts.Events.Cursor(after, types.events), types.stats)
		}}, nil
	})
}

type typeFilter struct {
	events []string // patterns for stored events; nil = all
	stats  bool
}

// streamTypes checks ?types=; "stats" selects the stats event.
func streamTypes(in []string) (typeFilter, error) {
	var f typeFilter
	if len(in) == 0 {
		return typeFilter{stats: true}, nil
	}
	for i, t := range in {
		for part := range strings.SplitSeq(t, ",") {
			part = strings.TrimSpace(part)
			switch {
			case part == "":
			case part == eventStats:
				f.stats = true
			case part == "*":
				f.stats = true
				f.events = append(f.events, part)
			case webhooks.ValidPattern(part):
				f.events = append(f.events, part)
			default:
				p := problem(http.StatusUnprocessableEntity, apitypes.ProblemValidationFailed, "validation failed")
				p.Errors = []*huma.ErrorDetail{{Location: fmt.Sprintf("query.types[%d]", i), Value: part,
					Message: "unknown event type; use one of " + strings.Join(append(apitypes.EventTypes(), eventStats), ", ") + ", a group such as job.* or *"}}
				return f, p
			}
		}
	}
	if len(f.events) == 0 {
		// Only "stats": a pattern no stored event matches.
		f.events = []string{"-"}
	}
	return f, nil
}

// resumePoint is the event id to continue after: Last-Event-ID, else
// ?after, else the newest event (a new client wants what happens next).
func (s *Server) resumePoint(ctx context.Context, in *eventsInput) (int64, error) {
	for _, c := range []struct{ loc, v string }{{"header.Last-Event-ID", in.LastEventID}, {"query.after", in.After}} {
		if c.v == "" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(c.v), 10, 64)
		if err != nil || n < 0 {
			p := problem(http.StatusUnprocessableEntity, apitypes.ProblemValidationFailed, "validation failed")
			p.Errors = []*huma.ErrorDetail{{Location: c.loc, Value: c.v, Message: "must be an event id (a non-negative integer)"}}
			return 0, p
		}
		return n, nil
	}
	n, err := s.opts.Events.Latest(ctx)
	if err != nil {
		return 0, toProblem(ctx, s.log, err)
	}
	return n, nil
}

// stream writes events until the client goes away or the daemon stops.
func (s *Server) stream(ctx context.Context, hctx huma.Context, cur *events.Cursor, stats bool) {
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-store")
	hctx.SetHeader("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	bw := hctx.BodyWriter()
	rc := http.NewResponseController(responseWriter(bw))
	var buf bytes.Buffer
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := bw.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	// The retry hint and a first comment send the headers at once.
	fmt.Fprintf(&buf, "retry: 3000\n: hypersdk event stream, after %d\n\n", cur.Position())
	if !flush() {
		return
	}

	changes, stop := s.opts.Jobs.Changes()
	defer stop()
	poll := time.NewTicker(s.opts.Stream.Poll)
	defer poll.Stop()
	heartbeat := time.NewTicker(s.opts.Stream.Heartbeat)
	defer heartbeat.Stop()
	var statsC <-chan time.Time
	if stats && s.opts.Stats != nil {
		t := time.NewTicker(s.opts.Stats.Interval())
		defer t.Stop()
		statsC = t.C
		s.writeStats(ctx, &buf)
	}
	for {
		evs, more, err := cur.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("event stream: reading events failed", "err", err)
		}
		for _, e := range evs {
			writeEvent(&buf, strconv.FormatInt(e.Seq, 10), e.Type, e.Payload)
		}
		if buf.Len() > 0 && !flush() {
			return
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-poll.C:
		case <-heartbeat.C:
			buf.WriteString(": keep-alive\n\n")
		case <-statsC:
			s.writeStats(ctx, &buf)
		}
	}
}

func (s *Server) writeStats(ctx context.Context, buf *bytes.Buffer) {
	cur, err := s.opts.Stats.Current(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("event stream: stats failed", "err", err)
		}
		return
	}
	b, _ := json.Marshal(cur)
	writeEvent(buf, "", eventStats, b)
}

// writeEvent formats one message; data lines are split so a payload can
// never end the message early.
func writeEvent(w io.Writer, id, typ string, data []byte) {
	if id != "" {
		fmt.Fprintf(w, "id: %s\n", id)
	}
	fmt.Fprintf(w, "event: %s\n", typ)
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		fmt.Fprintf(w, "data: %s\n", bytes.TrimSuffix(line, []byte("\r")))
	}
	io.WriteString(w, "\n")
}

// streamSchema documents the messages, one schema per event type as huma's
// sse package does, so generated clients get typed data.
func (s *Server) streamSchema() *huma.Schema {
	reg := s.api.OpenAPI().Components.Schemas
	message := func(name string, dataType reflect.Type, hint string, withID bool) *huma.Schema {
		props := map[string]*huma.Schema{
			"event": {Type: huma.TypeString, Description: "The event type", Extensions: map[string]any{"const": name}},
			"data":  reg.Schema(dataType, true, hint),
		}
		if withID {
			props["id"] = &huma.Schema{Type: huma.TypeInteger, Description: "Sequence number; send as Last-Event-ID to resume"}
		}
		return &huma.Schema{Title: "Event " + name, Type: huma.TypeObject, Properties: props, Required: []string{"event", "data"}}
	}
	var variants []*huma.Schema
	for _, t := range apitypes.EventTypes() {
		switch {
		case strings.HasPrefix(t, "job."):
			variants = append(variants, message(t, reflectType[jobEventMessage](), "JobEventMessage", true))
		case strings.HasPrefix(t, "schedule."):
			variants = append(variants, message(t, reflectType[scheduleEventMessage](), "ScheduleEventMessage", true))
		default:
			variants = append(variants, message(t, reflectType[map[string]any](), "", true))
		}
	}
	variants = append(variants, message(eventStats, reflectType[apitypes.StatsSample](), "StatsSample", false))
	return &huma.Schema{
		Title:       "Server-Sent Events",
		Description: "Each item is one SSE message; job.progress data carries per-disk progress.",
		Type:        huma.TypeArray,
		Items:       &huma.Schema{Extensions: map[string]any{"oneOf": variants}},
	}
}
