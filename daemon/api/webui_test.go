package api_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/daemon/webui"
)

var dashboardFS = fstest.MapFS{
	"index.html":               {Data: []byte(`<!doctype html><script type="module" src="/assets/index-3f2a.js"></script>`)},
	"assets/index-3f2a.js":     {Data: []byte(`console.log("dashboard")`)},
	"assets/index-9c1d.css":    {Data: []byte(`body{margin:0}`)},
	"favicon.svg":              {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
	"assets/nested/font.woff2": {Data: []byte("wOF2")},
}

// The dashboard is served with strict security headers and the right
// caching, client routes fall back to index.html, and nothing of the
// API, the probes or the metrics is shadowed.
func TestDashboardServing(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite), func(o *serverOption) { o.dashboard = dashboardFS })
	index := string(dashboardFS["index.html"].Data)
	for _, c := range []struct {
		path, body, cache, ctype string
	}{
		{"/", index, "no-cache", "text/html"},
		{"/index.html", index, "no-cache", "text/html"},
		{"/jobs/0193-abc", index, "no-cache", "text/html"},
		{"/providers/lab/vms", index, "no-cache", "text/html"},
		{"/assets/index-3f2a.js", `console.log("dashboard")`, "public, max-age=31536000, immutable", "text/javascript"},
		{"/assets/index-9c1d.css", `body{margin:0}`, "public, max-age=31536000, immutable", "text/css"},
		{"/favicon.svg", string(dashboardFS["favicon.svg"].Data), "no-cache", "image/svg+xml"},
	} {
		r := ts.do(t, "GET", c.path, "", nil)
		if r.status != 200 || string(r.body) != c.body {
			t.Errorf("%s: %d %q", c.path, r.status, r.body)
			continue
		}
		if got := r.header.Get("Cache-Control"); got != c.cache {
			t.Errorf("%s: Cache-Control %q, want %q", c.path, got, c.cache)
		}
		if got := r.header.Get("Content-Type"); !strings.HasPrefix(got, c.ctype) {
			t.Errorf("%s: Content-Type %q, want %s", c.path, got, c.ctype)
		}
		if got := r.header.Get("Content-Security-Policy"); got != webui.ContentSecurityPolicy {
			t.Errorf("%s: CSP %q", c.path, got)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", c.path, r.header)
		}
	}
	csp := webui.ContentSecurityPolicy
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline code", csp)
	}
	// A missing hashed asset is a 404, never index.html run as a script.
	if r := ts.do(t, "GET", "/assets/index-0000.js", "", nil); r.status != 404 {
		t.Errorf("missing asset: %d %q", r.status, r.body)
	}
	// The API, probes and metrics are never the dashboard's.
	expectProblem(t, ts.do(t, "GET", "/api/v1/jobs", "", nil), 401, "unauthorized")
	expectProblem(t, ts.do(t, "GET", "/api/v1/no-such-thing", viewerToken, nil), 404, "not-found")
	expectProblem(t, ts.do(t, "GET", "/api/v2/jobs", "", nil), 404, "not-found")
	expectProblem(t, ts.do(t, "GET", "/api", "", nil), 404, "not-found")
	expectProblem(t, ts.do(t, "DELETE", "/api/v1/status", adminToken, nil), 405, "method-not-allowed")
	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`, "/metrics": "# HELP"} {
		if r := ts.do(t, "GET", path, "", nil); r.status != 200 || !strings.Contains(string(r.body), want) {
			t.Errorf("%s: %d %.80q", path, r.status, r.body)
		}
	}
	expectProblem(t, ts.do(t, "GET", "/metrics/extra", "", nil), 404, "not-found")
	if r := ts.do(t, "POST", "/jobs", "", nil); r.status != 405 {
		t.Errorf("POST to a dashboard path: %d", r.status)
	}
}

// Without a dashboard, / points at the API and other paths are 404s.
func TestNoDashboard(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	r := ts.do(t, "GET", "/", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"openapi":"/api/v1/openapi.json"`) {
		t.Fatalf("/: %d %s", r.status, r.body)
	}
	expectProblem(t, ts.do(t, "GET", "/jobs/x", "", nil), 404, "not-found")
	expectProblem(t, ts.do(t, "GET", "/api/v1/nope", "", nil), 404, "not-found")
}
