package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/internal/fielderr"
)

type statsHistoryInput struct {
	Since time.Time `query:"since" doc:"Start (RFC 3339); default a day before until"`
	Until time.Time `query:"until" doc:"End (RFC 3339); default now"`
	Step  string    `query:"step" doc:"Bucket length, e.g. 1m or 1h; default about 1/240 of the window. At most 1000 buckets."`
}

type statsHistoryOutput struct {
	Body *apitypes.StatsHistory
}

func (s *Server) registerStats() {
	if s.opts.Stats == nil {
		return
	}
	o := op("getStatsHistory", http.MethodGet, apitypes.APIPrefix+"/stats/history", "viewer",
		"Recent history in time buckets: bytes moved, jobs finished by state, export durations by provider, queue length, running jobs", "stats")
	o.Errors = append(o.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, o, func(ctx context.Context, in *statsHistoryInput) (*statsHistoryOutput, error) {
		var step time.Duration
		if in.Step != "" {
			d, err := time.ParseDuration(in.Step)
			if err != nil {
				return nil, queryProblem("step", in.Step, "must be a duration such as 30s, 5m or 1h")
			}
			step = d
		}
		h, err := s.opts.Stats.History(ctx, in.Since, in.Until, step)
		if list, ok := fielderr.Of(err); ok && len(list) > 0 {
			return nil, queryProblem(list[0].Field, "", list[0].Message)
		}
		if err != nil {
			return nil, toProblem(ctx, s.log, err)
		}
		return &statsHistoryOutput{Body: h}, nil
	})
}

// queryProblem is a 422 naming a query parameter, as huma's own
// validation reports one.
func queryProblem(param string, value any, msg string) *huma.ErrorModel {
	p := problem(http.StatusUnprocessableEntity, apitypes.ProblemValidationFailed, "validation failed")
	d := &huma.ErrorDetail{Location: "query." + param, Message: msg}
	if value != "" {
		d.Value = value
	}
	p.Errors = []*huma.ErrorDetail{d}
	return p
}
