package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
)

// zoneURLs are the SSRF bypass of issue 11: IPv6 zone ids made the guard's
// prefix checks miss loopback and link-local addresses.
func zoneURLs(port string) []string {
	return []string{
		"http://[::1%25lo]:" + port + "/x",
		"http://[::1%251]:" + port + "/x",
		"http://[fe80::1%25lo]:" + port + "/x",
		"http://[fe80::1%25eth0]:" + port + "/x",
	}
}

// rawCall is one API request whose status, content type and body the
// test inspects.
func (d *daemon) rawCall(method, path string, body any) (int, string, []byte) {
	d.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, d.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

// With private targets not allowed (the default), webhook URLs with a zone
// id are refused with a problem naming the url field, nothing is stored or
// changed, and no delivery reaches the loopback listener they point at.
func TestWebhookZoneIDsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reached atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	dmn := newDaemon(t, "providers:\n  - name: lab\n    type: vsphere\n    url: https://fake.invalid/sdk\n")
	dmn.start()

	checkProblem := func(what string, status int, ct string, body []byte) {
		t.Helper()
		var p struct {
			Type   string `json:"type"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(body, &p)
		if status != http.StatusUnprocessableEntity || ct != "application/problem+json" {
			t.Fatalf("%s: %d %s %s", what, status, ct, body)
		}
		if !strings.HasPrefix(p.Detail, "url: ") || !strings.Contains(p.Detail, "zone id") || p.Type != apitypes.ProblemTypePrefix+"invalid-webhook" {
			t.Fatalf("%s: problem does not name the url field and the zone id: %s", what, body)
		}
	}
	for _, u := range zoneURLs(port) {
		status, ct, body := dmn.rawCall("POST", "/api/v1/webhooks", map[string]any{"url": u, "events": []string{"*"}})
		checkProblem("POST "+u, status, ct, body)
	}
	var list struct {
		Items []*apitypes.Endpoint `json:"items"`
	}
	if code := dmn.call("GET", "/api/v1/webhooks", nil, &list); code != 200 || len(list.Items) != 0 {
		t.Fatalf("after refusals: %d, %d endpoints stored", code, len(list.Items))
	}

	// An endpoint already accepted keeps its URL when a change is refused.
	// Its target is a public documentation address that never answers, so
	// its deliveries fail after the 1s timeout.
	const kept = "http://192.0.2.1:9/hooks"
	var created apitypes.CreatedEndpoint
	if code := dmn.call("POST", "/api/v1/webhooks", map[string]any{"url": kept, "events": []string{"*"}, "timeout": "1s", "max_retries": 0}, &created); code != 201 {
		t.Fatalf("create %s: %d", kept, code)
	}
	for _, u := range zoneURLs(port) {
		status, ct, body := dmn.rawCall("PATCH", "/api/v1/webhooks/"+created.Endpoint.ID, map[string]any{"url": u})
		checkProblem("PATCH "+u, status, ct, body)
	}
	dmn.call("GET", "/api/v1/webhooks", nil, &list)
	if len(list.Items) != 1 || list.Items[0].URL != kept {
		t.Fatalf("after refused changes: %+v", list.Items)
	}

	// Events flow (a job runs to completion); once the kept endpoint's
	// job.completed delivery has been tried, every endpoint subscribed to
	// it would have been too: none reached the loopback listener.
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "lab", "vm": "vm-001"}, &j); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	waitUntil(t, "the job's job.completed delivery to be tried", time.Minute, func() bool {
		var page struct {
			Items []*apitypes.Delivery `json:"items"`
		}
		dmn.call("GET", "/api/v1/webhooks/"+created.Endpoint.ID+"/deliveries", nil, &page)
		for _, d := range page.Items {
			if d.EventType == apitypes.EventJobCompleted && d.Attempts > 0 {
				return true
			}
		}
		return false
	})
	if n := reached.Load(); n != 0 {
		t.Fatalf("%d connections reached the loopback listener", n)
	}
}

// The configuration file gets the same guard at load, naming the key:
// zone ids in webhooks[].url and control characters in header values.
func TestConfigWebhookTargetsChecked(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"webhooks:\n  - url: \"http://[::1%25lo]:9/x\"\n    events: [\"*\"]\n", "webhooks[0].url: ::1%lo: IPv6 zone ids"},
		{"webhooks:\n  - url: \"http://[fe80::1%25eth0]/x\"\n    events: [\"*\"]\nwebhook_delivery:\n  allow_private_targets: true\n", "webhooks[0].url: fe80::1%eth0: IPv6 zone ids"},
		{"webhooks:\n  - url: http://127.0.0.1:9/x\n    events: [\"*\"]\n", "webhooks[0].url: 127.0.0.1: refusing a loopback address (set webhook_delivery.allow_private_targets: true"},
		{"webhooks:\n  - url: http://2130706433/x\n    events: [\"*\"]\n", "webhooks[0].url: 2130706433: an IPv4 address must be written as four decimal numbers"},
		{"webhooks:\n  - url: https://hooks.example.com/x\n    events: [\"*\"]\n    headers:\n      X-Token: \"SECRET-VALUE\\r\\nX-Injected: 1\"\n", "webhooks[0].headers: value of header X-Token: contains a control character"},
	} {
		path := filepath.Join(t.TempDir(), "hypervisord.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"--check-config", "--config", path}, &out, &errOut, testRegistry())
		if code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("exit %d, stderr %q; want %q", code, errOut.String(), tc.want)
		}
		if strings.Contains(errOut.String()+out.String(), "SECRET-VALUE") {
			t.Errorf("a header value was printed: %s", errOut.String())
		}
	}
}
