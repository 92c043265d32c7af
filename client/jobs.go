package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
)

// NewIdempotencyKey returns a random key for one logical submission.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "hsk-idem-" + hex.EncodeToString(b[:])
}

// Submission is the outcome of SubmitJob.
type Submission struct {
	Job *apitypes.Job
	// Replayed is true when the server returned the job of an earlier
	// submission with the same idempotency key instead of creating one.
	Replayed bool
	// IdempotencyKey is the key that was sent.
	IdempotencyKey string
	// Attempts is how many POSTs it took.
	Attempts int
}

// SubmitJob submits an export job. With an empty idempotencyKey a random
// one is used. The POST is repeated with the same key when the connection
// fails or the server answers 5xx, so at most one job is created however
// many attempts it takes.
func (c *Client) SubmitJob(ctx context.Context, req apitypes.JobRequest, idempotencyKey string) (*Submission, error) {
	if idempotencyKey == "" {
		idempotencyKey = NewIdempotencyKey()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	r := request{method: http.MethodPost, path: apiPath("jobs"), body: body,
		header: http.Header{"Idempotency-Key": {idempotencyKey}}}
	for attempt := 1; ; attempt++ {
		var j apitypes.Job
		resp, err := c.call(ctx, r, &j)
		if err == nil {
			return &Submission{Job: &j, Replayed: resp.Header.Get("Idempotent-Replayed") == "true",
				IdempotencyKey: idempotencyKey, Attempts: attempt}, nil
		}
		if attempt >= c.attempts || !transient(ctx, err) {
			if attempt > 1 {
				err = fmt.Errorf("after %d attempts: %w", attempt, err)
			}
			return nil, err
		}
		if err := c.sleep(ctx, "submit", attempt, err); err != nil {
			return nil, err
		}
	}
}

// GetJob returns one job.
func (c *Client) GetJob(ctx context.Context, id string) (*apitypes.Job, error) {
	var j apitypes.Job
	if err := c.get(ctx, apiPath("jobs", id), nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ListJobs returns one page of jobs, newest first. f.Cursor continues
// from a previous page's NextCursor; f.Limit is the page size (server
// default 50, at most 1000).
func (c *Client) ListJobs(ctx context.Context, f apitypes.JobFilter) (*apitypes.JobList, error) {
	q := url.Values{}
	if len(f.States) > 0 {
		s := make([]string, len(f.States))
		for i, st := range f.States {
			s[i] = string(st)
		}
		q.Set("state", strings.Join(s, ","))
	}
	setIf(q, "provider", f.Provider)
	setIf(q, "vm", f.VM)
	if !f.CreatedAfter.IsZero() {
		q.Set("created_after", f.CreatedAfter.UTC().Format(time.RFC3339Nano))
	}
	if !f.CreatedBefore.IsZero() {
		q.Set("created_before", f.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	if !f.FinishedAfter.IsZero() {
		q.Set("finished_after", f.FinishedAfter.UTC().Format(time.RFC3339Nano))
	}
	if !f.FinishedBefore.IsZero() {
		q.Set("finished_before", f.FinishedBefore.UTC().Format(time.RFC3339Nano))
	}
	setIf(q, "cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out apitypes.JobList
	if err := c.get(ctx, apiPath("jobs"), q, &out); err != nil {
		return nil, err
	}
	if out.Items == nil {
		out.Items = []*apitypes.Job{}
	}
	return &out, nil
}

// AllJobs yields every job matching f, following cursors page by page
// (f.Limit is the page size). Iteration stops at the first error, which
// is yielded with a nil job.
func (c *Client) AllJobs(ctx context.Context, f apitypes.JobFilter) iter.Seq2[*apitypes.Job, error] {
	return func(yield func(*apitypes.Job, error) bool) {
		for {
			page, err := c.ListJobs(ctx, f)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, j := range page.Items {
				if !yield(j, nil) {
					return
				}
			}
			if page.NextCursor == "" || page.NextCursor == f.Cursor {
				return
			}
			f.Cursor = page.NextCursor
		}
	}
}

// CancelJob asks the daemon to cancel a job. A queued job comes back
// cancelled; a running one comes back running with CancelRequested set
// and becomes cancelled once its export has stopped (see WatchJob).
func (c *Client) CancelJob(ctx context.Context, id string) (*apitypes.Job, error) {
	var j apitypes.Job
	if _, err := c.call(ctx, request{method: http.MethodPost, path: apiPath("jobs", id, "cancel")}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// RetryJob submits a new job with the spec of a failed or cancelled job
// and returns the new job.
func (c *Client) RetryJob(ctx context.Context, id string) (*apitypes.Job, error) {
	var j apitypes.Job
	if _, err := c.call(ctx, request{method: http.MethodPost, path: apiPath("jobs", id, "retry")}, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// DeleteJob deletes a finished job and its logs (exported files stay).
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: apiPath("jobs", id)}, nil)
	return err
}

// WatchJob polls a job every interval (0 means one second, the rate at
// which the daemon persists progress) until it reaches a final state,
// calling fn (if non-nil) with every snapshot, and returns the final job.
// Connection failures and 5xx answers — a daemon restarting — are retried
// with backoff; after ten in a row, or on any other error, it gives up.
func (c *Client) WatchJob(ctx context.Context, id string, interval time.Duration, fn func(*apitypes.Job)) (*apitypes.Job, error) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failures := 0
	for {
		j, err := c.GetJob(ctx, id)
		switch {
		case err == nil:
			failures = 0
			if fn != nil {
				fn(j)
			}
			if j.State.Terminal() {
				return j, nil
			}
		case transient(ctx, err) && failures < maxTransientFailures:
			failures++
			if err := c.sleep(ctx, "watch", failures, err); err != nil {
				return nil, err
			}
			continue
		default:
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// maxTransientFailures bounds consecutive retries of long-running reads.
const maxTransientFailures = 10

// LogOptions select a job's log lines.
type LogOptions struct {
	// After skips lines with an ID up to and including it.
	After int64
	// Follow keeps reading new lines until the job finishes.
	Follow bool
}

// callbackError carries an error returned by the caller's function out of
// the stream, so that it is not mistaken for a broken connection.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// JobLogs streams a job's log lines (NDJSON from the server) to fn in
// order. With o.Follow it returns when the job has finished and its last
// lines were delivered; a stream cut short (a daemon restart) is resumed
// after the last line seen. An error from fn stops the stream and is
// returned as is.
func (c *Client) JobLogs(ctx context.Context, id string, o LogOptions, fn func(apitypes.LogLine) error) error {
	after := o.After
	deliver := func(l apitypes.LogLine) error {
		after = max(after, l.ID)
		if err := fn(l); err != nil {
			return &callbackError{err}
		}
		return nil
	}
	unwrap := func(err error) error {
		var cb *callbackError
		if errors.As(err, &cb) {
			return cb.err
		}
		return err
	}
	if !o.Follow {
		return unwrap(c.streamLogs(ctx, id, after, false, deliver))
	}
	failures := 0
	for {
		seen := after
		err := c.streamLogs(ctx, id, after, true, deliver)
		if err == nil {
			// The server ends a followed stream when the job is final,
			// or when it shuts down: only the first is the end.
			j, gerr := c.GetJob(ctx, id)
			if gerr == nil && j.State.Terminal() {
				// Lines written with the final state, if the stream
				// ended before them.
				return unwrap(c.streamLogs(ctx, id, after, false, deliver))
			}
			err = gerr
			if err == nil {
				err = io.ErrUnexpectedEOF // stream ended early
			}
		}
		var cb *callbackError
		if errors.As(err, &cb) {
			return cb.err
		}
		if after > seen {
			failures = 0
		}
		if !transient(ctx, err) || failures >= maxTransientFailures {
			return err
		}
		failures++
		if err := c.sleep(ctx, "logs", failures, err); err != nil {
			return err
		}
	}
}

func (c *Client) streamLogs(ctx context.Context, id string, after int64, follow bool, fn func(apitypes.LogLine) error) error {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if follow {
		q.Set("follow", "true")
	}
	resp, release, err := c.send(ctx, request{method: http.MethodGet, path: apiPath("jobs", id, "logs"), query: q}, follow)
	if err != nil {
		return err
	}
	defer release()
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var l apitypes.LogLine
		err := dec.Decode(&l)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("job %s logs: %w", id, err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}
