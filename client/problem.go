package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/hypersdk/hypersdk/apitypes"
)

// Problem is an error the API reported as RFC 9457 problem+json. Answers
// that are not problem documents (a proxy's HTML error page…) are turned
// into a Problem with an empty Type and the start of the body as Detail.
type Problem struct {
	// Type is "urn:hypersdk:problem:<slug>"; see Slug.
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Instance identifies this occurrence, when the server sets it.
	Instance string `json:"instance,omitempty"`
	// Errors name the fields a request got wrong (location such as
	// "body.compression_level" or "query.state[0]", and a message).
	Errors []*apitypes.ErrorDetail `json:"errors,omitempty"`
}

// Slug is the stable part of the problem type, e.g. "job-not-found",
// "validation-failed", "unauthorized"; "" when the answer was not a
// HyperSDK problem document.
func (p *Problem) Slug() string {
	if s, ok := strings.CutPrefix(p.Type, apitypes.ProblemTypePrefix); ok {
		return s
	}
	return ""
}

// Message is the problem's explanation: the detail, else the title, else
// the HTTP status text.
func (p *Problem) Message() string {
	switch {
	case p.Detail != "":
		return p.Detail
	case p.Title != "":
		return p.Title
	default:
		return http.StatusText(p.Status)
	}
}

// FieldErrors renders each entry of Errors as "location: message".
func (p *Problem) FieldErrors() []string { return p.FieldErrorsNamed(nil) }

// FieldErrorsNamed renders each entry of Errors as "name: message", where
// name is what rename returns for the entry's location, or the location
// itself when rename is nil or returns "". A CLI passes a rename that
// turns "body.output" into the flag its user typed.
func (p *Problem) FieldErrorsNamed(rename func(location string) string) []string {
	out := make([]string, 0, len(p.Errors))
	for _, e := range p.Errors {
		if e == nil {
			continue
		}
		name := e.Location
		if rename != nil {
			if n := rename(e.Location); n != "" {
				name = n
			}
		}
		s := e.Message
		if name != "" {
			s = name + ": " + s
		}
		if v, ok := shortValue(e.Value); ok {
			s += " (got " + v + ")"
		}
		out = append(out, s)
	}
	return out
}

// shortValue renders a scalar value echoed by the server, if it is short
// enough to be helpful on one line.
func shortValue(v any) (string, bool) {
	switch v.(type) {
	case string, float64, bool, json.Number:
	default:
		return "", false
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) > 60 {
		return "", false
	}
	return string(b), true
}

// Error is one line: the detail, the field errors, the status and slug.
func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Message())
	for _, f := range p.FieldErrors() {
		b.WriteString("; ")
		b.WriteString(f)
	}
	fmt.Fprintf(&b, " (HTTP %d", p.Status)
	if s := p.Slug(); s != "" {
		b.WriteString(" " + s)
	}
	b.WriteString(")")
	return b.String()
}

// IsProblem reports whether err is (or wraps) a *Problem with the given
// slug, e.g. IsProblem(err, "job-not-found").
func IsProblem(err error, slug string) bool {
	var p *Problem
	return errors.As(err, &p) && p.Slug() == slug
}

// StatusOf returns the HTTP status of a *Problem in err's chain, or 0.
func StatusOf(err error) int {
	var p *Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// decodeProblem reads an error answer.
func decodeProblem(resp *http.Response) *Problem {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "application/problem+json" || ct == "application/json" {
		var p Problem
		if err := json.Unmarshal(body, &p); err == nil && (p.Type != "" || p.Title != "" || p.Detail != "") {
			if p.Status == 0 {
				p.Status = resp.StatusCode
			}
			return &p
		}
	}
	p := &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	if text := strings.Join(strings.Fields(string(body)), " "); text != "" {
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		p.Detail = fmt.Sprintf("%s: %s", p.Title, text)
	}
	return p
}
