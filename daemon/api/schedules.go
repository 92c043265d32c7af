package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/apitypes"
)

type scheduleIDInput struct {
	ID string `path:"id" minLength:"1" maxLength:"100" doc:"Schedule ID or name"`
}

type scheduleOutput struct {
	Status   int
	Location string `header:"Location"`
	Body     *scheduleBody
}

type scheduleBody = apitypes.Schedule

type scheduleListOutput struct {
	Body struct {
		Items []*apitypes.Schedule `json:"items"`
	}
}

type historyInput struct {
	ID     string `path:"id" minLength:"1" maxLength:"100"`
	Cursor string `query:"cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}

type executionListOutput struct {
	Body apitypes.ExecutionList
}

type executionOutput struct {
	Status int
	Body   *apitypes.Execution
}

type previewOutput struct {
	Body struct {
		Schedule string      `json:"schedule"`
		Timezone string      `json:"timezone"`
		Next     []time.Time `json:"next"`
	}
}

func (s *Server) registerSchedules() {
	sch := s.opts.Scheduler
	if sch == nil {
		return
	}
	const tag = "schedules"
	base := apitypes.APIPrefix + "/schedules"
	huma.Register(s.api, op("listSchedules", http.MethodGet, base, "viewer", "List schedules with their next five due times", tag),
		func(ctx context.Context, _ *struct{}) (*scheduleListOutput, error) {
			list, err := sch.List(ctx)
			if err != nil {
				return nil, toProblem(ctx, s.log, err)
			}
			out := &scheduleListOutput{}
			out.Body.Items = list
			return out, nil
		})

	create := op("createSchedule", http.MethodPost, base, "operator", "Create a schedule: an export submitted at every due time", tag)
	create.DefaultStatus = http.StatusCreated
	create.Errors = append(create.Errors, http.StatusConflict, http.StatusUnprocessableEntity)
	huma.Register(s.api, create, func(ctx context.Context, in *struct{ Body apitypes.ScheduleSpec }) (*scheduleOutput, error) {
		sc, err := sch.Create(ctx, in.Body, PrincipalFrom(ctx).Name)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &scheduleOutput{Status: http.StatusCreated, Location: base + "/" + sc.ID, Body: sc}, nil
	})

	preview := op("previewSchedule", http.MethodPost, base+"/preview", "viewer", "The next due times of an expression, without saving anything", tag)
	preview.Errors = append(preview.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, preview, func(ctx context.Context, in *struct{ Body apitypes.PreviewRequest }) (*previewOutput, error) {
		n := in.Body.Count
		if n == 0 {
			n = 5
		}
		zone := in.Body.Timezone
		if zone == "" {
			zone = "UTC"
		}
		next, err := sch.Preview(in.Body.Schedule, zone, n)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		out := &previewOutput{}
		out.Body.Schedule, out.Body.Timezone, out.Body.Next = in.Body.Schedule, zone, next
		return out, nil
	})

	get := op("getSchedule", http.MethodGet, base+"/{id}", "viewer", "Get a schedule by ID or name", tag)
	get.Errors = append(get.Errors, http.StatusNotFound)
	huma.Register(s.api, get, func(ctx context.Context, in *scheduleIDInput) (*scheduleOutput, error) {
		sc, err := sch.Get(ctx, in.ID)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &scheduleOutput{Status: http.StatusOK, Body: sc}, nil
	})

	patch := op("updateSchedule", http.MethodPatch, base+"/{id}", "operator", "Change a schedule; new timing takes effect from now", tag)
	patch.Errors = append(patch.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, patch, func(ctx context.Context, in *struct {
		ID   string `path:"id" minLength:"1" maxLength:"100"`
		Body apitypes.SchedulePatch
	}) (*scheduleOutput, error) {
		sc, err := sch.Update(ctx, in.ID, in.Body)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &scheduleOutput{Status: http.StatusOK, Body: sc}, nil
	})

	for _, t := range []struct {
		id, path, summary string
		enabled           bool
	}{
		{"enableSchedule", "/enable", "Resume a schedule (runs missed while paused are not made up)", true},
		{"disableSchedule", "/disable", "Pause a schedule", false},
	} {
		o := op(t.id, http.MethodPost, base+"/{id}"+t.path, "operator", t.summary, tag)
		o.Errors = append(o.Errors, http.StatusNotFound)
		enabled := t.enabled
		huma.Register(s.api, o, func(ctx context.Context, in *scheduleIDInput) (*scheduleOutput, error) {
			sc, err := sch.Update(ctx, in.ID, apitypes.SchedulePatch{Enabled: &enabled})
			if err != nil {
				return nil, toProblem(ctx, s.log, err)
			}
			return &scheduleOutput{Status: http.StatusOK, Body: sc}, nil
		})
	}

	del := op("deleteSchedule", http.MethodDelete, base+"/{id}", "admin", "Delete a schedule and its history (its jobs are kept)", tag)
	del.DefaultStatus = http.StatusNoContent
	del.Errors = append(del.Errors, http.StatusNotFound)
	huma.Register(s.api, del, func(ctx context.Context, in *scheduleIDInput) (*struct{}, error) {
		if err := sch.Delete(ctx, in.ID); err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return nil, nil
	})

	run := op("runSchedule", http.MethodPost, base+"/{id}/run", "operator", "Run a schedule's export now (recorded as a manual run)", tag)
	run.DefaultStatus = http.StatusAccepted
	run.Errors = append(run.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, run, func(ctx context.Context, in *scheduleIDInput) (*executionOutput, error) {
		x, err := sch.RunNow(ctx, in.ID)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &executionOutput{Status: http.StatusAccepted, Body: x}, nil
	})

	hist := op("scheduleHistory", http.MethodGet, base+"/{id}/history", "viewer", "A schedule's executions, newest first", tag)
	hist.Errors = append(hist.Errors, http.StatusNotFound)
	huma.Register(s.api, hist, func(ctx context.Context, in *historyInput) (*executionListOutput, error) {
		items, next, err := sch.History(ctx, in.ID, in.Cursor, in.Limit)
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &executionListOutput{Body: apitypes.ExecutionList{Items: items, NextCursor: next}}, nil
	})
}
