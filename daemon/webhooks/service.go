package webhooks

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/internal/netguard"
	"github.com/hypersdk/hypersdk/internal/safepath"
)

// DefaultSchedule is the retry schedule of the Standard Webhooks
// specification: after the first attempt, retries 5 seconds, 5 minutes,
// 30 minutes, 2, 5, 10 and 10 hours later (each with ±20% jitter).
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// DefaultTimeout bounds one delivery attempt.
const DefaultTimeout = 10 * time.Second

// maxResponseBytes caps what is read (and kept) of a receiver's answer.
const maxResponseBytes = 4 << 10

// Metrics receives delivery outcomes; daemon/metrics implements it.
type Metrics interface {
	WebhookDelivery(endpoint, outcome string, d time.Duration)
}

// Options configure a Service.
type Options struct {
	// NodeID names this daemon in delivery leases.
	NodeID string
	// AllowPrivateTargets lets endpoints reach loopback, link-local and
	// private addresses (webhook_delivery.allow_private_targets).
	AllowPrivateTargets bool
	// Resolver resolves endpoint host names (nil: the system's); the
	// guard checks the addresses it returns.
	Resolver *net.Resolver
	// Workers is how many deliveries run at once (default 4).
	Workers int
	// Schedule is the retry schedule (default DefaultSchedule); an
	// endpoint with max_retries N uses its first N entries, the last
	// repeated when N is longer.
	Schedule []time.Duration
	// PollInterval is how often idle workers look for due deliveries
	// (default 500ms; new events wake them at once).
	PollInterval time.Duration
	// ProgressInterval throttles job.progress events per job (default 30s).
	ProgressInterval time.Duration
	// Retention is how long finished deliveries and their events are kept
	// (default 30 days).
	Retention time.Duration
	// DataDir receives the generated secrets of configured endpoints.
	DataDir   string
	UserAgent string
	Logger    *slog.Logger
	Metrics   Metrics
	Now       func() time.Time
}

// Service owns endpoints, the event outbox and delivery.
type Service struct {
	db     *store.DB
	opts   Options
	log    *slog.Logger
	client *http.Client
	guard  netguard.Guard

	wakeCh chan struct{}
	stop   context.CancelFunc
	// configSecret marks configured endpoints whose secret the file sets.
	configSecret map[string]bool
	wg           sync.WaitGroup
}

// New creates the service; Start begins delivering.
func New(db *store.DB, opts Options) (*Service, error) {
	if opts.NodeID == "" {
		return nil, errors.New("webhooks: NodeID is required")
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if len(opts.Schedule) == 0 {
		opts.Schedule = DefaultSchedule
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 500 * time.Millisecond
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention <= 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "HyperSDK-Webhooks"
	}
	guard := netguard.Guard{AllowPrivate: opts.AllowPrivateTargets, Setting: AllowPrivateSetting}
	client, err := newHTTPClient(guard, opts.Resolver)
	if err != nil {
		return nil, err
	}
	return &Service{db: db, opts: opts, log: opts.Logger, client: client, guard: guard, wakeCh: make(chan struct{}, 1), configSecret: map[string]bool{}}, nil
}

// ProgressInterval is how often a running job may emit job.progress.
func (s *Service) ProgressInterval() time.Duration { return s.opts.ProgressInterval }

func (s *Service) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// payload is the body of every delivery.
type payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// Emit records an event inside the caller's transaction, with one delivery
// per enabled endpoint subscribed to its type. Nothing is sent unless tx
// commits. The event is stored even when no endpoint wants it: the outbox
// is also the event log that live subscribers read (daemon/events).
func (s *Service) Emit(ctx context.Context, tx *sql.Tx, eventType string, data any) error {
	ids, err := s.subscribers(ctx, tx, eventType)
	if err != nil {
		return err
	}
	_, err = s.insertEvent(ctx, tx, eventType, data, ids)
	return err
}

func (s *Service) subscribers(ctx context.Context, tx *sql.Tx, eventType string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT id, events FROM webhook_endpoints WHERE enabled = 1")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id, events string
		if err := rows.Scan(&id, &events); err != nil {
			return nil, err
		}
		var patterns []string
		if json.Unmarshal([]byte(events), &patterns) == nil && Matches(patterns, eventType) {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

// insertEvent stores an event and one delivery per endpoint, returning the
// deliveries' IDs in endpoint order.
func (s *Service) insertEvent(ctx context.Context, tx *sql.Tx, eventType string, data any, endpoints []string) ([]string, error) {
	now := s.opts.Now().UTC()
	body, err := json.Marshal(payload{Type: eventType, Timestamp: now, Data: data})
	if err != nil {
		return nil, fmt.Errorf("webhooks: encode %s: %w", eventType, err)
	}
	u, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	id := "msg_" + strings.ReplaceAll(u.String(), "-", "")
	us := store.Micros(now)
	if _, err := tx.ExecContext(ctx, "INSERT INTO webhook_events (id, type, payload, created_at) VALUES ($1, $2, $3, $4)", id, eventType, string(body), us); err != nil {
		return nil, err
	}
	deliveries := make([]string, 0, len(endpoints))
	for _, ep := range endpoints {
		did, _ := uuid.NewV7()
		deliveries = append(deliveries, did.String())
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, state, next_attempt_at, created_at, updated_at)
			VALUES ($1, $2, $3, 'pending', $4, $4, $4)`, did.String(), id, ep, us); err != nil {
			return nil, err
		}
	}
	if len(endpoints) > 0 {
		s.wake()
	}
	return deliveries, nil
}

// SyncConfig makes the endpoints of the configuration file's webhooks: list
// exist as given: created, updated, or (when removed from the file)
// deleted. An endpoint without a secret in the file gets one generated
// once, written to <data-dir>/webhook-<id>.secret (mode 0600).
func (s *Service) SyncConfig(ctx context.Context, hooks []config.Webhook) (created []string, err error) {
	keep := map[string]bool{}
	for i, h := range hooks {
		id := ConfigEndpointID(h.URL)
		if keep[id] {
			return nil, fmt.Errorf("webhooks[%d]: %s is listed twice", i, h.URL)
		}
		keep[id] = true
		s.configSecret[id] = h.Secret.IsSet()
		if _, err := checkURL(h.URL, s.guard); err != nil {
			return nil, configError(i, err)
		}
		headers := map[string]string{}
		for k, v := range h.Headers {
			headers[k] = v.Reveal()
		}
		if err := validHeaders(headers); err != nil {
			return nil, configError(i, err)
		}
		hb, _ := json.Marshal(headers)
		eb, _ := json.Marshal(h.Events)
		timeout := h.Timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		maxRetries := len(DefaultSchedule)
		if h.Retry != nil {
			maxRetries = *h.Retry
		}
		enabled := boolInt(h.IsEnabled())
		now := store.Micros(s.opts.Now())
		var existing string
		err := s.db.SQL.QueryRowContext(ctx, "SELECT secret FROM webhook_endpoints WHERE id = $1", id).Scan(&existing)
		if errors.Is(err, sql.ErrNoRows) {
			var inserted bool
			inserted, err = s.insertConfigEndpoint(ctx, i, h, id, string(eb), string(hb), enabled, timeout, maxRetries, now, &created)
			if err != nil {
				return nil, err
			}
			if inserted {
				continue
			}
			// Another node sharing the database inserted it first (nodes of
			// a cluster starting at one instant): update it as a restart
			// would.
			err = s.db.SQL.QueryRowContext(ctx, "SELECT secret FROM webhook_endpoints WHERE id = $1", id).Scan(&existing)
		}
		if err != nil {
			return nil, err
		}
		secret := existing
		if h.Secret.IsSet() {
			if err := ValidateSecret(h.Secret.Reveal()); err != nil {
				return nil, fmt.Errorf("webhooks[%d].secret: %w", i, err)
			}
			secret = h.Secret.Reveal()
		}
		_, err = s.db.SQL.ExecContext(ctx, `UPDATE webhook_endpoints SET url = $2, events = $3, headers = $4, secret = $5,
			enabled = $6, timeout_ms = $7, max_retries = $8, updated_at = $9 WHERE id = $1`,
			id, h.URL, string(eb), string(hb), secret, enabled, timeout.Milliseconds(), maxRetries, now)
		if err != nil {
			return nil, err
		}
	}
	configured, err := s.db.Strings(ctx, "SELECT id FROM webhook_endpoints WHERE source = 'config'")
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, id := range configured {
		if !keep[id] {
			stale = append(stale, id)
		}
	}
	for _, id := range stale {
		if _, err := s.db.SQL.ExecContext(ctx, "DELETE FROM webhook_endpoints WHERE id = $1", id); err != nil {
			return nil, err
		}
		s.log.Info("removed webhook endpoint no longer in the configuration", "endpoint", id)
	}
	return created, nil
}

// insertConfigEndpoint inserts configured endpoint id unless a row with
// that id exists, and reports whether it did. Nodes sharing one database
// may start at the same instant: ON CONFLICT DO NOTHING lets exactly one
// insert win where a check-then-insert would fail the others' start on
// the primary key. A generated secret's file is written inside the
// transaction, before the commit, and only by the winner: the file always
// holds the stored secret, and a failed write stores nothing.
func (s *Service) insertConfigEndpoint(ctx context.Context, i int, h config.Webhook, id, events, headers string, enabled int,
	timeout time.Duration, maxRetries int, now int64, created *[]string) (inserted bool, err error) {
	secret := h.Secret.Reveal()
	generated := secret == ""
	if generated {
		secret = NewSecret()
	} else if err := ValidateSecret(secret); err != nil {
		return false, fmt.Errorf("webhooks[%d].secret: %w", i, err)
	}
	tx, err := s.db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil || !inserted {
			_ = tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints
		(id, url, events, headers, secret, enabled, timeout_ms, max_retries, source, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'config', $9, $9)
		ON CONFLICT (id) DO NOTHING`,
		id, h.URL, events, headers, secret, enabled, timeout.Milliseconds(), maxRetries, now)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	inserted = true
	if generated {
		path := filepath.Join(s.opts.DataDir, "webhook-"+id+".secret")
		if err := writeSecretFile(path, secret); err != nil {
			return false, fmt.Errorf("webhooks[%d]: %w", i, err)
		}
		*created = append(*created, path)
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// configError names the configuration key of a request error in
// webhooks[i].
func configError(i int, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("webhooks[%d].%s: %w", i, fe.Field, fe.Err)
	}
	return fmt.Errorf("webhooks[%d]: %w", i, err)
}

// ConfigEndpointID is the stable ID of a configured endpoint.
func ConfigEndpointID(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "cfg_" + hex.EncodeToString(sum[:6])
}

func writeSecretFile(path, secret string) error {
	return safepath.WriteFile(filepath.Dir(path), filepath.Base(path), []byte(secret+"\n"), 0o600)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Create adds an endpoint from the API and returns it with its secret,
// which is shown this once.
func (s *Service) Create(ctx context.Context, spec apitypes.EndpointSpec) (*apitypes.Endpoint, string, error) {
	if _, err := checkURL(spec.URL, s.guard); err != nil {
		return nil, "", err
	}
	if err := validEvents(spec.Events); err != nil {
		return nil, "", err
	}
	if err := validHeaders(spec.Headers); err != nil {
		return nil, "", err
	}
	secret := spec.Secret
	if secret == "" {
		secret = NewSecret()
	} else if err := ValidateSecret(secret); err != nil {
		return nil, "", invalid("secret", err)
	}
	timeout, err := parseTimeout(spec.Timeout)
	if err != nil {
		return nil, "", err
	}
	maxRetries := len(DefaultSchedule)
	if spec.MaxRetries != nil {
		maxRetries = *spec.MaxRetries
	}
	u, _ := uuid.NewV7()
	id := "wh_" + strings.ReplaceAll(u.String(), "-", "")[:20]
	hb, _ := json.Marshal(orEmpty(spec.Headers))
	eb, _ := json.Marshal(spec.Events)
	now := store.Micros(s.opts.Now())
	if _, err := s.db.SQL.ExecContext(ctx, `INSERT INTO webhook_endpoints
		(id, url, description, events, headers, secret, enabled, timeout_ms, max_retries, source, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, 'api', $9, $9)`,
		id, spec.URL, spec.Description, string(eb), string(hb), secret, timeout.Milliseconds(), maxRetries, now); err != nil {
		return nil, "", err
	}
	ep, err := s.Get(ctx, id)
	return ep, secret, err
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func validEvents(events []string) error {
	if len(events) == 0 {
		return invalid("events", errors.New("list at least one event type (e.g. job.completed or job.*)"))
	}
	for _, e := range events {
		if !ValidPattern(e) {
			return invalid("events", fmt.Errorf("%q is not an event type or wildcard (known: %s, or group.* / *)", e, strings.Join(apitypes.EventTypes(), ", ")))
		}
	}
	return nil
}

// reservedHeaders are set by the sender and cannot be overridden.
var reservedHeaders = []string{"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host", "user-agent"}

func validHeaders(h map[string]string) error {
	for k, v := range h {
		if slices.Contains(reservedHeaders, strings.ToLower(k)) {
			return invalid("headers", fmt.Errorf("%s is set by the sender", k))
		}
		if err := netguard.CheckHeader(k, v); err != nil {
			return invalid("headers", err)
		}
	}
	return nil
}

func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 100*time.Millisecond || d > 5*time.Minute {
		return 0, invalid("timeout", fmt.Errorf("must be a duration between 100ms and 5m, got %q", s))
	}
	return d, nil
}

const endpointColumns = `e.id, e.url, e.description, e.events, e.headers, e.secret, e.previous_secret_until, e.enabled,
	e.disabled_reason, e.timeout_ms, e.max_retries, e.source, e.created_at, e.updated_at,
	(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending')`

func scanEndpoint(r interface{ Scan(...any) error }, now time.Time) (*apitypes.Endpoint, error) {
	var (
		ep                         apitypes.Endpoint
		events, headers, secret    string
		rotUntil                   sql.NullInt64
		enabled                    int
		timeoutMS, created, update int64
	)
	if err := r.Scan(&ep.ID, &ep.URL, &ep.Description, &events, &headers, &secret, &rotUntil, &enabled, &ep.DisabledReason,
		&timeoutMS, &ep.MaxRetries, &ep.Source, &created, &update, &ep.Pending); err != nil {
		return nil, err
	}
	_ = json.Unmarshal([]byte(events), &ep.Events)
	var hm map[string]string
	_ = json.Unmarshal([]byte(headers), &hm)
	for k := range hm {
		ep.HeaderNames = append(ep.HeaderNames, k)
	}
	sort.Strings(ep.HeaderNames)
	ep.SecretPrefix = secretPrefix(secret)
	if rotUntil.Valid && store.Time(rotUntil.Int64).After(now) {
		t := store.Time(rotUntil.Int64)
		ep.RotatingUntil = &t
	}
	ep.Enabled = enabled == 1
	ep.TimeoutSeconds = float64(timeoutMS) / 1000
	ep.CreatedAt, ep.UpdatedAt = store.Time(created), store.Time(update)
	return &ep, nil
}

// Get returns one endpoint.
func (s *Service) Get(ctx context.Context, id string) (*apitypes.Endpoint, error) {
	ep, err := scanEndpoint(s.db.SQL.QueryRowContext(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints e WHERE e.id = $1", id), s.opts.Now())
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: webhook endpoint %s", ErrNotFound, id)
	}
	return ep, err
}

// List returns every endpoint.
func (s *Service) List(ctx context.Context) ([]*apitypes.Endpoint, error) {
	rows, err := s.db.SQL.QueryContext(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints e ORDER BY e.created_at, e.id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*apitypes.Endpoint{}
	for rows.Next() {
		ep, err := scanEndpoint(rows, s.opts.Now())
		if err != nil {
			return nil, err
		}
		out = append(out, ep)
	}
	return out, rows.Err()
}

// Update changes an API-managed endpoint. Enabling it clears the reason it
// was disabled and lets its pending deliveries flow again. Endpoints from
// the configuration file are changed there (a restart applies the file).
func (s *Service) Update(ctx context.Context, id string, p apitypes.EndpointPatch) (*apitypes.Endpoint, error) {
	var source string
	if err := s.db.SQL.QueryRowContext(ctx, "SELECT source FROM webhook_endpoints WHERE id = $1", id).Scan(&source); errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: webhook endpoint %s", ErrNotFound, id)
	} else if err != nil {
		return nil, err
	}
	if source == "config" {
		return nil, fmt.Errorf("%w: endpoint %s is managed by the configuration file; change it there (enabled: false pauses it) and restart", ErrConflict, id)
	}
	var sets []string
	var args []any
	set := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)+1))
	}
	if p.URL != nil {
		if _, err := checkURL(*p.URL, s.guard); err != nil {
			return nil, err
		}
		set("url", *p.URL)
	}
	if p.Description != nil {
		set("description", *p.Description)
	}
	if p.Events != nil {
		if err := validEvents(p.Events); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(p.Events)
		set("events", string(b))
	}
	if p.Headers != nil {
		if err := validHeaders(*p.Headers); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(orEmpty(*p.Headers))
		set("headers", string(b))
	}
	if p.Timeout != nil {
		t, err := parseTimeout(*p.Timeout)
		if err != nil {
			return nil, err
		}
		set("timeout_ms", t.Milliseconds())
	}
	if p.MaxRetries != nil {
		set("max_retries", *p.MaxRetries)
	}
	if p.Enabled != nil {
		set("enabled", boolInt(*p.Enabled))
		reason := ""
		if !*p.Enabled {
			reason = "disabled by an operator"
		}
		set("disabled_reason", reason)
	}
	set("updated_at", store.Micros(s.opts.Now()))
	q := "UPDATE webhook_endpoints SET " + strings.Join(sets, ", ") + " WHERE id = $1"
	if _, err := s.db.SQL.ExecContext(ctx, q, append([]any{id}, args...)...); err != nil {
		return nil, err
	}
	if p.Enabled != nil && *p.Enabled {
		s.wake()
	}
	return s.Get(ctx, id)
}

// Delete removes an API-managed endpoint and its deliveries.
func (s *Service) Delete(ctx context.Context, id string) error {
	ep, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if ep.Source == "config" {
		return fmt.Errorf("%w: endpoint %s is managed by the configuration file; remove it there", ErrConflict, id)
	}
	_, err = s.db.SQL.ExecContext(ctx, "DELETE FROM webhook_endpoints WHERE id = $1", id)
	return err
}

// RotateSecret replaces the signing secret; for grace the old one keeps
// signing too (both signatures are sent), so receivers can switch over.
// The new secret is returned this once.
func (s *Service) RotateSecret(ctx context.Context, id string, grace time.Duration) (*apitypes.Endpoint, string, error) {
	if grace < 0 || grace > 30*24*time.Hour {
		return nil, "", fmt.Errorf("%w: grace must be between 0 and 720h", ErrInvalid)
	}
	secret := NewSecret()
	now := s.opts.Now()
	var source string
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, "SELECT secret, source FROM webhook_endpoints WHERE id = $1", id).Scan(&old, &source)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: webhook endpoint %s", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if source == "config" && s.configSecret[id] {
			return fmt.Errorf("%w: the secret of endpoint %s is set in the configuration file; change it there", ErrConflict, id)
		}
		var prev, until any
		if grace > 0 {
			prev, until = old, store.Micros(now.Add(grace))
		}
		_, err = tx.ExecContext(ctx, `UPDATE webhook_endpoints SET secret = $2, previous_secret = $3, previous_secret_until = $4, updated_at = $5
			WHERE id = $1`, id, secret, prev, until, store.Micros(now))
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if source == "config" {
		// Keep the generated secret's file in step with the store.
		if err := writeSecretFile(filepath.Join(s.opts.DataDir, "webhook-"+id+".secret"), secret); err != nil {
			s.log.Warn("could not update the endpoint's secret file", "endpoint", id, "err", err)
		}
	}
	ep, err := s.Get(ctx, id)
	return ep, secret, err
}

// Test sends a webhook.test event to one endpoint, even a disabled one
// (to check it before enabling it), and returns the delivery.
func (s *Service) Test(ctx context.Context, id string) (*apitypes.Delivery, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	var deliveries []string
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		deliveries, err = s.insertEvent(ctx, tx, apitypes.EventWebhookTest, map[string]any{"endpoint_id": id, "message": "Test delivery from HyperSDK"}, []string{id})
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.Delivery(ctx, deliveries[0])
}

// DeliveryFilter narrows Deliveries.
type DeliveryFilter struct {
	EndpointID string
	EventID    string
	State      string
	Cursor     string
	Limit      int
}

const deliveryColumns = `d.id, d.event_id, ev.type, d.endpoint_id, d.state, d.attempts, d.next_attempt_at, d.last_status,
	d.last_error, d.last_latency_ms, d.created_at, d.delivered_at`

func scanDelivery(r interface{ Scan(...any) error }) (*apitypes.Delivery, error) {
	var (
		d               apitypes.Delivery
		next, delivered sql.NullInt64
		status, latency sql.NullInt64
		created         int64
	)
	if err := r.Scan(&d.ID, &d.EventID, &d.EventType, &d.EndpointID, &d.State, &d.Attempts, &next, &status, &d.LastError,
		&latency, &created, &delivered); err != nil {
		return nil, err
	}
	if d.State == apitypes.DeliveryPending {
		d.NextAttemptAt = store.NullTime(next)
	}
	d.LastStatus, d.LastLatencyMS = int(status.Int64), latency.Int64
	d.CreatedAt, d.DeliveredAt = store.Time(created), store.NullTime(delivered)
	return &d, nil
}

// Deliveries lists deliveries newest first, with the next page's cursor.
func (s *Service) Deliveries(ctx context.Context, f DeliveryFilter) ([]*apitypes.Delivery, string, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.EndpointID != "" {
		where = append(where, "d.endpoint_id = "+arg(f.EndpointID))
	}
	if f.EventID != "" {
		where = append(where, "d.event_id = "+arg(f.EventID))
	}
	if f.State != "" {
		where = append(where, "d.state = "+arg(f.State))
	}
	if f.Cursor != "" {
		where = append(where, "d.id < "+arg(f.Cursor))
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := "SELECT " + deliveryColumns + " FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY d.id DESC LIMIT " + arg(limit+1)
	rows, err := s.db.SQL.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out := []*apitypes.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, d)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, rows.Err()
}

// EventDeliveries lists the deliveries of one event (by its webhook-id) to
// every endpoint.
func (s *Service) EventDeliveries(ctx context.Context, eventID, cursor string, limit int) ([]*apitypes.Delivery, string, error) {
	var n int
	if err := s.db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_events WHERE id = $1", eventID).Scan(&n); err != nil {
		return nil, "", err
	}
	if n == 0 {
		return nil, "", fmt.Errorf("%w: event %s", ErrNotFound, eventID)
	}
	return s.Deliveries(ctx, DeliveryFilter{EventID: eventID, Cursor: cursor, Limit: limit})
}

// Delivery returns one delivery with every attempt.
func (s *Service) Delivery(ctx context.Context, id string) (*apitypes.Delivery, error) {
	d, err := scanDelivery(s.db.SQL.QueryRowContext(ctx, "SELECT "+deliveryColumns+
		" FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id WHERE d.id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: delivery %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	rows, err := s.db.SQL.QueryContext(ctx, "SELECT attempt, at, status, latency_ms, error, response FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var a apitypes.DeliveryAttempt
		var at int64
		var status sql.NullInt64
		if err := rows.Scan(&a.Attempt, &at, &status, &a.LatencyMS, &a.Error, &a.Response); err != nil {
			return nil, err
		}
		a.At, a.Status = store.Time(at), int(status.Int64)
		d.History = append(d.History, a)
	}
	return d, rows.Err()
}

// Redeliver sends a delivery again now, with a fresh retry budget (its
// webhook-id stays the same, so receivers can deduplicate).
func (s *Service) Redeliver(ctx context.Context, id string) (*apitypes.Delivery, error) {
	now := store.Micros(s.opts.Now())
	res, err := s.db.SQL.ExecContext(ctx, `UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $2,
		updated_at = $2 WHERE id = $1 AND (lease_until IS NULL OR lease_until < $2)`, id, now)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Delivery(ctx, id); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: delivery %s is being sent right now; try again when this attempt has finished", ErrConflict, id)
	}
	s.wake()
	return s.Delivery(ctx, id)
}

// progressRetention bounds how long job.progress events are kept: they are
// a live signal, frequent, and superseded by the job's final event.
const progressRetention = time.Hour

// Prune deletes events older than the retention (job.progress events older
// than an hour) whose deliveries have all ended (their deliveries and
// attempts go with them); it returns how many.
func (s *Service) Prune(ctx context.Context) (int64, error) {
	now := s.opts.Now()
	cutoff := store.Micros(now.Add(-s.opts.Retention))
	progressCutoff := store.Micros(now.Add(-min(s.opts.Retention, progressRetention)))
	res, err := s.db.SQL.ExecContext(ctx, `DELETE FROM webhook_events
		WHERE (created_at < $1 OR (type = $2 AND created_at < $3)) AND NOT EXISTS
		(SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id AND d.state = 'pending')`,
		cutoff, apitypes.EventJobProgress, progressCutoff)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Pending counts deliveries waiting to be sent (all daemons).
func (s *Service) Pending(ctx context.Context) (int, error) {
	var n int
	err := s.db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'").Scan(&n)
	return n, err
}

// delay is the wait before retry number retry (1-based) of an endpoint
// allowed maxRetries, with ±20% jitter.
func (s *Service) delay(retry int) time.Duration {
	sched := s.opts.Schedule
	d := sched[min(retry, len(sched))-1]
	j := float64(d) * 0.2
	return time.Duration(float64(d) - j + rand.Float64()*2*j)
}

// OldestPending returns when the oldest delivery still waiting to be sent
// was created (all daemons); ok is false when none waits.
func (s *Service) OldestPending(ctx context.Context) (at time.Time, ok bool, err error) {
	var us sql.NullInt64
	if err := s.db.SQL.QueryRowContext(ctx, "SELECT MIN(created_at) FROM webhook_deliveries WHERE state = 'pending'").Scan(&us); err != nil {
		return time.Time{}, false, err
	}
	if !us.Valid {
		return time.Time{}, false, nil
	}
	return store.Time(us.Int64), true, nil
}
