package webhooks

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/internal/netguard"
)

// A delivery is this daemon's while it holds the delivery's lease. The
// lease taken when the delivery is claimed (claimLease) only covers the
// wait for an idle worker; the attempt renews it, while it is still ours
// and not lapsed, for the endpoint's timeout plus attemptMargin (load).
// Another daemon takes over a lapsed lease; a restarted daemon releases
// its own at once. Short leases matter when a daemon dies: what it had
// claimed is delivered by the others within a minute or so, not after
// the longest timeout an endpoint may have.
//
// What holds across daemons: one attempt of a delivery is in flight at a
// time, because an attempt starts only under a live lease that outlasts
// it, and its outcome is recorded only while the lease is still its own.
// A delivery is sent again, with the same webhook-id, only after a crash
// window: a daemon killed (or stopped, or cut off from the database)
// between the receiver's answer and recording it; the lease then lapses
// and another daemon repeats the attempt. Receivers dedupe on webhook-id.
const (
	claimLease    = 30 * time.Second
	attemptMargin = 30 * time.Second
)

// maxRetryAfter caps how long a receiver's Retry-After may postpone a
// delivery.
const maxRetryAfter = 24 * time.Hour

// Start releases the leases this daemon held when it last stopped and
// starts the delivery workers.
func (s *Service) Start(ctx context.Context) error {
	res, err := s.db.SQL.ExecContext(ctx, "UPDATE webhook_deliveries SET lease_node = NULL, lease_until = NULL WHERE lease_node = $1 AND state = 'pending'", s.opts.NodeID)
	if err != nil {
		return fmt.Errorf("webhooks: release leases: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		s.log.Info("resuming webhook deliveries interrupted by the last stop", "count", n)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	work := make(chan string)
	for range s.opts.Workers {
		s.wg.Go(func() {
			for id := range work {
				s.attempt(bg, id)
			}
		})
	}
	s.wg.Go(func() {
		defer close(work)
		s.dispatch(bg, work)
	})
	s.wg.Go(func() { s.pruneLoop(bg) })
	return nil
}

// pruneLoop applies the retention every hour.
func (s *Service) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("pruning old webhook deliveries failed", "err", err)
		} else if n > 0 {
			s.log.Info("pruned webhook events past retention", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop stops claiming deliveries and waits for attempts in flight (each is
// bounded by its endpoint's timeout) or ctx.
func (s *Service) Stop(ctx context.Context) error {
	if s.stop == nil {
		return nil
	}
	s.stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wakeRetries are the pauses before looking again for an event that woke
// the dispatcher before its transaction committed.
var wakeRetries = []time.Duration{2 * time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond}

// dispatch claims due deliveries and hands them to idle workers.
func (s *Service) dispatch(ctx context.Context, work chan<- string) {
	retry, woken := 0, false
	for ctx.Err() == nil {
		ids, err := s.claim(ctx, s.opts.Workers)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("claiming webhook deliveries failed", "err", err)
		}
		for i, id := range ids {
			select {
			case work <- id:
			case <-ctx.Done():
				s.release(ids[i:])
				return
			}
		}
		if len(ids) == s.opts.Workers {
			continue // likely more due
		}
		if len(ids) == 0 && retry < len(wakeRetries) && woken {
			// Woken by an event whose transaction had not committed yet
			// when we looked: look again shortly.
			if backoff.Wait(ctx, wakeRetries[retry]) != nil {
				return
			}
			retry++
			continue
		}
		retry, woken = 0, false
		t := time.NewTimer(s.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wakeCh:
			t.Stop()
			woken = true
			// Emit wakes us inside its transaction: give it time to commit.
			if backoff.Wait(ctx, wakeRetries[0]) != nil {
				return
			}
		case <-t.C:
		}
	}
}

// claim leases up to n due deliveries of enabled endpoints.
func (s *Service) claim(ctx context.Context, n int) ([]string, error) {
	now := s.opts.Now()
	lock := ""
	if s.db.Dialect == store.Postgres {
		lock = " FOR UPDATE OF d SKIP LOCKED" // daemons claim disjoint rows
	}
	return store.ScanStrings(s.db.SQL.QueryContext(ctx, `UPDATE webhook_deliveries SET lease_node = $1, lease_until = $2 WHERE id IN (
			SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN webhook_events ev ON ev.id = d.event_id
			WHERE d.state = 'pending' AND d.next_attempt_at <= $3 AND (d.lease_until IS NULL OR d.lease_until < $3)
				AND (e.enabled = 1 OR ev.type = 'webhook.test')
			ORDER BY d.next_attempt_at LIMIT $4`+lock+`)
		RETURNING id`, s.opts.NodeID, store.Micros(now.Add(claimLease)), store.Micros(now), n))
}

func (s *Service) release(ids []string) {
	for _, id := range ids {
		_, _ = s.db.SQL.ExecContext(context.Background(), "UPDATE webhook_deliveries SET lease_node = NULL, lease_until = NULL WHERE id = $1 AND lease_node = $2", id, s.opts.NodeID)
	}
}

// target is what one attempt needs.
type target struct {
	eventID, eventType, body string
	endpointID, url          string
	headers                  map[string]string
	secrets                  []string
	timeout                  time.Duration
	maxRetries, attempts     int
	attemptNo                int
}

func (s *Service) load(ctx context.Context, id string) (*target, error) {
	var (
		t         target
		headers   string
		secret    string
		prev      sql.NullString
		prevUntil sql.NullInt64
		timeoutMS int64
	)
	// Renew the lease for this attempt, only while it is still ours. A
	// claimed delivery can wait for an idle worker as long as the attempts
	// ahead of it take, so the claim's lease may have lapsed, and another
	// daemon may claim it any moment: sending it then would deliver it
	// twice with no crash involved. Renewed here, the lease outlasts the
	// attempt (the endpoint's timeout plus a margin), and a lapsed one is
	// left to whoever claims it next.
	now := s.opts.Now()
	res, err := s.db.SQL.ExecContext(ctx, `UPDATE webhook_deliveries
		SET lease_until = $3 + 1000 * (SELECT e.timeout_ms FROM webhook_endpoints e WHERE e.id = webhook_deliveries.endpoint_id)
		WHERE id = $1 AND lease_node = $2 AND state = 'pending' AND lease_until > $4`,
		id, s.opts.NodeID, store.Micros(now.Add(attemptMargin)), store.Micros(now))
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = sql.ErrNoRows
		}
		return nil, err
	}
	err = s.db.SQL.QueryRowContext(ctx, `SELECT d.event_id, ev.type, ev.payload, e.id, e.url, e.headers, e.secret, e.previous_secret,
			e.previous_secret_until, e.timeout_ms, e.max_retries, d.attempts,
			(SELECT COUNT(*) FROM webhook_attempts a WHERE a.delivery_id = d.id)
		FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id JOIN webhook_endpoints e ON e.id = d.endpoint_id
		WHERE d.id = $1 AND d.lease_node = $2 AND d.state = 'pending'`, id, s.opts.NodeID).
		Scan(&t.eventID, &t.eventType, &t.body, &t.endpointID, &t.url, &headers, &secret, &prev, &prevUntil, &timeoutMS,
			&t.maxRetries, &t.attempts, &t.attemptNo)
	if err != nil {
		return nil, err
	}
	t.attemptNo++
	_ = json.Unmarshal([]byte(headers), &t.headers)
	t.secrets = []string{secret}
	if prev.Valid && prev.String != "" && prevUntil.Valid && store.Time(prevUntil.Int64).After(s.opts.Now()) {
		t.secrets = append(t.secrets, prev.String)
	}
	t.timeout = time.Duration(timeoutMS) * time.Millisecond
	return &t, nil
}

// outcome of one attempt.
type outcome struct {
	status  int
	latency time.Duration
	err     string
	body    string
	retryIn time.Duration // from Retry-After, 0 if none
}

func (s *Service) attempt(ctx context.Context, id string) {
	t, err := s.load(ctx, id)
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) && ctx.Err() == nil {
			s.log.Warn("loading webhook delivery failed", "delivery", id, "err", err)
		}
		return
	}
	o := s.send(ctx, t)
	if ctx.Err() != nil && o.status == 0 {
		// Shutting down mid-attempt: give the delivery back untouched.
		s.release([]string{id})
		return
	}
	s.record(id, t, o)
}

// send performs one HTTP attempt.
func (s *Service) send(ctx context.Context, t *target) outcome {
	ts := s.opts.Now().Unix()
	sig, err := Sign(t.eventID, ts, []byte(t.body), t.secrets...)
	if err != nil {
		return outcome{err: "signing: " + err.Error()}
	}
	actx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, t.url, strings.NewReader(t.body))
	if err != nil {
		return outcome{err: err.Error()}
	}
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.opts.UserAgent)
	req.Header.Set("webhook-id", t.eventID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	start := time.Now()
	resp, err := s.client.Do(req)
	o := outcome{latency: time.Since(start)}
	if err != nil {
		o.err = describeError(err, t.timeout)
		return o
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	o.latency = time.Since(start)
	o.status, o.body = resp.StatusCode, string(bytes.ToValidUTF8(b, []byte("?")))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		o.retryIn = parseRetryAfter(resp.Header.Get("Retry-After"), s.opts.Now())
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		o.err = "redirect to " + resp.Header.Get("Location") + " not followed"
	}
	return o
}

func describeError(err error, timeout time.Duration) string {
	var blocked *netguard.Error
	var dial *net.OpError
	switch {
	case errors.As(err, &blocked) && errors.As(err, &dial):
		return dial.Error() // "dial tcp <address>: refusing …"
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no response within %s", timeout)
	}
	return err.Error()
}

// parseRetryAfter reads seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// record stores the attempt and the delivery's new state, conditional on
// still holding the lease.
func (s *Service) record(id string, t *target, o outcome) {
	ctx := context.Background()
	now := s.opts.Now()
	ok := o.status >= 200 && o.status < 300
	gone := o.status == http.StatusGone
	state, result := apitypes.DeliveryPending, "retry"
	var next time.Time
	switch {
	case ok:
		state, result = apitypes.DeliveryDelivered, "delivered"
	case gone:
		state, result = apitypes.DeliveryFailed, "gone"
	case t.attempts+1 > t.maxRetries:
		state, result = apitypes.DeliveryFailed, "failed"
	default:
		wait := s.delay(t.attempts + 1)
		if o.retryIn > 0 {
			wait = o.retryIn
		}
		next = now.Add(wait)
	}
	errText := o.err
	if errText == "" && !ok {
		errText = fmt.Sprintf("HTTP %d", o.status)
	}
	var status any
	if o.status != 0 {
		status = o.status
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var nextArg, deliveredArg any
		if state == apitypes.DeliveryPending {
			nextArg = store.Micros(next)
		} else {
			nextArg = store.Micros(now)
		}
		if ok {
			deliveredArg = store.Micros(now)
		}
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = $3, attempts = attempts + 1, next_attempt_at = $4,
				lease_node = NULL, lease_until = NULL, last_status = $5, last_error = $6, last_latency_ms = $7, updated_at = $8,
				delivered_at = $9
			WHERE id = $1 AND lease_node = $2 AND state = 'pending'`,
			id, s.opts.NodeID, state, nextArg, status, truncate(errText, 500), o.latency.Milliseconds(), store.Micros(now), deliveredArg)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errLeaseLost
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, at, status, latency_ms, error, response)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, t.attemptNo, store.Micros(now), status, o.latency.Milliseconds(),
			truncate(o.err, 500), truncate(o.body, 1024)); err != nil {
			return err
		}
		if gone {
			_, err = tx.ExecContext(ctx, "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2, updated_at = $3 WHERE id = $1",
				t.endpointID, "receiver answered 410 Gone at "+now.UTC().Format(time.RFC3339), store.Micros(now))
		}
		return err
	})
	switch {
	case errors.Is(err, errLeaseLost):
		s.log.Warn("webhook delivery outcome not recorded: lease lost", "delivery", id)
		return
	case err != nil:
		s.log.Error("recording webhook delivery failed", "delivery", id, "err", err)
		return
	}
	if s.opts.Metrics != nil {
		s.opts.Metrics.WebhookDelivery(t.endpointID, result, o.latency)
	}
	level := s.log.Debug
	if !ok {
		level = s.log.Warn
	}
	level("webhook delivery attempt", "delivery", id, "endpoint", t.endpointID, "event", t.eventType, "webhook_id", t.eventID,
		"attempt", t.attemptNo, "status", o.status, "outcome", result, "latency_ms", o.latency.Milliseconds(), "err", o.err)
	if gone {
		s.log.Warn("webhook endpoint disabled: the receiver answered 410 Gone", "endpoint", t.endpointID)
	}
}

var errLeaseLost = errors.New("lease lost")

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
