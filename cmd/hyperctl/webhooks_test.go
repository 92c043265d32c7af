package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client/clienttest"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
)

// hook is one request a receiver got.
type hook struct {
	id, timestamp, signature string
	header                   http.Header
	body                     []byte
	event                    struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
}

// receiver is a webhook receiver answering with a status that the test
// can change.
type receiver struct {
	*httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	hooks  []hook
}

func newReceiver(t *testing.T, status int) *receiver {
	t.Helper()
	r := &receiver{}
	r.status.Store(int32(status))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := hook{id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp"),
			signature: req.Header.Get("webhook-signature"), header: req.Header.Clone(), body: body}
		_ = json.Unmarshal(body, &h.event)
		r.mu.Lock()
		r.hooks = append(r.hooks, h)
		r.mu.Unlock()
		code := int(r.status.Load())
		w.WriteHeader(code)
		io.WriteString(w, http.StatusText(code))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hook(nil), r.hooks...)
}

// waitFor waits until the receiver got an event of type typ.
func (r *receiver) waitFor(t *testing.T, typ string) hook {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, h := range r.got() {
			if h.event.Type == typ {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver never got %s; it got %d request(s)", typ, len(r.got()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// signedBy reports whether a request carries a valid signature made with
// secret (Standard Webhooks: v1,base64(HMAC-SHA256(id.timestamp.body))).
func (h hook) signedBy(t *testing.T, secret string) bool {
	t.Helper()
	ts, err := strconv.ParseInt(h.timestamp, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", h.timestamp, err)
	}
	want, err := webhooks.Sign(h.id, ts, h.body, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range strings.Fields(h.signature) {
		if sig == want {
			return true
		}
	}
	return false
}

// as runs hyperctl with another token.
func (h *harness) as(token string, args ...string) result {
	h.t.Helper()
	old := h.vars["HYPERSDK_TOKEN"]
	h.vars["HYPERSDK_TOKEN"] = token
	defer func() { h.vars["HYPERSDK_TOKEN"] = old }()
	return h.run(args...)
}

// endpoint fetches an endpoint as JSON through the CLI.
func (h *harness) endpoint(id string) *apitypes.Endpoint {
	h.t.Helper()
	r := h.run("webhooks", "get", id, "-o", "json").expect(h.t, 0)
	var ep apitypes.Endpoint
	if err := json.Unmarshal([]byte(r.stdout), &ep); err != nil {
		h.t.Fatalf("get -o json: %v\n%s", err, r.stdout)
	}
	return &ep
}

func (h *harness) delivery(id string) *apitypes.Delivery {
	h.t.Helper()
	r := h.run("webhooks", "delivery", id, "-o", "json").expect(h.t, 0)
	var d apitypes.Delivery
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		h.t.Fatalf("delivery -o json: %v\n%s", err, r.stdout)
	}
	return &d
}

func (h *harness) deliveries(args ...string) *apitypes.DeliveryList {
	h.t.Helper()
	r := h.run(append(append([]string{"webhooks", "deliveries"}, args...), "-o", "json")...).expect(h.t, 0)
	var l apitypes.DeliveryList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		h.t.Fatalf("deliveries -o json: %v\n%s", err, r.stdout)
	}
	return &l
}

// waitIdle waits until an endpoint has no pending deliveries.
func (h *harness) waitIdle(id string) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h.endpoint(id).Pending != 0 {
		if time.Now().After(deadline) {
			h.t.Fatalf("endpoint %s still has pending deliveries", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noSecret fails when out holds the secret.
func noSecret(t *testing.T, what, out, secret string) {
	t.Helper()
	if strings.Contains(out, secret) || strings.Contains(out, strings.TrimPrefix(secret, webhooks.SecretPrefix)) {
		t.Fatalf("%s shows the signing secret:\n%s", what, out)
	}
}

func TestWebhooksLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	rcv := newReceiver(t, http.StatusOK)
	headerFile := filepath.Join(t.TempDir(), "headers")
	if err := os.WriteFile(headerFile, []byte("# credentials for the receiver\nAuthorization: Bearer rcv-token-123\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Adding needs admin.
	h.run("webhooks", "add", rcv.URL, "--events", "job.*").
		expect(t, 1, "HTTP 403 forbidden", `token "ci-operator" has role operator; this operation needs admin`)

	h.vars["HYPERSDK_TOKEN"] = clienttest.AdminToken
	r := h.run("webhooks", "add", rcv.URL, "--events", "job.*", "--events", "schedule.failed", "--header", "X-Team=infra",
		"--header-file", headerFile, "--description", "CI pipeline", "--timeout", "5s", "--max-retries", "2").
		expect(t, 0, "Added webhook endpoint wh_", "store it now, it will not be shown again")
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, webhooks.SecretPrefix) || strings.ContainsAny(secret, " \n") || webhooks.ValidateSecret(secret) != nil {
		t.Fatalf("stdout is not the secret alone: %q", r.stdout)
	}
	if strings.Count(r.stdout+r.stderr, secret) != 1 {
		t.Fatalf("the secret is printed more than once:\n%s%s", r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "warning") {
		t.Fatalf("warned about a non-sensitive --header:\n%s", r.stderr)
	}

	// list and get show only the prefix, never the secret or header values.
	r = h.run("webhooks", "list").expect(t, 0, "ID", "SECRET PREFIX", rcv.URL, "job.*,schedule.failed", "yes", "api", secret[:10]+"…")
	noSecret(t, "list", r.stdout, secret)
	id := strings.Fields(strings.Split(r.stdout, "\n")[1])[0]
	if !strings.HasPrefix(id, "wh_") {
		t.Fatalf("list rows:\n%s", r.stdout)
	}
	for _, args := range [][]string{{"list", "-o", "json"}, {"list", "-o", "yaml"}, {"get", id}, {"get", id, "-o", "json"}, {"get", id, "-o", "yaml"}} {
		r = h.run(append([]string{"webhooks"}, args...)...).expect(t, 0, secret[:10])
		noSecret(t, strings.Join(args, " "), r.stdout, secret)
		if strings.Contains(r.stdout, "rcv-token-123") || strings.Contains(r.stdout, "infra") {
			t.Fatalf("%v shows a header value:\n%s", args, r.stdout)
		}
	}
	h.run("webhooks", "get", id).expect(t, 0, "URL:", rcv.URL, "Description:", "CI pipeline", "Events:", "job.*, schedule.failed",
		"Headers:", "Authorization, X-Team (values not shown)", "Timeout:", "5s", "Max retries:", "2", "Source:", "api")
	var ylist struct {
		Items []map[string]any `yaml:"items"`
	}
	r = h.run("webhooks", "list", "-o", "yaml").expect(t, 0)
	if err := yaml.Unmarshal([]byte(r.stdout), &ylist); err != nil || len(ylist.Items) != 1 || ylist.Items[0]["id"] != id {
		t.Fatalf("list -o yaml: %v\n%s", err, r.stdout)
	}

	// A test delivery, signed with the printed secret, with the headers.
	h.vars["HYPERSDK_TOKEN"] = clienttest.OperatorToken
	r = h.run("webhooks", "test", id, "--wait").expect(t, 0, "test delivery ", "queued to "+rcv.URL, "attempt 1: HTTP 200 (", "delivered: HTTP 200 in ")
	got := rcv.waitFor(t, apitypes.EventWebhookTest)
	if !got.signedBy(t, secret) || !strings.HasPrefix(got.id, "msg_") || !strings.Contains(r.stderr, "webhook-id "+got.id) {
		t.Fatalf("test request id %q signature %q\n%s", got.id, got.signature, r.stderr)
	}
	if got.header.Get("Authorization") != "Bearer rcv-token-123" || got.header.Get("X-Team") != "infra" {
		t.Fatalf("headers sent: %v", got.header)
	}

	// A job's lifecycle reaches the endpoint (job.*).
	j := h.submit("vm-001")
	h.waitState(j.ID, "succeeded")
	completed := rcv.waitFor(t, "job.completed")
	if completed.event.Data["job_id"] != j.ID || !completed.signedBy(t, secret) {
		t.Fatalf("job.completed: %s", completed.body)
	}
	rcv.waitFor(t, "job.created")
	h.waitIdle(id)
	r = h.run("webhooks", "deliveries", id).expect(t, 0, "WEBHOOK ID", "job.completed", "job.created", "webhook.test", "delivered", completed.id)
	r = h.run("webhooks", "deliveries", "--event", completed.id).expect(t, 0, "ENDPOINT", id, "job.completed", "delivered")
	if n := strings.Count(strings.TrimSpace(r.stdout), "\n"); n != 1 {
		t.Fatalf("deliveries of one event to one endpoint: %d rows\n%s", n, r.stdout)
	}
	if l := h.deliveries(id, "--state", "delivered", "--all", "--limit", "1"); len(l.Items) < 4 {
		t.Fatalf("--all with pages of 1: %d deliveries", len(l.Items))
	}
	h.run("webhooks", "deliveries", id, "--limit", "1").expect(t, 0, "More deliveries match")
	if l := h.deliveries(id, "--state", "failed"); len(l.Items) != 0 {
		t.Fatalf("failed deliveries: %+v", l.Items)
	}

	// Disabled: shown in list and get; no events go out, a test does.
	h.as(clienttest.OperatorToken, "webhooks", "disable", id).expect(t, 1, "HTTP 403 forbidden")
	h.vars["HYPERSDK_TOKEN"] = clienttest.AdminToken
	h.run("webhooks", "disable", id).expect(t, 0, "webhook endpoint "+id+" disabled")
	if r = h.run("webhooks", "list").expect(t, 0); !strings.Contains(strings.Split(r.stdout, "\n")[1], " no ") {
		t.Fatalf("list after disable:\n%s", r.stdout)
	}
	h.run("webhooks", "get", id).expect(t, 0, "Enabled:", "no (disabled by an operator)")
	before := len(rcv.got())
	if r := h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-003", "--wait", "-o", "json"); r.code != 0 {
		t.Fatalf("job while disabled: %s", r.stderr)
	}
	h.run("webhooks", "test", id, "--wait").expect(t, 0, "endpoint "+id+" is disabled", "the test is sent anyway", "delivered: HTTP 200")
	if n := len(rcv.got()); n != before+1 {
		t.Fatalf("receiver got %d requests while disabled, want only the test (%d)", n, before+1)
	}
	h.run("webhooks", "enable", id).expect(t, 0, "webhook endpoint "+id+" enabled")

	// Rotation: the new secret printed once; the old one signs too until
	// the grace period ends.
	r = h.run("webhooks", "rotate-secret", id, "--grace", "1h").
		expect(t, 0, "the previous secret keeps signing too until", "store it now, it will not be shown again")
	newSecret := strings.TrimSpace(r.stdout)
	if newSecret == secret || webhooks.ValidateSecret(newSecret) != nil {
		t.Fatalf("rotate-secret stdout %q", r.stdout)
	}
	ep := h.endpoint(id)
	if ep.RotatingUntil == nil || ep.SecretPrefix != newSecret[:10]+"…" {
		t.Fatalf("after rotation: rotating_until %v prefix %q", ep.RotatingUntil, ep.SecretPrefix)
	}
	r = h.run("webhooks", "get", id).expect(t, 0, "Rotating until:", "the previous secret signs too")
	noSecret(t, "get after rotation", r.stdout, newSecret)
	h.run("webhooks", "test", id, "--wait").expect(t, 0, "delivered")
	hooks := rcv.got()
	last := hooks[len(hooks)-1]
	if !last.signedBy(t, newSecret) || !last.signedBy(t, secret) {
		t.Fatalf("during the grace period both secrets must sign: %q", last.signature)
	}
	h.run("webhooks", "rotate-secret", id, "--grace", "0s").expect(t, 0, "the previous secret no longer signs")
	if ep := h.endpoint(id); ep.RotatingUntil != nil {
		t.Fatalf("rotating_until after --grace 0s: %v", ep.RotatingUntil)
	}
	r = h.run("webhooks", "rotate-secret", id, "-o", "json").expect(t, 0)
	var rotated apitypes.CreatedEndpoint
	if err := json.Unmarshal([]byte(r.stdout), &rotated); err != nil || webhooks.ValidateSecret(rotated.Secret) != nil || rotated.Endpoint.ID != id {
		t.Fatalf("rotate-secret -o json: %v\n%s", err, r.stdout)
	}

	// Removal.
	h.as(clienttest.OperatorToken, "webhooks", "remove", id).expect(t, 1, "HTTP 403 forbidden")
	h.run("webhooks", "remove", id).expect(t, 0, "webhook endpoint "+id+" removed")
	h.run("webhooks", "get", id).expect(t, 1, "get webhook "+id+": ", "HTTP 404 webhook-not-found")
	h.run("webhooks", "list").expect(t, 0, "No webhook endpoints")
}

func TestWebhooksFailingReceiver(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	h.vars["HYPERSDK_TOKEN"] = clienttest.AdminToken
	rcv := newReceiver(t, http.StatusInternalServerError)

	r := h.run("webhooks", "add", rcv.URL, "--events", "job.completed", "--max-retries", "0", "-o", "json").expect(t, 0)
	var created apitypes.CreatedEndpoint
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || webhooks.ValidateSecret(created.Secret) != nil {
		t.Fatalf("add -o json: %v\n%s", err, r.stdout)
	}
	id := created.Endpoint.ID
	if created.Endpoint.MaxRetries != 0 || !created.Endpoint.Enabled {
		t.Fatalf("created %+v", created.Endpoint)
	}

	// No retries: one 500 and the delivery has failed for good.
	r = h.run("webhooks", "test", id, "--wait").
		expect(t, 1, "attempt 1: HTTP 500 (", "response: Internal Server Error", "failed after 1 attempt(s): HTTP 500")
	if strings.Contains(r.stdout, "delivered") {
		t.Fatalf("stdout claims delivery:\n%s", r.stdout)
	}
	r = h.run("webhooks", "test", id, "--wait", "-o", "json").expect(t, 1, "HTTP 500")
	var failed apitypes.Delivery
	if err := json.Unmarshal([]byte(r.stdout), &failed); err != nil || failed.State != apitypes.DeliveryFailed || failed.LastStatus != 500 {
		t.Fatalf("test --wait -o json: %v\n%s", err, r.stdout)
	}

	list := h.deliveries(id)
	if len(list.Items) != 2 {
		t.Fatalf("%d deliveries, want 2", len(list.Items))
	}
	h.run("webhooks", "deliveries", id, "--state", "failed").expect(t, 0, "webhook.test", "failed", "500", "HTTP 500")
	d := list.Items[1] // the older one
	r = h.run("webhooks", "delivery", d.ID).expect(t, 0, "Webhook ID:", d.EventID, "Event:", "webhook.test", "State:", "failed",
		"Last error:", "HTTP 500", "ATTEMPT", "TIME", "STATUS", "LATENCY", "ERROR", "RESPONSE", "Internal Server Error")
	if !strings.Contains(r.stdout, "\n1 ") || !strings.Contains(r.stdout, " 500 ") {
		t.Fatalf("attempt row missing:\n%s", r.stdout)
	}

	// Redelivery: admin only; same webhook-id; a fresh budget.
	h.as(clienttest.OperatorToken, "webhooks", "redeliver", d.ID).expect(t, 1, "HTTP 403 forbidden", "needs admin")
	rcv.status.Store(http.StatusOK)
	h.run("webhooks", "redeliver", d.ID, "--wait").expect(t, 0, "queued again", "webhook-id "+d.EventID, "attempt 2: HTTP 200", "delivered: HTTP 200")
	after := h.delivery(d.ID)
	if after.State != apitypes.DeliveryDelivered || len(after.History) != 2 || after.History[0].Status != 500 || after.History[1].Status != 200 {
		t.Fatalf("history after redelivery: %+v", after.History)
	}
	var ids []string
	for _, got := range rcv.got() {
		if got.id == d.EventID {
			ids = append(ids, got.id)
			if !got.signedBy(t, created.Secret) {
				t.Fatalf("unsigned attempt: %q", got.signature)
			}
		}
	}
	if len(ids) != 2 {
		t.Fatalf("the receiver saw webhook-id %s %d times, want 2 (500, then 200)", d.EventID, len(ids))
	}
	h.run("webhooks", "delivery", d.ID).expect(t, 0, "State:", "delivered", "Delivered:")
	h.run("webhooks", "redeliver", d.ID).expect(t, 0, "queued again to "+id, "follow it with: hyperctl webhooks delivery "+d.ID)

	// A retry within the budget: 503, then 204 on the second attempt.
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer flaky.Close()
	h.run("webhooks", "add", flaky.URL, "--events", "job.failed", "--max-retries", "3").expect(t, 0)
	r = h.run("webhooks", "list").expect(t, 0)
	var flakyID string
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, flaky.URL) {
			flakyID = strings.Fields(line)[0]
		}
	}
	h.run("webhooks", "test", flakyID, "--wait").expect(t, 0, "attempt 1: HTTP 503", "attempt 2: HTTP 204", "delivered: HTTP 204", "(attempt 2)")
}

func TestWebhooksProblems(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	rcv := newReceiver(t, http.StatusOK)
	h.vars["HYPERSDK_TOKEN"] = clienttest.AdminToken

	// Rejected by the daemon: the problem's detail and field errors.
	h.run("webhooks", "add", rcv.URL, "--events", "job.bogus").
		expect(t, 1, "add webhook "+rcv.URL+": ", `events: "job.bogus" is not an event type or wildcard`, "(HTTP 422 invalid-webhook)")
	r := h.run("webhooks", "add", rcv.URL, "--events", "job.*", "--max-retries", "99")
	r.expect(t, 1, "(HTTP 422 validation-failed)", "\n  --max-retries: expected number <= 50 (got 99)")
	h.run("webhooks", "add", "ftp://example.com/x", "--events", "job.*").expect(t, 1, `url: must be an absolute http:// or https:// URL, got "ftp://example.com/x"`, "HTTP 422")
	h.run("webhooks", "add", rcv.URL, "--events", "job.*", "--timeout", "1ms").expect(t, 1, "timeout: must be a duration between 100ms and 5m")
	h.run("webhooks", "add", rcv.URL, "--events", "job.*", "--secret", "whsec_dG9vIHNob3J0").
		expect(t, 1, "warning: a secret given with --secret is visible", "secret: a signing secret holds 24 to 64 bytes", "HTTP 422 invalid-webhook")
	h.run("webhooks", "add", rcv.URL, "--events", "job.*", "--header", "Authorization=Bearer x", "--header", "Host=evil").
		expect(t, 1, "warning: the value of header Authorization given with --header is visible", "headers: Host is set by the sender")
	h.run("webhooks", "list").expect(t, 0, "No webhook endpoints")

	// Wrong command lines never reach the daemon.
	h.run("webhooks", "add", rcv.URL).expect(t, 2, "--events is required")
	h.run("webhooks", "add").expect(t, 2, "takes 1 argument(s) (URL)")
	h.run("webhooks", "add", rcv.URL, "--events", "job.*", "--header", "novalue").expect(t, 2, "want Name=value")
	h.run("webhooks", "add", rcv.URL, "--events", "job.*", "--secret", "x", "--secret-file", "y").expect(t, 2, "exclude each other")
	h.run("webhooks", "add", rcv.URL, "--events", "job.*", "--secret-file", filepath.Join(t.TempDir(), "missing")).expect(t, 2, "--secret-file")
	h.run("webhooks", "deliveries").expect(t, 2, "takes an endpoint ID, or --event")
	h.run("webhooks", "deliveries", "x", "--event", "msg_1").expect(t, 2, "not both")
	h.run("webhooks", "deliveries", "--event", "msg_1", "--all").expect(t, 2, "not to --event")
	h.run("webhooks", "rotate-secret", "x", "--grace", "-1h").expect(t, 2, "--grace must not be negative")
	h.run("webhooks", "bogus").expect(t, 2, `unknown command "bogus"`)

	// A secret of one's own, from a file: printed back once, as given.
	own := webhooks.NewSecret()
	sf := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(sf, []byte(own+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = h.run("webhooks", "add", rcv.URL, "--events", "*", "--secret-file", sf).expect(t, 0)
	if strings.TrimSpace(r.stdout) != own || strings.Contains(r.stderr, "warning") {
		t.Fatalf("add --secret-file:\nstdout %q\nstderr %q", r.stdout, r.stderr)
	}
	r = h.run("webhooks", "list").expect(t, 0, own[:10]+"…")
	id := strings.Fields(strings.Split(r.stdout, "\n")[1])[0]

	// Roles and missing things.
	h.as(clienttest.ViewerToken, "webhooks", "list").expect(t, 0, id)
	h.as(clienttest.ViewerToken, "webhooks", "test", id).expect(t, 1, "needs operator", "HTTP 403 forbidden")
	h.as(clienttest.OperatorToken, "webhooks", "rotate-secret", id).expect(t, 1, "needs admin", "HTTP 403 forbidden")
	h.run("webhooks", "get", "wh_nope").expect(t, 1, "webhook endpoint wh_nope", "HTTP 404 webhook-not-found")
	h.run("webhooks", "test", "wh_nope").expect(t, 1, "HTTP 404 webhook-not-found")
	h.run("webhooks", "deliveries", "wh_nope").expect(t, 1, "HTTP 404 webhook-not-found")
	h.run("webhooks", "delivery", "nope").expect(t, 1, "delivery nope", "HTTP 404 webhook-not-found")
	h.run("webhooks", "redeliver", "nope").expect(t, 1, "HTTP 404 webhook-not-found")
	h.run("webhooks", "deliveries", id, "--state", "bogus").expect(t, 1, "HTTP 422 validation-failed", "query.state")
	h.run("webhooks", "deliveries", id).expect(t, 0, "No deliveries found")
	h.run("webhooks", "deliveries", "--event", "msg_nope").expect(t, 1, "event msg_nope", "HTTP 404 webhook-not-found")
	h.run("webhooks", "rotate-secret", id, "--grace", "1000h").expect(t, 1, "grace must be between 0 and 720h", "HTTP 422")

	// An endpoint of the configuration file is changed and removed only there.
	cfgURL := rcv.URL + "/from-config"
	if _, err := h.srv.Webhooks.SyncConfig(context.Background(), []config.Webhook{
		{URL: cfgURL, Events: []string{"job.failed"}, Secret: config.NewSecret(webhooks.NewSecret())},
	}); err != nil {
		t.Fatal(err)
	}
	cfgID := webhooks.ConfigEndpointID(cfgURL)
	r = h.run("webhooks", "list").expect(t, 0, cfgID, cfgURL)
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, cfgID) && !strings.Contains(line, " config ") {
			t.Fatalf("configured endpoint's row: %q", line)
		}
	}
	h.run("webhooks", "remove", cfgID).expect(t, 1, "managed by the configuration file; remove it there", "HTTP 409 webhook-conflict")
	h.run("webhooks", "disable", cfgID).expect(t, 1, "managed by the configuration file", "HTTP 409 webhook-conflict")
}
