package webhooks

import (
	"strings"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/internal/errclass"
)

// Matches reports whether an endpoint subscribed to patterns wants an event
// of type typ. Patterns are exact types, "group.*" or "*". job.progress is
// opt-in: only an exact "job.progress" pattern selects it, since it is
// frequent. webhook.test goes only to the endpoint being tested.
func Matches(patterns []string, typ string) bool {
	for _, p := range patterns {
		if p == typ {
			return true
		}
		if typ == apitypes.EventJobProgress || typ == apitypes.EventWebhookTest {
			continue
		}
		if p == "*" {
			return true
		}
		if g, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(typ, g+".") {
			return true
		}
	}
	return false
}

// ValidPattern reports whether p is an event type, a group wildcard of a
// known group, or "*".
func ValidPattern(p string) bool {
	if p == "*" {
		return true
	}
	for _, t := range apitypes.EventTypes() {
		if p == t {
			return true
		}
		if g, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(t, g+".") {
			return true
		}
	}
	return false
}

// Errors the API maps to problems.
var (
	ErrNotFound = errclass.New(errclass.NotFound, apitypes.ProblemWebhookNotFound, "not found")
	ErrInvalid  = errclass.New(errclass.Invalid, apitypes.ProblemInvalidWebhook, "invalid webhook request")
	ErrConflict = errclass.New(errclass.Conflict, apitypes.ProblemWebhookConflict, "conflict")
)
