package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/apitypes"
)

type submitInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Makes a retried submission return the original job instead of creating another"`
	Body           apitypes.JobRequest
}

type jobOutput struct {
	Status   int
	Location string `header:"Location"`
	Replayed string `header:"Idempotent-Replayed" doc:"true when an earlier submission with the same Idempotency-Key is returned"`
	Body     *apitypes.Job
}

type jobIDInput struct {
	ID string `path:"id" doc:"Job ID" minLength:"1" maxLength:"64"`
}

type listJobsInput struct {
	State          []string  `query:"state" explode:"false" doc:"Only jobs in these states (comma-separated)" enum:"queued,running,succeeded,failed,cancelled"`
	Provider       string    `query:"provider" doc:"Only jobs for this provider instance"`
	VM             string    `query:"vm" doc:"Only jobs for this VM identifier (as submitted)"`
	CreatedAfter   time.Time `query:"created_after" doc:"Only jobs created at or after this time (RFC 3339)"`
	CreatedBefore  time.Time `query:"created_before" doc:"Only jobs created before this time (RFC 3339)"`
	FinishedAfter  time.Time `query:"finished_after" doc:"Only jobs that finished at or after this time (RFC 3339)"`
	FinishedBefore time.Time `query:"finished_before" doc:"Only jobs that finished before this time (RFC 3339)"`
	Cursor         string    `query:"cursor" doc:"next_cursor of the previous page"`
	Limit          int       `query:"limit" minimum:"1" maximum:"1000" default:"50"`
}

type listJobsOutput struct {
	Body apitypes.JobList
}

type logsInput struct {
	ID     string `path:"id" minLength:"1" maxLength:"64"`
	After  int64  `query:"after" minimum:"0" doc:"Only lines with an id greater than this"`
	Follow bool   `query:"follow" doc:"Keep the response open and stream new lines until the job finishes"`
}

func (s *Server) registerJobs() {
	submit := op("submitJob", http.MethodPost, apitypes.APIPrefix+"/jobs", "operator", "Submit an export job", "jobs")
	submit.DefaultStatus = http.StatusCreated
	submit.MaxBodyBytes = s.opts.MaxBodyBytes
	submit.Errors = append(submit.Errors, http.StatusConflict, http.StatusUnprocessableEntity)
	huma.Register(s.api, submit, func(ctx context.Context, in *submitInput) (*jobOutput, error) {
		j, created, err := s.opts.Jobs.Submit(ctx, in.Body, PrincipalFrom(ctx).Name, in.IdempotencyKey)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		out := &jobOutput{Status: http.StatusCreated, Location: apitypes.APIPrefix + "/jobs/" + j.ID, Body: j}
		if !created {
			out.Status, out.Replayed = http.StatusOK, "true"
		}
		return out, nil
	})

	huma.Register(s.api, op("listJobs", http.MethodGet, apitypes.APIPrefix+"/jobs", "viewer", "List jobs, newest first", "jobs"),
		func(ctx context.Context, in *listJobsInput) (*listJobsOutput, error) {
			f := apitypes.JobFilter{Provider: in.Provider, VM: in.VM, CreatedAfter: in.CreatedAfter, CreatedBefore: in.CreatedBefore,
				FinishedAfter: in.FinishedAfter, FinishedBefore: in.FinishedBefore, Cursor: in.Cursor, Limit: in.Limit}
			for _, st := range in.State {
				for part := range strings.SplitSeq(st, ",") {
					if part = strings.TrimSpace(part); part != "" {
						f.States = append(f.States, apitypes.JobState(part))
					}
				}
			}
			items, next, err := s.opts.Jobs.List(ctx, f)
			if err != nil {
				return nil, toProblem(ctx, s.log, err)
			}
			return &listJobsOutput{Body: apitypes.JobList{Items: items, NextCursor: next}}, nil
		})

	get := op("getJob", http.MethodGet, apitypes.APIPrefix+"/jobs/{id}", "viewer", "Get a job", "jobs")
	get.Errors = append(get.Errors, http.StatusNotFound)
	huma.Register(s.api, get, func(ctx context.Context, in *jobIDInput) (*jobOutput, error) {
		j, err := s.opts.Jobs.Get(ctx, in.ID)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &jobOutput{Status: http.StatusOK, Body: j}, nil
	})

	cancel := op("cancelJob", http.MethodPost, apitypes.APIPrefix+"/jobs/{id}/cancel", "operator",
		"Cancel a job: a queued job is cancelled at once, a running export is stopped and cleaned up within seconds", "jobs")
	cancel.Errors = append(cancel.Errors, http.StatusNotFound, http.StatusConflict)
	huma.Register(s.api, cancel, func(ctx context.Context, in *jobIDInput) (*jobOutput, error) {
		j, err := s.opts.Jobs.Cancel(ctx, in.ID, PrincipalFrom(ctx).Name)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		status := http.StatusOK
		if !j.State.Terminal() {
			status = http.StatusAccepted
		}
		return &jobOutput{Status: status, Body: j}, nil
	})

	retry := op("retryJob", http.MethodPost, apitypes.APIPrefix+"/jobs/{id}/retry", "operator",
		"Submit a new job with the same spec as a failed or cancelled job; returns the new job", "jobs")
	retry.DefaultStatus = http.StatusCreated
	retry.Errors = append(retry.Errors, http.StatusNotFound, http.StatusConflict)
	huma.Register(s.api, retry, func(ctx context.Context, in *jobIDInput) (*jobOutput, error) {
		j, err := s.opts.Jobs.Retry(ctx, in.ID, PrincipalFrom(ctx).Name)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &jobOutput{Status: http.StatusCreated, Location: apitypes.APIPrefix + "/jobs/" + j.ID, Body: j}, nil
	})

	del := op("deleteJob", http.MethodDelete, apitypes.APIPrefix+"/jobs/{id}", "admin", "Delete a finished job and its logs (exported files are kept)", "jobs")
	del.DefaultStatus = http.StatusNoContent
	del.Errors = append(del.Errors, http.StatusNotFound, http.StatusConflict)
	huma.Register(s.api, del, func(ctx context.Context, in *jobIDInput) (*struct{}, error) {
		if err := s.opts.Jobs.Delete(ctx, in.ID); err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return nil, nil
	})

	logs := op("getJobLogs", http.MethodGet, apitypes.APIPrefix+"/jobs/{id}/logs", "viewer",
		"A job's log lines as NDJSON (one JSON object per line); with follow=true the response stays open until the job finishes", "jobs")
	logs.Errors = append(logs.Errors, http.StatusNotFound)
	logs.Responses = map[string]*huma.Response{"200": {
		Description: "Log lines, one JSON object per line",
		Content:     map[string]*huma.MediaType{"application/x-ndjson": {Schema: s.api.OpenAPI().Components.Schemas.Schema(reflectType[apitypes.LogLine](), true, "LogLine")}},
	}}
	huma.Register(s.api, logs, func(ctx context.Context, in *logsInput) (*huma.StreamResponse, error) {
		first, err := s.opts.Jobs.Logs(ctx, in.ID, in.After, 0)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", "application/x-ndjson")
			hctx.SetHeader("Cache-Control", "no-store")
			w := hctx.BodyWriter()
			rc := http.NewResponseController(responseWriter(w))
			enc := json.NewEncoder(w)
			after := in.After
			batch := first
			for {
				for _, l := range batch {
					if err := enc.Encode(l); err != nil {
						return
					}
					after = l.ID
				}
				if !in.Follow {
					return
				}
				_ = rc.Flush()
				if len(batch) == 0 {
					j, err := s.opts.Jobs.Get(ctx, in.ID)
					if err != nil || j.State.Terminal() {
						// Drain lines written with the final state.
						rest, _ := s.opts.Jobs.Logs(ctx, in.ID, after, 0)
						for _, l := range rest {
							_ = enc.Encode(l)
						}
						return
					}
					s.opts.Jobs.Wait(ctx, in.ID, time.Second)
				}
				if ctx.Err() != nil {
					return
				}
				if batch, err = s.opts.Jobs.Logs(ctx, in.ID, after, 0); err != nil {
					return
				}
			}
		}}, nil
	})
}

// responseWriter lets http.ResponseController find the flusher behind
// huma's body writer.
func responseWriter(w any) http.ResponseWriter {
	if rw, ok := w.(http.ResponseWriter); ok {
		return rw
	}
	return nil
}
