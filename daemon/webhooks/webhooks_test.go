package webhooks_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
	"github.com/hypersdk/hypersdk/internal/netguard/netguardtest"
)

// received is one request a test receiver got.
type received struct {
	id, timestamp, signature string
	body                     []byte
	header                   http.Header
}

// receiver records requests and answers with respond (200 when nil).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, w http.ResponseWriter) // n counts requests from 1
	notify  chan struct{}
}

func newReceiver(t testing.TB, respond func(n int, w http.ResponseWriter)) *receiver {
	r := &receiver{respond: respond, notify: make(chan struct{}, 1000)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp"),
			signature: req.Header.Get("webhook-signature"), body: body, header: req.Header.Clone()})
		n := len(r.got)
		r.mu.Unlock()
		if r.respond != nil {
			r.respond(n, w)
		}
		r.notify <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newService(t testing.TB, db *store.DB, mod ...func(*webhooks.Options)) *webhooks.Service {
	t.Helper()
	o := webhooks.Options{NodeID: "node-a", AllowPrivateTargets: true, Workers: 4, PollInterval: 20 * time.Millisecond,
		Schedule: []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}, DataDir: t.TempDir(), Logger: quiet()}
	for _, f := range mod {
		f(&o)
	}
	s, err := webhooks.New(db, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func start(t testing.TB, s *webhooks.Service) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
}

func emit(t testing.TB, db *store.DB, s *webhooks.Service, typ string, data any) {
	t.Helper()
	if err := db.Tx(context.Background(), func(tx *sql.Tx) error { return s.Emit(context.Background(), tx, typ, data) }); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond; the bound only keeps a broken service from hanging.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func verify(t *testing.T, secret string, r received) map[string]any {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Fatalf("official Standard Webhooks library rejects delivery %s: %v", r.id, err)
	}
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDeliveriesVerifyWithTheOfficialLibrary(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		rcv := newReceiver(t, nil)
		s := newService(t, db)
		ep, secret, err := s.Create(context.Background(), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"job.*"},
			Headers: map[string]string{"Authorization": "Bearer receiver-token"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "whsec_") || strings.Contains(ep.SecretPrefix, secret[10:]) {
			t.Fatalf("secret %q / prefix %q", secret[:8], ep.SecretPrefix)
		}
		start(t, s)
		emit(t, db, s, apitypes.EventJobCreated, map[string]string{"job_id": "j1"})
		emit(t, db, s, apitypes.EventJobCompleted, map[string]string{"job_id": "j1"})
		emit(t, db, s, apitypes.EventJobProgress, map[string]string{"job_id": "j1"}) // opt-in only: not sent
		emit(t, db, s, apitypes.EventScheduleFailed, nil)                            // not subscribed
		waitFor(t, "two deliveries", func() bool { return len(rcv.requests()) >= 2 })
		time.Sleep(100 * time.Millisecond)
		reqs := rcv.requests()
		if len(reqs) != 2 {
			t.Fatalf("%d deliveries, want 2", len(reqs))
		}
		types := map[string]bool{}
		for _, r := range reqs {
			p := verify(t, secret, r)
			types[p["type"].(string)] = true
			if r.header.Get("Authorization") != "Bearer receiver-token" || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", r.header)
			}
			if _, ok := p["timestamp"].(string); !ok || p["data"] == nil {
				t.Errorf("payload %v", p)
			}
		}
		if !types["job.created"] || !types["job.completed"] {
			t.Errorf("types %v", types)
		}
		// The receiver may answer before the daemon records the delivery.
		waitFor(t, "no pending deliveries", func() bool {
			got, err := s.Get(context.Background(), ep.ID)
			return err == nil && got.Pending == 0
		})
	})
}

// Receiver down (connection refused), then failing (500), then asking to
// wait (429 Retry-After): every event arrives once it is back, and each
// event keeps its webhook-id across attempts.
func TestEventsSurviveAnOutageWithStableIDs(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		// Reserve a port and keep nothing listening on it: connection refused.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		s := newService(t, db, func(o *webhooks.Options) {
			o.Schedule = []time.Duration{30 * time.Millisecond, 60 * time.Millisecond, 100 * time.Millisecond}
		})
		maxRetries := 30
		ep, secret, err := s.Create(context.Background(), apitypes.EndpointSpec{URL: "http://" + addr + "/hook", Events: []string{"*"}, MaxRetries: &maxRetries})
		if err != nil {
			t.Fatal(err)
		}
		start(t, s)
		for i := range 5 {
			emit(t, db, s, apitypes.EventJobCompleted, map[string]int{"n": i})
		}
		waitFor(t, "failed attempts while down", func() bool {
			d, _, _ := s.Deliveries(context.Background(), webhooks.DeliveryFilter{EndpointID: ep.ID})
			for _, x := range d {
				if x.Attempts < 2 {
					return false
				}
			}
			return len(d) == 5
		})
		// Back, but failing, then rate limiting, then fine.
		var mu sync.Mutex
		phase := 0
		rcvLn, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("re-listen on %s: %v", addr, err)
		}
		rcv := &receiver{notify: make(chan struct{}, 1000)}
		rcv.respond = func(n int, w http.ResponseWriter) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case n <= 5:
				phase = 1
				w.WriteHeader(http.StatusInternalServerError)
			case n <= 8:
				phase = 2
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			default:
				phase = 3
			}
		}
		rcv.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			rcv.mu.Lock()
			rcv.got = append(rcv.got, received{id: req.Header.Get("webhook-id"), body: body, header: req.Header.Clone()})
			n := len(rcv.got)
			rcv.mu.Unlock()
			rcv.respond(n, w)
		}))
		rcv.Listener.Close()
		rcv.Listener = rcvLn
		rcv.Start()
		defer rcv.Close()
		waitFor(t, "all five delivered", func() bool {
			d, _, _ := s.Deliveries(context.Background(), webhooks.DeliveryFilter{EndpointID: ep.ID, State: apitypes.DeliveryDelivered})
			return len(d) == 5
		})
		mu.Lock()
		if phase != 3 {
			t.Errorf("receiver phase %d", phase)
		}
		mu.Unlock()
		// Every request verifies; ids are stable: 5 distinct ids, and the
		// attempt history of each delivery shows the outage.
		ids := map[string]int{}
		for _, r := range rcv.requests() {
			verify(t, secret, r)
			ids[r.id]++
		}
		if len(ids) != 5 {
			t.Fatalf("%d distinct webhook-ids, want 5: %v", len(ids), ids)
		}
		all, _, _ := s.Deliveries(context.Background(), webhooks.DeliveryFilter{EndpointID: ep.ID})
		sawRefused, saw429 := false, false
		for _, d := range all {
			full, err := s.Delivery(context.Background(), d.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range full.History {
				if strings.Contains(a.Error, "refused") {
					sawRefused = true
				}
				if a.Status == 429 {
					saw429 = true
				}
			}
		}
		if !sawRefused || !saw429 {
			t.Errorf("history lacks the outage: refused=%v 429=%v", sawRefused, saw429)
		}
	})
}

func TestGoneDisablesAndRedirectIsFailure(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		gone := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
		redirect := newReceiver(t, func(_ int, w http.ResponseWriter) {
			w.Header().Set("Location", "http://169.254.169.254/latest/meta-data/")
			w.WriteHeader(http.StatusFound)
		})
		s := newService(t, db)
		zero := 0
		g, _, _ := s.Create(context.Background(), apitypes.EndpointSpec{URL: gone.URL, Events: []string{"*"}})
		r, _, _ := s.Create(context.Background(), apitypes.EndpointSpec{URL: redirect.URL, Events: []string{"*"}, MaxRetries: &zero})
		start(t, s)
		emit(t, db, s, apitypes.EventJobFailed, nil)
		waitFor(t, "gone endpoint disabled", func() bool { ep, _ := s.Get(context.Background(), g.ID); return !ep.Enabled })
		ep, _ := s.Get(context.Background(), g.ID)
		if !strings.Contains(ep.DisabledReason, "410") {
			t.Errorf("reason %q", ep.DisabledReason)
		}
		waitFor(t, "redirect delivery failed", func() bool {
			d, _, _ := s.Deliveries(context.Background(), webhooks.DeliveryFilter{EndpointID: r.ID, State: apitypes.DeliveryFailed})
			return len(d) == 1
		})
		if n := len(redirect.requests()); n != 1 {
			t.Errorf("redirecting receiver got %d requests", n)
		}
		// A disabled endpoint gets no new events.
		emit(t, db, s, apitypes.EventJobFailed, nil)
		time.Sleep(100 * time.Millisecond)
		if n := len(gone.requests()); n != 1 {
			t.Errorf("disabled endpoint got %d requests", n)
		}
	})
}

// A rotated secret keeps signing with the old one for the grace period:
// receivers holding either secret verify.
func TestSecretRotationSendsBothSignatures(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	rcv := newReceiver(t, nil)
	s := newService(t, db)
	ep, oldSecret, _ := s.Create(context.Background(), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"job.*"}})
	ep, newSecret, err := s.RotateSecret(context.Background(), ep.ID, time.Hour)
	if err != nil || newSecret == oldSecret || ep.RotatingUntil == nil {
		t.Fatalf("rotate: %v %+v", err, ep)
	}
	start(t, s)
	emit(t, db, s, apitypes.EventJobStarted, nil)
	waitFor(t, "delivery", func() bool { return len(rcv.requests()) == 1 })
	r := rcv.requests()[0]
	if n := len(strings.Fields(r.signature)); n != 2 {
		t.Fatalf("%d signatures during the grace period", n)
	}
	verify(t, oldSecret, r)
	verify(t, newSecret, r)
	// Ending the grace period leaves one signature.
	if _, _, err := s.RotateSecret(context.Background(), ep.ID, 0); err != nil {
		t.Fatal(err)
	}
	emit(t, db, s, apitypes.EventJobStarted, nil)
	waitFor(t, "second delivery", func() bool { return len(rcv.requests()) == 2 })
	if n := len(strings.Fields(rcv.requests()[1].signature)); n != 1 {
		t.Fatalf("%d signatures after the grace period", n)
	}
}

func TestSSRFGuard(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	// Names resolve through an in-memory DNS server: rebind.example to
	// loopback, nat64.example to loopback behind the NAT64 prefix.
	resolver := netguardtest.Resolver(map[string][]netip.Addr{
		"rebind.example": {netip.MustParseAddr("127.0.0.1")},
		"nat64.example":  {netip.MustParseAddr("64:ff9b::7f00:1")},
	})
	strict := newService(t, db, func(o *webhooks.Options) { o.AllowPrivateTargets = false; o.Resolver = resolver })
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://[::1]/x", "http://169.254.169.254/latest", "http://10.1.2.3/x",
		"http://192.168.1.1/x", "http://localhost/x", "ftp://example.com/x", "http://user:pw@example.com/x",
		"http://[::1%25lo]:9/x", "http://[::1%251]:9/x", "http://[fe80::1%25lo]/x", "http://[fe80::1%25eth0]/x",
		"http://[64:ff9b::7f00:1]/x", "http://[2002:7f00:1::]/x", "http://2130706433/x", "http://localhost./x"} {
		_, _, err := strict.Create(context.Background(), apitypes.EndpointSpec{URL: u, Events: []string{"*"}})
		var fe *webhooks.FieldError
		if !errors.Is(err, webhooks.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "url" {
			t.Errorf("%s: %v", u, err)
		}
	}
	// Names that resolve to blocked addresses pass the check at creation
	// but are refused when connecting (DNS rebinding cannot bypass the
	// guard). So is a zoned URL stored before zone ids were refused.
	rcv := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rcv.Listener.Addr().String())
	rcv6 := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a delivery reached [::1]") }))
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv6.Listener = ln6
	rcv6.Start()
	defer rcv6.Close()
	_, port6, _ := net.SplitHostPort(ln6.Addr().String())
	zero := 0
	var ids []string
	for _, host := range []string{"rebind.example", "nat64.example"} {
		ep, _, err := strict.Create(context.Background(), apitypes.EndpointSpec{URL: "http://" + net.JoinHostPort(host, port) + "/x", Events: []string{"*"}, MaxRetries: &zero})
		if err != nil {
			t.Fatalf("%s refused at creation: %v", host, err)
		}
		ids = append(ids, ep.ID)
	}
	ep, _, err := strict.Create(context.Background(), apitypes.EndpointSpec{URL: "http://public.example/x", Events: []string{"*"}, MaxRetries: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.Exec("UPDATE webhook_endpoints SET url = $1 WHERE id = $2", "http://[::1%25lo]:"+port6+"/x", ep.ID); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, ep.ID)
	start(t, strict)
	emit(t, db, strict, apitypes.EventJobFailed, nil)
	for i, id := range ids {
		waitFor(t, "refused delivery", func() bool {
			d, _, _ := strict.Deliveries(context.Background(), webhooks.DeliveryFilter{EndpointID: id, State: apitypes.DeliveryFailed})
			return len(d) == 1
		})
		d, _, _ := strict.Deliveries(context.Background(), webhooks.DeliveryFilter{EndpointID: id})
		want := []string{"refusing a loopback address (set webhook_delivery.allow_private_targets", "refusing a NAT64 address embedding 127.0.0.1", "IPv6 zone ids are never allowed"}[i]
		if !strings.Contains(d[0].LastError, want) || !strings.HasPrefix(d[0].LastError, "dial tcp") {
			t.Errorf("delivery error %q, want %q", d[0].LastError, want)
		}
	}
	if n := len(rcv.requests()); n != 0 {
		t.Fatalf("receiver got %d requests", n)
	}
}

// Configured endpoints get the same guard; the error names the key and
// never shows a header value, and nothing is stored.
func TestConfigEndpointsGuarded(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	s := newService(t, db, func(o *webhooks.Options) { o.AllowPrivateTargets = false })
	ctx := context.Background()
	for _, tc := range []struct {
		hook config.Webhook
		want string
	}{
		{config.Webhook{URL: "http://[::1%25lo]:9/x", Events: []string{"*"}}, "webhooks[0].url: ::1%lo: IPv6 zone ids"},
		{config.Webhook{URL: "http://[fe80::1%25eth0]/x", Events: []string{"*"}}, "webhooks[0].url: fe80::1%eth0: IPv6 zone ids"},
		{config.Webhook{URL: "https://hooks.example.com/x", Events: []string{"*"},
			Headers: map[string]config.Secret{"X-Token": config.NewSecret("SECRET\r\nX-Injected: 1")}}, "webhooks[0].headers: value of header X-Token: contains a control character"},
	} {
		_, err := s.SyncConfig(ctx, []config.Webhook{tc.hook})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: %v; want %q", tc.hook.URL, err, tc.want)
		}
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("%d endpoints stored", len(list))
	}
}

func TestValidationAndConfigEndpoints(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	s := newService(t, db)
	ctx := context.Background()
	for _, spec := range []apitypes.EndpointSpec{
		{URL: "http://example.com/x"},
		{URL: "http://example.com/x", Events: []string{"job.finished"}},
		{URL: "http://example.com/x", Events: []string{"*"}, Secret: "nope"},
		{URL: "http://example.com/x", Events: []string{"*"}, Headers: map[string]string{"webhook-id": "x"}},
		{URL: "http://example.com/x", Events: []string{"*"}, Timeout: "1h"},
		{URL: "http://example.com/x", Events: []string{"*"}, Headers: map[string]string{"X-Token": "v\r\nX-Injected: 1"}},
		{URL: "http://example.com/x", Events: []string{"*"}, Headers: map[string]string{"X-Token\r\nX-Injected": "v"}},
	} {
		if _, _, err := s.Create(ctx, spec); !errors.Is(err, webhooks.ErrInvalid) {
			t.Errorf("%+v accepted: %v", spec, err)
		}
	}
	enabled := false
	hooks := []config.Webhook{
		{URL: "http://receiver.example/a", Events: []string{"job.completed"}, Retry: new(3), Timeout: 5 * time.Second,
			Headers: map[string]config.Secret{"Authorization": config.NewSecret("Bearer x")}},
		{URL: "http://receiver.example/b", Events: []string{"job.*"}, Enabled: &enabled, Secret: config.NewSecret(webhooks.NewSecret())},
	}
	files, err := s.SyncConfig(ctx, hooks)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("secret files %v", files)
	}
	fi, err := os.Stat(files[0])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	list, _ := s.List(ctx)
	if len(list) != 2 || list[0].MaxRetries != 3 || list[0].TimeoutSeconds != 5 || list[0].Source != "config" || list[1].Enabled {
		t.Fatalf("config endpoints %+v %+v", list[0], list[1])
	}
	if len(list[0].HeaderNames) != 1 || list[0].HeaderNames[0] != "Authorization" {
		t.Errorf("header names %v", list[0].HeaderNames)
	}
	// Config endpoints are changed in the file, not through the API; a
	// secret set in the file cannot be rotated here, a generated one can.
	u := "http://receiver.example/c"
	off := false
	for _, p := range []apitypes.EndpointPatch{{URL: &u}, {Enabled: &off}} {
		if _, err := s.Update(ctx, list[0].ID, p); !errors.Is(err, webhooks.ErrConflict) {
			t.Errorf("editing a config endpoint: %v", err)
		}
	}
	if _, _, err := s.RotateSecret(ctx, list[1].ID, 0); !errors.Is(err, webhooks.ErrConflict) {
		t.Errorf("rotating a configured secret: %v", err)
	}
	_, rotated, err := s.RotateSecret(ctx, list[0].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(files[0]); strings.TrimSpace(string(b)) != rotated {
		t.Error("the generated secret's file was not updated by the rotation")
	}
	if err := s.Delete(ctx, list[0].ID); !errors.Is(err, webhooks.ErrConflict) {
		t.Errorf("deleting a config endpoint: %v", err)
	}
	// Restarting with the same config keeps the generated secret; removing
	// an endpoint from the config removes it.
	list, _ = s.List(ctx)
	before := list[0].SecretPrefix
	if _, err := s.SyncConfig(ctx, hooks[:1]); err != nil {
		t.Fatal(err)
	}
	list, _ = s.List(ctx)
	if len(list) != 1 || list[0].SecretPrefix != before {
		t.Fatalf("after resync: %+v", list)
	}
	if filepath.Base(files[0]) != "webhook-"+list[0].ID+".secret" {
		t.Errorf("secret file %s", files[0])
	}
}

// Redelivery sends the same webhook-id again with a fresh budget.
func TestRedeliver(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	rcv := newReceiver(t, nil)
	s := newService(t, db)
	ep, _, _ := s.Create(context.Background(), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"*"}})
	start(t, s)
	d, err := s.Test(context.Background(), ep.ID)
	if err != nil || d.EventType != apitypes.EventWebhookTest {
		t.Fatal(err, d)
	}
	waitFor(t, "test delivery", func() bool {
		x, _ := s.Delivery(context.Background(), d.ID)
		return x.State == apitypes.DeliveryDelivered
	})
	if _, err := s.Redeliver(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redelivery", func() bool { return len(rcv.requests()) == 2 })
	reqs := rcv.requests()
	if reqs[0].id != reqs[1].id || reqs[0].id != d.EventID {
		t.Fatalf("ids %s %s, event %s", reqs[0].id, reqs[1].id, d.EventID)
	}
	var full *apitypes.Delivery
	waitFor(t, "second attempt recorded", func() bool {
		full, _ = s.Delivery(context.Background(), d.ID)
		return full != nil && len(full.History) == 2
	})
	if full.History[1].Attempt != 2 || full.State != apitypes.DeliveryDelivered {
		t.Fatalf("history %+v", full.History)
	}
}

// BenchmarkDelivery measures deliveries per second and the latency from an
// event's commit to the receiver getting it, against a local receiver, with
// the cost of a bare HTTP POST to the same receiver as the baseline.
func BenchmarkDelivery(b *testing.B) {
	for _, d := range storetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db := storetest.Open(b, d)
			var mu sync.Mutex
			var lat []time.Duration
			rcv := newReceiver(b, func(_ int, w http.ResponseWriter) {})
			rcv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				var p struct {
					Data struct {
						Sent time.Time `json:"sent"`
					} `json:"data"`
				}
				_ = json.NewDecoder(req.Body).Decode(&p)
				mu.Lock()
				lat = append(lat, time.Since(p.Data.Sent))
				mu.Unlock()
			})
			s := newService(b, db, func(o *webhooks.Options) { o.Workers = 8 })
			if _, _, err := s.Create(context.Background(), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"*"}}); err != nil {
				b.Fatal(err)
			}
			// Baseline: the same POST without signing, storing or leasing.
			base := time.Now()
			for range 200 {
				resp, err := http.Post(rcv.URL, "application/json", strings.NewReader(`{"data":{"sent":"`+time.Now().Format(time.RFC3339Nano)+`"}}`))
				if err == nil {
					resp.Body.Close()
				}
			}
			perPost := time.Since(base) / 200
			mu.Lock()
			lat = lat[:0]
			mu.Unlock()
			start(b, s)
			b.ResetTimer()
			began := time.Now()
			for range b.N {
				emit(b, db, s, apitypes.EventJobCompleted, map[string]time.Time{"sent": time.Now()})
			}
			waitFor(b, "all delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(lat) >= b.N })
			elapsed := time.Since(began)
			mu.Lock()
			sorted := append([]time.Duration(nil), lat...)
			mu.Unlock()
			sortDurations(sorted)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(sorted[len(sorted)/2].Milliseconds()), "p50_ms")
			b.ReportMetric(float64(sorted[len(sorted)*99/100].Milliseconds()), "p99_ms")
			b.ReportMetric(float64(elapsed/time.Duration(b.N))/float64(perPost), "x_bare_post")
		})
	}
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// BenchmarkDeliveryLatency sends one event at a time and waits for it: the
// event-to-delivery latency without a backlog.
func BenchmarkDeliveryLatency(b *testing.B) {
	for _, d := range storetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db := storetest.Open(b, d)
			rcv := newReceiver(b, nil)
			s := newService(b, db, func(o *webhooks.Options) { o.Workers = 4 })
			if _, _, err := s.Create(context.Background(), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"*"}}); err != nil {
				b.Fatal(err)
			}
			start(b, s)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				emit(b, db, s, apitypes.EventJobCompleted, nil)
				<-rcv.notify
				lat = append(lat, time.Since(t0))
			}
			sortDurations(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}

// Retention removes finished deliveries' events, never pending ones.
func TestPrune(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	clk := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clk }
	s := newService(t, db, func(o *webhooks.Options) { o.Now = now; o.Retention = 24 * time.Hour })
	rcv := newReceiver(t, nil)
	if _, _, err := s.Create(context.Background(), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	emit(t, db, s, apitypes.EventJobCompleted, nil) // will be delivered
	start(t, s)
	waitFor(t, "delivery", func() bool { return len(rcv.requests()) == 1 })
	waitFor(t, "recorded", func() bool { n, _ := s.Pending(context.Background()); return n == 0 })
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	emit(t, db, s, apitypes.EventJobFailed, nil) // stays pending: delivery is stopped
	clk = clk.Add(48 * time.Hour)
	n, err := s.Prune(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if p, _ := s.Pending(context.Background()); p != 1 {
		t.Fatalf("pending %d after pruning", p)
	}
}

// Nodes of a cluster start at one instant on one PostgreSQL database, each
// syncing the same configured webhooks: every start succeeds, each
// endpoint is stored once, and a generated secret is written to exactly
// one node's data directory, the one whose insert won, holding the stored
// secret.
func TestSyncConfigConcurrentNodes(t *testing.T) {
	const nodes, rounds = 8, 5
	url := storetest.PostgresURL(t)
	hooks := []config.Webhook{
		{URL: "http://receiver.example/generated", Events: []string{"job.*"}},
		{URL: "http://receiver.example/given", Events: []string{"*"}, Secret: config.NewSecret(webhooks.NewSecret())},
	}
	for round := range rounds {
		dbs := make([]*store.DB, nodes)
		svcs := make([]*webhooks.Service, nodes)
		dirs := make([]string, nodes)
		for i := range nodes {
			opts := storetest.Options(t, store.Postgres)
			opts.URL = url
			db, err := store.Open(context.Background(), opts)
			if err != nil {
				t.Fatalf("round %d: open node %d: %v", round, i, err)
			}
			t.Cleanup(func() { db.Close() })
			dbs[i], dirs[i] = db, t.TempDir()
			svcs[i] = newService(t, db, func(o *webhooks.Options) { o.NodeID, o.DataDir = fmt.Sprintf("node-%d", i), dirs[i] })
		}
		if round > 0 {
			// Each round starts from an empty table, as a new cluster does.
			if _, err := dbs[0].SQL.Exec("DELETE FROM webhook_endpoints"); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		ready := make(chan struct{})
		errs := make([]error, nodes)
		files := make([][]string, nodes)
		for i := range nodes {
			wg.Go(func() {
				<-ready
				files[i], errs[i] = svcs[i].SyncConfig(context.Background(), hooks)
			})
		}
		close(ready)
		wg.Wait()
		var written []string
		for i := range nodes {
			if errs[i] != nil {
				t.Fatalf("round %d: node %d: SyncConfig: %v", round, i, errs[i])
			}
			written = append(written, files[i]...)
		}
		var stored int
		if err := dbs[0].SQL.QueryRow("SELECT count(*) FROM webhook_endpoints").Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != len(hooks) {
			t.Fatalf("round %d: %d endpoints stored, want %d", round, stored, len(hooks))
		}
		if len(written) != 1 {
			t.Fatalf("round %d: secret files %v, want exactly one", round, written)
		}
		var secret string
		if err := dbs[0].SQL.QueryRow("SELECT secret FROM webhook_endpoints WHERE id = $1",
			webhooks.ConfigEndpointID(hooks[0].URL)).Scan(&secret); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(written[0]); err != nil || strings.TrimSpace(string(b)) != secret {
			t.Fatalf("round %d: secret file %s does not hold the stored secret (%v)", round, written[0], err)
		}
	}
}

// A claimed delivery can wait for a busy worker past its lease; its
// attempt must not start on the lapsed lease, or a second daemon claiming
// it sends it too: twice, with no crash involved. Daemon A (one worker)
// claims e2 while its worker is stuck on e1; the clock passes e2's lease;
// A's dispatcher holds e3 (due earlier) when the worker turns to e2, so
// nothing renews e2's lease; then daemon B starts. e2 reaches the
// receiver once.
func TestLapsedLeaseIsNotSentTwice(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	var clockMu sync.Mutex
	clock := time.Now()
	now := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return clock
	}
	setClock := func(d time.Duration) {
		clockMu.Lock()
		defer clockMu.Unlock()
		clock = clock.Add(d)
	}
	gate1, gate2 := make(chan struct{}), make(chan struct{})
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		switch n {
		case 1:
			<-gate1
		case 2:
			<-gate2
		}
	})
	var once1, once2 sync.Once
	open1 := func() { once1.Do(func() { close(gate1) }) }
	open2 := func() { once2.Do(func() { close(gate2) }) }
	t.Cleanup(open1)
	t.Cleanup(open2)
	node := func(id string) *webhooks.Service {
		return newService(t, db, func(o *webhooks.Options) { o.NodeID, o.Workers, o.Now = id, 1, now })
	}
	events := func() []string {
		ids, err := db.Strings(context.Background(), "SELECT id FROM webhook_events ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	leasedBy := func(node string) int {
		var n int
		_ = db.SQL.QueryRow("SELECT count(*) FROM webhook_deliveries WHERE lease_node = $1", node).Scan(&n)
		return n
	}

	a := node("node-a")
	if _, _, err := a.Create(context.Background(), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	start(t, a)
	emit(t, db, a, apitypes.EventJobCompleted, map[string]any{"n": 1})
	waitFor(t, "e1 in flight", func() bool { return len(rcv.requests()) == 1 })
	emit(t, db, a, apitypes.EventJobCompleted, map[string]any{"n": 2})
	e2 := events()[1]
	waitFor(t, "e2 claimed by A, waiting for its worker", func() bool { return leasedBy("node-a") == 2 })
	// e3 is due before e2, so A's dispatcher claims it, not e2 again,
	// once the worker takes e2.
	setClock(-time.Hour)
	emit(t, db, a, apitypes.EventJobCompleted, map[string]any{"n": 3})
	setClock(time.Hour + 6*time.Minute) // past e2's lease
	open1()
	waitFor(t, "A's worker past e1, its dispatcher holding e3", func() bool {
		return len(rcv.requests()) == 2 && leasedBy("node-a") >= 1
	})

	start(t, node("node-b"))
	// B polls every 20 ms: a second is fifty chances to claim e2 while
	// A's attempt of it (if any) is in flight.
	time.Sleep(time.Second)
	open2()
	waitFor(t, "e2 delivered", func() bool {
		var state string
		_ = db.SQL.QueryRow("SELECT state FROM webhook_deliveries WHERE event_id = $1", e2).Scan(&state)
		return state == string(apitypes.DeliveryDelivered)
	})
	sent := 0
	for _, r := range rcv.requests() {
		if r.id == e2 {
			sent++
		}
	}
	if sent != 1 {
		t.Fatalf("event %s sent %d times", e2, sent)
	}
}
