package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/internal/fielderr"
	"github.com/hypersdk/hypersdk/providers"
)

// ProblemTypePrefix starts every problem "type". The suffixes are stable;
// clients may switch on them.
const ProblemTypePrefix = "urn:hypersdk:problem:"

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
	http.StatusUnprocessableEntity:   "validation-failed",
	http.StatusTooManyRequests:       "too-many-requests",
	http.StatusInternalServerError:   "internal",
	http.StatusBadGateway:            "upstream-failed",
	http.StatusServiceUnavailable:    "unavailable",
	http.StatusGatewayTimeout:        "upstream-timeout",
}

func problem(status int, slug, detail string) *huma.ErrorModel {
	return &huma.ErrorModel{Type: ProblemTypePrefix + slug, Title: http.StatusText(status), Status: status, Detail: detail}
}

// problemTypes fills in the type of problems huma raised itself.
func problemTypes(_ huma.Context, _ string, v any) (any, error) {
	if e, ok := v.(*huma.ErrorModel); ok && (e.Type == "" || e.Type == "about:blank") {
		slug, ok := statusProblem[e.Status]
		if !ok {
			slug = "http-" + http.StatusText(e.Status)
		}
		e.Type = ProblemTypePrefix + slug
	}
	return v, nil
}

// invalid reports a refused request (422). Problems named by field
// become errors[] entries located at the body field ("body.output"), so
// that a client can name what its user typed for it (hyperctl: the flag);
// the detail is then the summary, as for huma's own validation.
func invalid(slug string, kind, err error) *huma.ErrorModel {
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

// toProblem maps an error from the engine or a provider to a problem. An
// unexpected error is logged and reported without its text, which may hold
// internals.
func toProblem(ctx context.Context, log *slog.Logger, err error) error {
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return problem(http.StatusNotFound, "job-not-found", err.Error())
	case errors.Is(err, jobs.ErrInvalid):
		return invalid("invalid-job-request", jobs.ErrInvalid, err)
	case errors.Is(err, jobs.ErrConflict):
		return problem(http.StatusConflict, "job-conflict", strings.TrimPrefix(err.Error(), jobs.ErrConflict.Error()+": "))
	case errors.Is(err, jobs.ErrStopping):
		return problem(http.StatusServiceUnavailable, "shutting-down", err.Error())
	case errors.Is(err, providers.ErrNotFound):
		return problem(http.StatusNotFound, "vm-not-found", err.Error())
	case errors.Is(err, providers.ErrAmbiguous):
		return problem(http.StatusConflict, "vm-ambiguous", err.Error())
	case errors.Is(err, providers.ErrInvalidArgument):
		return problem(http.StatusUnprocessableEntity, "invalid-argument", err.Error())
	case errors.Is(err, providers.ErrAuth):
		return problem(http.StatusBadGateway, "provider-auth-failed", err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return problem(http.StatusGatewayTimeout, "upstream-timeout", "the platform did not answer in time")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return problem(499, "client-closed-request", "request cancelled")
	}
	log.Error("request failed", "err", err)
	return problem(http.StatusInternalServerError, "internal", "internal error; see the daemon log")
}
