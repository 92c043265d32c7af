package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
	"github.com/hypersdk/hypersdk/client/clienttest"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
)

func TestWebhookEndpoints(t *testing.T) {
	t.Parallel()
	srv := clienttest.NewServer(t, clienttest.Options{})
	admin := newClient(t, srv, clienttest.AdminToken)
	viewer := newClient(t, srv, clienttest.ViewerToken)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer rcv.Close()

	// Create: the secret comes back this once; reads show only its prefix.
	created, err := admin.CreateWebhook(ctx(t), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"job.*"},
		Headers: map[string]string{"Authorization": "Bearer abc"}, Description: "ci", Timeout: "2s", MaxRetries: new(1)})
	if err != nil {
		t.Fatal(err)
	}
	ep, secret := created.Endpoint, created.Secret
	if webhooks.ValidateSecret(secret) != nil || !strings.HasPrefix(secret, ep.SecretPrefix[:len(ep.SecretPrefix)-len("…")]) ||
		ep.MaxRetries != 1 || ep.TimeoutSeconds != 2 || !ep.Enabled || ep.Source != "api" {
		t.Fatalf("created %+v", ep)
	}
	got, err := viewer.GetWebhook(ctx(t), ep.ID)
	if err != nil || got.URL != rcv.URL || len(got.HeaderNames) != 1 || got.HeaderNames[0] != "Authorization" {
		t.Fatalf("get %+v %v", got, err)
	}
	list, err := viewer.ListWebhooks(ctx(t))
	if err != nil || len(list) != 1 || list[0].ID != ep.ID {
		t.Fatalf("list %+v %v", list, err)
	}

	// Update, and the problems of a bad one.
	upd, err := admin.UpdateWebhook(ctx(t), ep.ID, apitypes.EndpointPatch{Events: []string{"job.completed", "job.failed"}, Enabled: new(false)})
	if err != nil || upd.Enabled || upd.DisabledReason == "" || len(upd.Events) != 2 {
		t.Fatalf("update %+v %v", upd, err)
	}
	_, err = admin.UpdateWebhook(ctx(t), ep.ID, apitypes.EndpointPatch{Events: []string{"vm.exploded"}})
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 422 || p.Slug() != "invalid-webhook" || !strings.Contains(p.Detail, `"vm.exploded"`) {
		t.Fatalf("bad events: %v", err)
	}
	if _, err := viewer.UpdateWebhook(ctx(t), ep.ID, apitypes.EndpointPatch{Enabled: new(true)}); !client.IsProblem(err, "forbidden") {
		t.Fatalf("viewer update: %v", err)
	}

	// Rotation: grace keeps the previous secret signing.
	rot, err := admin.RotateWebhookSecret(ctx(t), ep.ID, time.Hour)
	if err != nil || rot.Secret == secret || webhooks.ValidateSecret(rot.Secret) != nil || rot.Endpoint.RotatingUntil == nil {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	if rot, err = admin.RotateWebhookSecret(ctx(t), ep.ID, 0); err != nil || rot.Endpoint.RotatingUntil != nil {
		t.Fatalf("rotate with no grace: %+v %v", rot, err)
	}

	if err := admin.DeleteWebhook(ctx(t), ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.GetWebhook(ctx(t), ep.ID); !client.IsProblem(err, "webhook-not-found") || client.StatusOf(err) != 404 {
		t.Fatalf("get removed: %v", err)
	}
	if err := admin.DeleteWebhook(ctx(t), ep.ID); !client.IsProblem(err, "webhook-not-found") {
		t.Fatalf("remove twice: %v", err)
	}
}

func TestWebhookDeliveries(t *testing.T) {
	t.Parallel()
	srv := clienttest.NewServer(t, clienttest.Options{})
	admin := newClient(t, srv, clienttest.AdminToken)
	op := newClient(t, srv, clienttest.OperatorToken)
	var (
		status atomic.Int32
		mu     sync.Mutex
		ids    []string
	)
	status.Store(http.StatusBadGateway)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
		w.WriteHeader(int(status.Load()))
	}))
	defer rcv.Close()
	created, err := admin.CreateWebhook(ctx(t), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"*"}, MaxRetries: new(0)})
	if err != nil {
		t.Fatal(err)
	}
	id := created.Endpoint.ID

	// A test that fails for good: one attempt, no retry.
	d, err := op.TestWebhook(ctx(t), id)
	// (Usually still pending; a fast worker may have made the attempt already.)
	if err != nil || d.EventType != apitypes.EventWebhookTest || d.EndpointID != id || !strings.HasPrefix(d.EventID, "msg_") {
		t.Fatalf("test: %+v %v", d, err)
	}
	var snapshots int
	final, err := op.WatchDelivery(ctx(t), d.ID, 5*time.Millisecond, func(*apitypes.Delivery) { snapshots++ })
	if err != nil || final.State != apitypes.DeliveryFailed || final.LastStatus != 502 || len(final.History) != 1 || snapshots == 0 {
		t.Fatalf("watch: %+v %v (%d snapshots)", final, err, snapshots)
	}

	// Redelivery needs admin, keeps the webhook-id and starts afresh.
	if _, err := op.Redeliver(ctx(t), d.ID); !client.IsProblem(err, "forbidden") {
		t.Fatalf("operator redeliver: %v", err)
	}
	status.Store(http.StatusOK)
	again, err := admin.Redeliver(ctx(t), d.ID)
	if err != nil || again.EventID != d.EventID {
		t.Fatalf("redeliver: %+v %v", again, err)
	}
	if final, err = op.WatchDelivery(ctx(t), d.ID, 5*time.Millisecond, nil); err != nil || final.State != apitypes.DeliveryDelivered ||
		len(final.History) != 2 || final.History[1].Status != 200 || final.DeliveredAt == nil {
		t.Fatalf("after redelivery: %+v %v", final, err)
	}
	mu.Lock()
	if len(ids) != 2 || ids[0] != d.EventID || ids[1] != d.EventID {
		t.Fatalf("webhook-ids received: %q, want %s twice", ids, d.EventID)
	}
	mu.Unlock()

	// Pages, filters, and an event's deliveries.
	for range 4 {
		d, err := op.TestWebhook(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.WatchDelivery(ctx(t), d.ID, 5*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
	}
	page, err := op.WebhookDeliveries(ctx(t), id, "", "", 2)
	if err != nil || len(page.Items) != 2 || page.NextCursor == "" {
		t.Fatalf("page: %+v %v", page, err)
	}
	next, err := op.WebhookDeliveries(ctx(t), id, "", page.NextCursor, 2)
	if err != nil || len(next.Items) != 2 || next.Items[0].ID == page.Items[0].ID {
		t.Fatalf("next page: %+v %v", next, err)
	}
	var all []string
	for d, err := range op.AllWebhookDeliveries(ctx(t), id, apitypes.DeliveryDelivered, 2) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, d.ID)
	}
	if len(all) != 5 || all[len(all)-1] != d.ID {
		t.Fatalf("every delivered delivery, newest first: %q (first test %s)", all, d.ID)
	}
	failed, err := op.WebhookDeliveries(ctx(t), id, apitypes.DeliveryFailed, "", 0)
	if err != nil || len(failed.Items) != 0 {
		t.Fatalf("failed: %+v %v", failed, err)
	}
	ev, err := op.EventDeliveries(ctx(t), d.EventID)
	if err != nil || len(ev.Items) != 1 || ev.Items[0].ID != d.ID {
		t.Fatalf("event deliveries: %+v %v", ev, err)
	}
	if _, err := op.WebhookDeliveries(ctx(t), id, "bogus", "", 0); !client.IsProblem(err, "validation-failed") {
		t.Fatalf("bad state: %v", err)
	}
	if _, err := op.GetDelivery(ctx(t), "nope"); !client.IsProblem(err, "webhook-not-found") {
		t.Fatalf("missing delivery: %v", err)
	}
	if _, err := op.WatchDelivery(ctx(t), "nope", 5*time.Millisecond, nil); !client.IsProblem(err, "webhook-not-found") {
		t.Fatalf("watch missing delivery: %v", err)
	}
}
