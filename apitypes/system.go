package apitypes

import (
	"time"

	"github.com/hypersdk/hypersdk/providers"
)

// APIPrefix is where the REST API lives.
const APIPrefix = "/api/v1"

// Files in the daemon's data directory that tell hyperctl on the same host
// where the API is and, when no tokens are configured, how to authenticate.
const (
	// AdminTokenFile holds the generated admin token (mode 0600).
	AdminTokenFile = "admin.token"
	// EndpointFile holds the API's base URL, written at every start.
	EndpointFile = "endpoint"
)

// ProviderInfo describes a configured provider instance.
type ProviderInfo struct {
	Name          string                       `json:"name"`
	Type          string                       `json:"type"`
	MaxConcurrent int                          `json:"max_concurrent,omitempty"`
	Health        providers.Health             `json:"health"`
	Capabilities  providers.ExportCapabilities `json:"capabilities"`
	// Methods are the export methods the provider offers, its default
	// first; absent for a provider with a single method.
	Methods []string `json:"methods,omitempty" doc:"Export methods (a job's method), the default first; absent when the provider has one"`
}

// ProviderStatus is a provider's health as /status shows it.
type ProviderStatus struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Healthy   bool      `json:"healthy"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
}

// Status is the daemon's overall state.
type Status struct {
	Version       string           `json:"version"`
	Node          string           `json:"node"`
	Database      string           `json:"database"`
	StartedAt     time.Time        `json:"started_at"`
	UptimeSeconds float64          `json:"uptime_seconds"`
	Jobs          map[JobState]int `json:"jobs"`
	Providers     []ProviderStatus `json:"providers"`
}

// WhoAmI is the caller as the daemon knows it: its token's name and role,
// so a client can offer only what the role allows (the API enforces it
// regardless).
type WhoAmI struct {
	Name string `json:"name" doc:"The token's configured name"`
	Role string `json:"role" enum:"viewer,operator,admin" doc:"viewer reads; operator also submits, cancels and retries jobs; admin may do everything"`
}
