package webhooks

import (
	"errors"
	"strings"
	"time"
)

// Event types.
const (
	TypeJobCreated        = "job.created"
	TypeJobStarted        = "job.started"
	TypeJobProgress       = "job.progress"
	TypeJobCompleted      = "job.completed"
	TypeJobFailed         = "job.failed"
	TypeJobCancelled      = "job.cancelled"
	TypeScheduleTriggered = "schedule.triggered"
	TypeScheduleFailed    = "schedule.failed"
	TypeWebhookTest       = "webhook.test"
)

// EventTypes lists every event type.
var EventTypes = []string{TypeJobCreated, TypeJobStarted, TypeJobProgress, TypeJobCompleted, TypeJobFailed,
	TypeJobCancelled, TypeScheduleTriggered, TypeScheduleFailed, TypeWebhookTest}

// Matches reports whether an endpoint subscribed to patterns wants an event
// of type typ. Patterns are exact types, "group.*" or "*". job.progress is
// opt-in: only an exact "job.progress" pattern selects it, since it is
// frequent. webhook.test goes only to the endpoint being tested.
func Matches(patterns []string, typ string) bool {
	for _, p := range patterns {
		if p == typ {
			return true
		}
		if typ == TypeJobProgress || typ == TypeWebhookTest {
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
	for _, t := range EventTypes {
		if p == t {
			return true
		}
		if g, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(t, g+".") {
			return true
		}
	}
	return false
}

// Endpoint is a configured receiver as the API shows it: the secret only
// by its prefix, headers only by name.
type Endpoint struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Description    string     `json:"description,omitempty"`
	Events         []string   `json:"events"`
	HeaderNames    []string   `json:"header_names,omitempty" doc:"Names of the extra headers sent; values are never shown"`
	SecretPrefix   string     `json:"secret_prefix" doc:"First characters of the signing secret, to tell secrets apart"`
	RotatingUntil  *time.Time `json:"rotating_until,omitempty" doc:"Until then the previous secret also signs"`
	Enabled        bool       `json:"enabled"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	TimeoutSeconds float64    `json:"timeout_seconds"`
	MaxRetries     int        `json:"max_retries"`
	Source         string     `json:"source" doc:"config (managed by the configuration file) or api"`
	Pending        int        `json:"pending" doc:"Deliveries waiting to be sent"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// EndpointSpec creates an endpoint.
type EndpointSpec struct {
	URL         string            `json:"url" minLength:"1" maxLength:"2048"`
	Description string            `json:"description,omitempty" maxLength:"500"`
	Events      []string          `json:"events" minItems:"1" doc:"Event types or wildcards (job.*, *); job.progress must be listed explicitly"`
	Headers     map[string]string `json:"headers,omitempty" doc:"Extra request headers, e.g. Authorization"`
	// Secret is whsec_ + base64 of 24 to 64 bytes; empty generates one.
	Secret  string `json:"secret,omitempty" doc:"whsec_ + base64 of 24-64 random bytes; generated when empty"`
	Timeout string `json:"timeout,omitempty" doc:"Per-attempt timeout, e.g. 10s (default 10s)"`
	// MaxRetries caps retries after the first attempt; default: the full
	// Standard Webhooks schedule (7 retries over about 27 hours).
	MaxRetries *int `json:"max_retries,omitempty" minimum:"0" maximum:"50"`
}

// EndpointPatch changes an endpoint; nil fields stay.
type EndpointPatch struct {
	URL         *string            `json:"url,omitempty"`
	Description *string            `json:"description,omitempty"`
	Events      []string           `json:"events,omitempty"`
	Headers     *map[string]string `json:"headers,omitempty"`
	Enabled     *bool              `json:"enabled,omitempty"`
	Timeout     *string            `json:"timeout,omitempty"`
	MaxRetries  *int               `json:"max_retries,omitempty" minimum:"0" maximum:"50"`
}

// Delivery is one event for one endpoint.
type Delivery struct {
	ID            string     `json:"id"`
	EventID       string     `json:"event_id" doc:"The webhook-id header: identical on every attempt"`
	EventType     string     `json:"event_type"`
	EndpointID    string     `json:"endpoint_id"`
	State         string     `json:"state" enum:"pending,delivered,failed"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastLatencyMS int64      `json:"last_latency_ms,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	History       []Attempt  `json:"history,omitempty"`
}

// Attempt is one HTTP attempt of a delivery.
type Attempt struct {
	Attempt   int       `json:"attempt"`
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	LatencyMS int64     `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	Response  string    `json:"response,omitempty" doc:"Start of the response body"`
}

// Delivery states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateFailed    = "failed"
)

// Errors the API maps to problems.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid webhook request")
	ErrConflict = errors.New("conflict")
)
