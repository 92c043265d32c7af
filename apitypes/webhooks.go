package apitypes

import "time"

// Event types, as webhook receivers and endpoint subscriptions name them.
const (
	EventJobCreated        = "job.created"
	EventJobStarted        = "job.started"
	EventJobProgress       = "job.progress"
	EventJobCompleted      = "job.completed"
	EventJobFailed         = "job.failed"
	EventJobCancelled      = "job.cancelled"
	EventScheduleTriggered = "schedule.triggered"
	EventScheduleFailed    = "schedule.failed"
	EventWebhookTest       = "webhook.test"
)

// EventTypes lists every event type.
func EventTypes() []string {
	return []string{EventJobCreated, EventJobStarted, EventJobProgress, EventJobCompleted, EventJobFailed,
		EventJobCancelled, EventScheduleTriggered, EventScheduleFailed, EventWebhookTest}
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

// CreatedEndpoint is an endpoint with its signing secret, returned only
// when the secret is created or rotated.
type CreatedEndpoint struct {
	Endpoint *Endpoint `json:"endpoint"`
	Secret   string    `json:"secret" doc:"whsec_… signing secret: shown this once, store it now"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one event for one endpoint.
type Delivery struct {
	ID            string            `json:"id"`
	EventID       string            `json:"event_id" doc:"The webhook-id header: identical on every attempt"`
	EventType     string            `json:"event_type"`
	EndpointID    string            `json:"endpoint_id"`
	State         string            `json:"state" enum:"pending,delivered,failed"`
	Attempts      int               `json:"attempts"`
	NextAttemptAt *time.Time        `json:"next_attempt_at,omitempty"`
	LastStatus    int               `json:"last_status,omitempty"`
	LastError     string            `json:"last_error,omitempty"`
	LastLatencyMS int64             `json:"last_latency_ms,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	DeliveredAt   *time.Time        `json:"delivered_at,omitempty"`
	History       []DeliveryAttempt `json:"history,omitempty"`
}

// DeliveryAttempt is one HTTP attempt of a delivery.
type DeliveryAttempt struct {
	Attempt   int       `json:"attempt"`
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	LatencyMS int64     `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	Response  string    `json:"response,omitempty" doc:"Start of the response body"`
}

// DeliveryList is a page of deliveries, newest first.
type DeliveryList struct {
	Items      []*Delivery `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty"`
}
