package api_test

import (
	"bufio"
	"context"
	"encoding/json"

	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

// sseMessage is one parsed Server-Sent Events message.
type sseMessage struct {
	id    string
	event string
	data  string
}

// sseClient reads a live event stream as a browser's fetch would.
type sseClient struct {
	resp   *http.Response
	cancel context.CancelFunc
	msgs   chan sseMessage
	done   chan struct{}
}

func openStream(t *testing.T, ts *testServer, query, token string, hdr ...string) (*sseClient, response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		defer cancel()
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return nil, response{status: resp.StatusCode, header: resp.Header, body: []byte(b.String())}
	}
	c := &sseClient{resp: resp, cancel: cancel, msgs: make(chan sseMessage, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.msgs)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var m sseMessage
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.event != "" || m.data != "" {
					c.msgs <- m
				}
				m = sseMessage{}
			case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
			case strings.HasPrefix(line, "id: "):
				m.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				m.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if m.data != "" {
					m.data += "\n"
				}
				m.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(c.close)
	return c, response{status: 200, header: resp.Header}
}

func (c *sseClient) close() {
	c.cancel()
	<-c.done
	c.resp.Body.Close()
}

// next returns the next message passing keep, failing after a generous
// deadline.
func (c *sseClient) next(t *testing.T, what string, keep func(sseMessage) bool) sseMessage {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", what)
			}
			if keep(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within 60 s", what)
		}
	}
}

type streamedJobEvent struct {
	Type string         `json:"type"`
	Data jobs.EventData `json:"data"`
}

func decodeJobEvent(t *testing.T, m sseMessage) streamedJobEvent {
	t.Helper()
	var e streamedJobEvent
	if err := json.Unmarshal([]byte(m.data), &e); err != nil {
		t.Fatalf("event %s: %v: %s", m.event, err, m.data)
	}
	if e.Type != m.event {
		t.Fatalf("event %q carries type %q", m.event, e.Type)
	}
	return e
}

func forJob(id string) func(sseMessage) bool {
	return func(m sseMessage) bool { return m.id != "" && strings.Contains(m.data, `"job_id":"`+id+`"`) }
}

// A viewer watches a real export over the stream: the job's events in
// order with increasing ids, per-disk progress, and a resumption after
// Last-Event-ID that replays exactly what followed.
func TestEventStreamFollowsAnExport(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ts := newTestServer(t, db)
		ts.fake.ChunkDelay = 20 * time.Millisecond

		expectProblem(t, ts.do(t, "GET", "/api/v1/events", "", nil), 401, "unauthorized")

		stream, r := openStream(t, ts, "", viewerToken)
		if r.header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("content type %q", r.header.Get("Content-Type"))
		}
		var j apitypes.Job
		ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-001"}).json(t, &j)

		var seen []sseMessage
		var progress *streamedJobEvent
		for {
			m := stream.next(t, "the job's events", forJob(j.ID))
			seen = append(seen, m)
			e := decodeJobEvent(t, m)
			if m.event == apitypes.EventJobProgress && len(e.Data.Items) > 0 && progress == nil {
				progress = &e
			}
			if m.event == apitypes.EventJobCompleted || m.event == apitypes.EventJobFailed {
				break
			}
		}
		var types []string
		last := int64(0)
		for _, m := range seen {
			id, err := strconv.ParseInt(m.id, 10, 64)
			if err != nil || id <= last {
				t.Fatalf("event ids not increasing: %q after %d", m.id, last)
			}
			last = id
			if m.event != apitypes.EventJobProgress {
				types = append(types, m.event)
			}
		}
		if got := strings.Join(types, " "); got != "job.created job.started job.completed" {
			t.Fatalf("lifecycle events %q", got)
		}
		if progress == nil {
			t.Fatal("no job.progress event with per-disk items")
		}
		for _, it := range progress.Data.Items {
			if it.Name == "" || it.BytesDone < 0 || (it.BytesTotal > 0 && it.BytesDone > it.BytesTotal) {
				t.Fatalf("bad item progress %+v", it)
			}
		}
		if progress.Data.Progress == nil || progress.Data.Progress.BytesDone <= 0 {
			t.Fatalf("progress event without overall progress: %+v", progress.Data.Progress)
		}
		completed := decodeJobEvent(t, seen[len(seen)-1])
		if completed.Data.Bytes <= 0 || len(completed.Data.Files) == 0 {
			t.Fatalf("job.completed without files: %+v", completed.Data)
		}

		// Resuming after the first event replays the rest, identically.
		resumed, _ := openStream(t, ts, "", viewerToken, "Last-Event-ID", seen[0].id)
		for _, want := range seen[1:] {
			got := resumed.next(t, "replayed "+want.event, forJob(j.ID))
			if got != want {
				t.Fatalf("replayed %+v, want %+v", got, want)
			}
		}
		// ?after does the same for clients that cannot set the header, and
		// ?types filters.
		filtered, _ := openStream(t, ts, "?after=0&types=job.completed", viewerToken)
		got := filtered.next(t, "job.completed", func(m sseMessage) bool { return m.id != "" })
		if got != seen[len(seen)-1] {
			t.Fatalf("filtered stream sent %+v first, want %+v", got, seen[len(seen)-1])
		}
	})
}

// The stream sends the daemon's state as stats events; bad parameters
// are 422 problems naming them.
func TestEventStreamStatsAndValidation(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	stream, _ := openStream(t, ts, "?types=stats", viewerToken)
	m := stream.next(t, "a stats event", func(m sseMessage) bool { return m.event == "stats" })
	var st apitypes.StatsSample
	if err := json.Unmarshal([]byte(m.data), &st); err != nil || st.At.IsZero() || m.id != "" {
		t.Fatalf("stats event %+v: %v", m, err)
	}
	_, r := openStream(t, ts, "?types=job.nope", viewerToken)
	p := expectProblem(t, r, 422, apitypes.ProblemValidationFailed)
	if len(p.Errors) != 1 || p.Errors[0].Location != "query.types[0]" {
		t.Fatalf("problem %+v", p)
	}
	_, r = openStream(t, ts, "", viewerToken, "Last-Event-ID", "abc")
	p = expectProblem(t, r, 422, apitypes.ProblemValidationFailed)
	if len(p.Errors) != 1 || p.Errors[0].Location != "header.Last-Event-ID" {
		t.Fatalf("problem %+v", p)
	}
}

// Concurrent streams are capped, and a client going away frees its slot:
// the stream's goroutine ends with the connection.
func TestEventStreamLimitAndDisconnect(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite)) // MaxStreams 4
	var open []*sseClient
	for i := range 4 {
		c, r := openStream(t, ts, "", viewerToken)
		if c == nil {
			t.Fatalf("stream %d: %d %s", i, r.status, r.body)
		}
		open = append(open, c)
	}
	_, r := openStream(t, ts, "", viewerToken)
	expectProblem(t, r, 429, "too-many-requests")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	for _, c := range open {
		c.close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 4; {
		c, r := openStream(t, ts, "", viewerToken)
		switch {
		case c != nil:
			open[n] = c
			n++
		case r.status != 429 || time.Now().After(deadline):
			t.Fatalf("after disconnects: %d %s", r.status, r.body)
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestWhoAmI(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	expectProblem(t, ts.do(t, "GET", "/api/v1/whoami", "", nil), 401, "unauthorized")
	for tok, want := range map[string]apitypes.WhoAmI{
		viewerToken:   {Name: "ci-viewer", Role: "viewer"},
		operatorToken: {Name: "ci-operator", Role: "operator"},
		adminToken:    {Name: "ci-admin", Role: "admin"},
	} {
		var got apitypes.WhoAmI
		ts.do(t, "GET", "/api/v1/whoami", tok, nil).json(t, &got)
		if got != want {
			t.Errorf("whoami: %+v, want %+v", got, want)
		}
	}
}

// Retry resubmits a failed job's spec as a new job; other states are 409
// problems naming the state.
func TestRetryJob(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ts := newTestServer(t, db)
		ts.fake.FailNext("vm-002", errFake("disk on fire"))
		var failed apitypes.Job
		ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-002", "format": "ova", "max_attempts": 1}).json(t, &failed)
		waitJob(t, ts, failed.ID, apitypes.JobFailed)

		expectProblem(t, ts.do(t, "POST", "/api/v1/jobs/"+failed.ID+"/retry", viewerToken, nil), 403, "forbidden")
		expectProblem(t, ts.do(t, "POST", "/api/v1/jobs/nope/retry", operatorToken, nil), 404, apitypes.ProblemJobNotFound)
		r := ts.do(t, "POST", "/api/v1/jobs/"+failed.ID+"/retry", operatorToken, nil)
		if r.status != 201 {
			t.Fatalf("retry: %d %s", r.status, r.body)
		}
		var retried apitypes.Job
		r.json(t, &retried)
		if retried.ID == failed.ID || retried.VM != "vm-002" || retried.Spec.Options.Format != failed.Spec.Options.Format ||
			retried.SubmittedBy != "ci-operator" || r.header.Get("Location") != "/api/v1/jobs/"+retried.ID {
			t.Fatalf("retried job %+v (%s)", retried, r.header.Get("Location"))
		}
		if retried.Spec.Options.OutputDir == failed.Spec.Options.OutputDir {
			t.Fatalf("the retry reuses the failed job's default output directory %s", failed.Spec.Options.OutputDir)
		}
		waitJob(t, ts, retried.ID, apitypes.JobSucceeded)
		p := expectProblem(t, ts.do(t, "POST", "/api/v1/jobs/"+retried.ID+"/retry", operatorToken, nil), 409, apitypes.ProblemJobConflict)
		if !strings.Contains(p.Detail, "succeeded") {
			t.Fatalf("409 detail %q does not name the state", p.Detail)
		}
	})
}
