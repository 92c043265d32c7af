package apitypes

// ProblemTypePrefix starts every problem "type" (RFC 9457). The suffixes
// (slugs) are stable; clients may switch on them.
const ProblemTypePrefix = "urn:hypersdk:problem:"

// Problem slugs the daemon reports for errors of its own. Requests the
// HTTP layer refuses carry a slug named after the status ("bad-request",
// "unauthorized", "forbidden", "not-found", "validation-failed",
// "body-too-large", "too-many-requests"…).
const (
	ProblemJobNotFound        = "job-not-found"
	ProblemInvalidJobRequest  = "invalid-job-request"
	ProblemJobConflict        = "job-conflict"
	ProblemShuttingDown       = "shutting-down"
	ProblemScheduleNotFound   = "schedule-not-found"
	ProblemInvalidSchedule    = "invalid-schedule"
	ProblemScheduleConflict   = "schedule-conflict"
	ProblemWebhookNotFound    = "webhook-not-found"
	ProblemInvalidWebhook     = "invalid-webhook"
	ProblemWebhookConflict    = "webhook-conflict"
	ProblemProviderNotFound   = "provider-not-found"
	ProblemVMNotFound         = "vm-not-found"
	ProblemVMAmbiguous        = "vm-ambiguous"
	ProblemInvalidArgument    = "invalid-argument"
	ProblemProviderAuthFailed = "provider-auth-failed"
	// ProblemProviderNotConnected: the daemon has not connected to the
	// provider yet (it keeps trying); retry later.
	ProblemProviderNotConnected = "provider-not-connected"
	ProblemUpstreamTimeout      = "upstream-timeout"
	ProblemClientClosed         = "client-closed-request"
	ProblemNotReady             = "not-ready"
	ProblemInternal             = "internal"
	ProblemValidationFailed     = "validation-failed"
)

// ErrorDetail names one field a request got wrong.
type ErrorDetail struct {
	// Message says what is wrong.
	Message string `json:"message,omitempty"`
	// Location is where, e.g. "body.compression_level" or "query.state[0]".
	Location string `json:"location,omitempty"`
	// Value is the offending value as the server saw it.
	Value any `json:"value,omitempty"`
}
