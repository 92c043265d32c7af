package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/internal/errclass"
	"github.com/hypersdk/hypersdk/internal/fielderr"
)

// Problem types by HTTP status, for errors raised by request validation
// and routing rather than by a handler.
var statusProblem = map[int]string{
	http.StatusBadRequest:            "bad-request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not-found",
	http.StatusMethodNotAllowed:      "method-not-allowed",
	http.StatusNotAcceptable:         "not-acceptable",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "body-too-large",
	http.StatusUnsupportedMediaType:  "unsupported-media-type",
	http.StatusUnprocessableEntity:   apitypes.ProblemValidationFailed,
	http.StatusTooManyRequests:       "too-many-requests",
	http.StatusInternalServerError:   apitypes.ProblemInternal,
	http.StatusBadGateway:            "upstream-failed",
	http.StatusServiceUnavailable:    "unavailable",
	http.StatusGatewayTimeout:        apitypes.ProblemUpstreamTimeout,
}

// classStatus is the HTTP status of each error class: the one mapping from
// the errors of jobs, schedules, webhooks and providers to responses.
var classStatus = map[errclass.Class]int{
	errclass.NotFound:    http.StatusNotFound,
	errclass.Invalid:     http.StatusUnprocessableEntity,
	errclass.Conflict:    http.StatusConflict,
	errclass.Unavailable: http.StatusServiceUnavailable,
	errclass.Upstream:    http.StatusBadGateway,
}

func problem(status int, slug, detail string) *huma.ErrorModel {
	return &huma.ErrorModel{Type: apitypes.ProblemTypePrefix + slug, Title: http.StatusText(status), Status: status, Detail: detail}
}

// problemTypes fills in the type of problems huma raised itself.
func problemTypes(_ huma.Context, _ string, v any) (any, error) {
	if e, ok := v.(*huma.ErrorModel); ok && (e.Type == "" || e.Type == "about:blank") {
		slug, ok := statusProblem[e.Status]
		if !ok {
			slug = "http-" + http.StatusText(e.Status)
		}
		e.Type = apitypes.ProblemTypePrefix + slug
	}
	return v, nil
}

// invalid reports a refused request (422). Problems named by field
// become errors[] entries located at the body field ("body.output"), so
// that a client can name what its user typed for it (hyperctl: the flag);
// the detail is then the summary, as for huma's own validation.
func invalid(slug string, kind *errclass.Error, err error) *huma.ErrorModel {
	list, ok := fielderr.Of(err)
	if !ok {
		return problem(http.StatusUnprocessableEntity, slug, strings.TrimPrefix(err.Error(), kind.Error()+": "))
	}
	p := problem(http.StatusUnprocessableEntity, slug, kind.Error())
	for _, e := range list {
		loc := "body"
		if e.Field != "" {
			loc += "." + e.Field
		}
		p.Errors = append(p.Errors, &huma.ErrorDetail{Location: loc, Message: e.Message})
	}
	return p
}

// toProblem maps an error from the engine, the scheduler, the webhook
// service or a provider to a problem by its class (internal/errclass). An
// unexpected error is logged and reported without its text, which may hold
// internals.
func toProblem(ctx context.Context, log *slog.Logger, err error) error {
	if c := errclass.Of(err); c != nil {
		status, ok := classStatus[c.Class]
		if !ok {
			status = http.StatusInternalServerError
		}
		if c.Class == errclass.Invalid {
			return invalid(c.Slug, c, err)
		}
		detail := err.Error()
		if c.Class == errclass.Conflict {
			// "conflict: job … already …" → "job … already …": the slug says the rest.
			detail = strings.TrimPrefix(detail, c.Error()+": ")
		}
		return problem(status, c.Slug, detail)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return problem(http.StatusGatewayTimeout, apitypes.ProblemUpstreamTimeout, "the platform did not answer in time")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return problem(499, apitypes.ProblemClientClosed, "request cancelled")
	}
	log.Error("request failed", "err", err)
	return problem(http.StatusInternalServerError, apitypes.ProblemInternal, "internal error; see the daemon log")
}
