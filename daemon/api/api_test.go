package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/api"
	"github.com/hypersdk/hypersdk/daemon/events"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/metrics"
	"github.com/hypersdk/hypersdk/daemon/scheduler"
	"github.com/hypersdk/hypersdk/daemon/stats"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
	"github.com/hypersdk/hypersdk/internal/errclass"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

const (
	viewerToken   = "viewer-token-0123456789"
	operatorToken = "operator-token-0123456789"
	adminToken    = "admin-token-0123456789abc"
	secretPW      = "vc-password-must-never-leak"
)

type testServer struct {
	*httptest.Server
	srv     *api.Server
	fake    *providertest.Fake
	engine  *jobs.Manager
	logs    *syncBuffer
	sampler *stats.Sampler
	db      *store.DB
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serverOption changes how newTestServer builds the server.
type serverOption struct {
	dashboard fs.FS
}

func newTestServer(t testing.TB, db *store.DB, opts ...func(*serverOption)) *testServer {
	t.Helper()
	var opt serverOption
	for _, o := range opts {
		o(&opt)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := providertest.NewFake("lab")
	set, err := providers.NewSet(log, &providers.Instance{Provider: fake})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.ConnectAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.API.Tokens = []config.Token{
		{Name: "ci-viewer", Role: config.RoleViewer, Token: config.NewSecret(viewerToken)},
		{Name: "ci-operator", Role: config.RoleOperator, Token: config.NewSecret(operatorToken)},
		{Name: "ci-admin", Role: config.RoleAdmin, Token: config.NewSecret(adminToken)},
	}
	tokens, err := api.NewTokens(cfg.API.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("test", "rev", log)
	hooks, err := webhooks.New(db, webhooks.Options{NodeID: "api-test", AllowPrivateTargets: true, PollInterval: 20 * time.Millisecond,
		Schedule: []time.Duration{20 * time.Millisecond}, DataDir: t.TempDir(), Logger: log, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	m.RegisterWebhooks(hooks.Pending)
	if err := hooks.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hooks.Stop(context.Background()) })
	engine, err := jobs.New(db, set, jobs.Options{
		NodeID: "api-test", Events: jobs.EventSinks{hooks, scheduler.ExecutionRecorder{}}, Jobs: cfg.Jobs, Export: cfg.Export, ExportDir: t.TempDir(),
		HeartbeatInterval: 100 * time.Millisecond, PollInterval: 50 * time.Millisecond, ProgressEvents: 100 * time.Millisecond, Logger: log, Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.RegisterJobs(engine.Counts)
	if err := engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sched := scheduler.New(db, engine, scheduler.Options{Events: hooks, Logger: log, Metrics: m})
	m.RegisterSchedules(sched.Counts)
	sampler := stats.New(db, engine, stats.Options{NodeID: "api-test", Interval: 50 * time.Millisecond, Logger: log})
	srv := api.New(api.Options{Jobs: engine, Providers: set, Webhooks: hooks, Scheduler: sched, Tokens: tokens, Metrics: m, Logger: log,
		Events: events.New(db, events.Options{}), Stats: sampler, Stream: api.StreamOptions{MaxStreams: 4, Poll: 200 * time.Millisecond},
		Dashboard:    opt.dashboard,
		MaxBodyBytes: 4096, Version: "test", NodeID: "api-test", Database: db.String(),
		Ready: func(ctx context.Context) error { return db.SQL.PingContext(ctx) }})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = engine.Stop(ctx)
	})
	return &testServer{Server: hs, srv: srv, fake: fake, engine: engine, logs: logs, sampler: sampler, db: db}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (ts *testServer) do(t *testing.T, method, path, token string, body any, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, ts.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

type problemBody struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

// text is the detail followed by each field error as "location: message".
func (p problemBody) text() string {
	s := p.Detail
	for _, e := range p.Errors {
		s += "\n" + e.Location + ": " + e.Message
	}
	return s
}

func expectProblem(t *testing.T, r response, status int, typ string) problemBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json", ct)
	}
	var p problemBody
	r.json(t, &p)
	if p.Type != apitypes.ProblemTypePrefix+typ || p.Status != status {
		t.Errorf("problem %+v, want type %s", p, typ)
	}
	return p
}

func waitJob(t *testing.T, ts *testServer, id string, want apitypes.JobState) apitypes.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var j apitypes.Job
		ts.do(t, "GET", "/api/v1/jobs/"+id, viewerToken, nil).json(t, &j)
		if j.State == want {
			return j
		}
		if j.State.Terminal() || time.Now().After(deadline) {
			t.Fatalf("job %s: %s (%s), want %s", id, j.State, j.Error, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAuthentication(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	for _, path := range []string{"/api/v1/jobs", "/api/v1/providers", "/api/v1/status", "/api/v1/openapi.json", "/api/v1/providers/lab/vms"} {
		r := ts.do(t, "GET", path, "", nil)
		expectProblem(t, r, 401, "unauthorized")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", path)
		}
		expectProblem(t, ts.do(t, "GET", path, "wrong-token-000000000", nil), 401, "unauthorized")
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := ts.do(t, "GET", path, "", nil); r.status != 200 {
			t.Errorf("%s: %d", path, r.status)
		}
	}
	// Roles.
	job := ts.do(t, "POST", "/api/v1/jobs", viewerToken, map[string]any{"provider": "lab", "vm": "vm-001"})
	expectProblem(t, job, 403, "forbidden")
	r := ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-001"})
	if r.status != 201 {
		t.Fatalf("operator submit: %d %s", r.status, r.body)
	}
	var j apitypes.Job
	r.json(t, &j)
	if j.SubmittedBy != "ci-operator" {
		t.Errorf("submitted_by %q", j.SubmittedBy)
	}
	expectProblem(t, ts.do(t, "POST", "/api/v1/jobs/"+j.ID+"/cancel", viewerToken, nil), 403, "forbidden")
	waitJob(t, ts, j.ID, apitypes.JobSucceeded)
	expectProblem(t, ts.do(t, "DELETE", "/api/v1/jobs/"+j.ID, operatorToken, nil), 403, "forbidden")
	if r := ts.do(t, "DELETE", "/api/v1/jobs/"+j.ID, adminToken, nil); r.status != 204 {
		t.Fatalf("admin delete: %d %s", r.status, r.body)
	}
}

func TestJobLifecycleOverHTTP(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ts := newTestServer(t, db)
		r := ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-002", "format": "ovf"})
		if r.status != 201 {
			t.Fatalf("submit: %d %s", r.status, r.body)
		}
		var j apitypes.Job
		r.json(t, &j)
		if r.header.Get("Location") != "/api/v1/jobs/"+j.ID {
			t.Errorf("Location %q", r.header.Get("Location"))
		}
		done := waitJob(t, ts, j.ID, apitypes.JobSucceeded)
		if done.Result == nil || len(done.Result.Files) == 0 || done.Progress.Percent != 100 {
			t.Fatalf("result %+v", done)
		}

		var list apitypes.JobList
		ts.do(t, "GET", "/api/v1/jobs?state=succeeded&provider=lab", viewerToken, nil).json(t, &list)
		if len(list.Items) != 1 || list.Items[0].ID != j.ID {
			t.Fatalf("list: %+v", list)
		}
		ts.do(t, "GET", "/api/v1/jobs?state=queued,running", viewerToken, nil).json(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("filtered list: %d items", len(list.Items))
		}
		expectProblem(t, ts.do(t, "GET", "/api/v1/jobs?state=bogus", viewerToken, nil), 422, "validation-failed")
		expectProblem(t, ts.do(t, "GET", "/api/v1/jobs?sort=id", viewerToken, nil), 422, "validation-failed")

		r = ts.do(t, "GET", "/api/v1/jobs/"+j.ID+"/logs", viewerToken, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("logs: %d %s", r.status, r.header.Get("Content-Type"))
		}
		var msgs []string
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		for sc.Scan() {
			var l apitypes.LogLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, l.Message)
		}
		if !strings.Contains(strings.Join(msgs, "|"), "export succeeded") {
			t.Errorf("log lines %v", msgs)
		}
		expectProblem(t, ts.do(t, "GET", "/api/v1/jobs/nope", viewerToken, nil), 404, "job-not-found")
		expectProblem(t, ts.do(t, "POST", "/api/v1/jobs/"+j.ID+"/cancel", operatorToken, nil), 409, "job-conflict")
	})
}

func TestLogFollowStreamsUntilJobEnds(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	release := make(chan struct{})
	ts.fake.BeforeExport = func(ctx context.Context, vm string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var j apitypes.Job
	ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-003"}).json(t, &j)
	waitJob(t, ts, j.ID, apitypes.JobRunning)
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/jobs/"+j.ID+"/logs?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l apitypes.LogLine
			_ = json.Unmarshal(sc.Bytes(), &l)
			lines <- l.Message
		}
	}()
	// Lines written so far arrive while the job is still running.
	for msg := range lines {
		if msg == "attempt started" {
			break
		}
	}
	close(release)
	var rest []string
	for msg := range lines { // ends when the server closes the stream
		rest = append(rest, msg)
	}
	if len(rest) == 0 || rest[len(rest)-1] != "export succeeded" {
		t.Fatalf("stream after release: %v", rest)
	}
}

func TestRequestValidation(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	p := expectProblem(t, ts.do(t, "POST", "/api/v1/jobs", operatorToken, `{"provider":"lab","vm":"vm-001","fromat":"ova"}`), 422, "validation-failed")
	if len(p.Errors) == 0 || !strings.Contains(p.Errors[0].Location, "fromat") {
		t.Errorf("unknown field not named: %+v", p)
	}
	p = expectProblem(t, ts.do(t, "POST", "/api/v1/jobs", operatorToken, `{"provider":"lab"}`), 422, "validation-failed")
	if !strings.Contains(string(mustJSON(p)), "vm") {
		t.Errorf("missing field not named: %+v", p)
	}
	p = expectProblem(t, ts.do(t, "POST", "/api/v1/jobs", operatorToken, `{"provider":"nope","vm":"x"}`), 422, "invalid-job-request")
	// Each problem is located at its body field, for clients to name what their user typed.
	if p.Detail != "invalid job request" || len(p.Errors) != 1 || p.Errors[0].Location != "body.provider" ||
		!strings.Contains(p.Errors[0].Message, `no provider named "nope"`) {
		t.Errorf("problem %+v", p)
	}
	expectProblem(t, ts.do(t, "POST", "/api/v1/jobs", operatorToken, `{"provider":"lab","vm":"x","format":"zip"}`), 422, "validation-failed")
	// A method the provider does not offer: "lab" has a single one.
	p = expectProblem(t, ts.do(t, "POST", "/api/v1/jobs", operatorToken, `{"provider":"lab","vm":"vm-001","method":"export-task"}`), 422, "invalid-job-request")
	if len(p.Errors) != 1 || p.Errors[0].Location != "body.method" || !strings.Contains(p.Errors[0].Message, `"export-task" is not offered`) ||
		!strings.Contains(p.Errors[0].Message, "single export method") {
		t.Errorf("unknown method: %+v", p)
	}
	big := fmt.Sprintf(`{"provider":"lab","vm":%q}`, strings.Repeat("x", 10000))
	expectProblem(t, ts.do(t, "POST", "/api/v1/jobs", operatorToken, big), 413, "body-too-large")
	expectProblem(t, ts.do(t, "POST", "/api/v1/jobs", operatorToken, `{not json`), 400, "bad-request")
	var list apitypes.JobList
	ts.do(t, "GET", "/api/v1/jobs", viewerToken, nil).json(t, &list)
	if len(list.Items) != 0 {
		t.Fatalf("bad requests created %d jobs", len(list.Items))
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestIdempotencyKeyOverHTTP(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	body := map[string]any{"provider": "lab", "vm": "vm-001"}
	a := ts.do(t, "POST", "/api/v1/jobs", operatorToken, body, "Idempotency-Key", "k-123")
	b := ts.do(t, "POST", "/api/v1/jobs", operatorToken, body, "Idempotency-Key", "k-123")
	var ja, jb apitypes.Job
	a.json(t, &ja)
	b.json(t, &jb)
	if a.status != 201 || b.status != 200 || ja.ID != jb.ID || b.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("first %d %s, retry %d %s replayed=%q", a.status, ja.ID, b.status, jb.ID, b.header.Get("Idempotent-Replayed"))
	}
	expectProblem(t, ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-002"}, "Idempotency-Key", "k-123"), 409, "job-conflict")
}

func TestProvidersAndVMs(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	var provs struct{ Items []apitypes.ProviderInfo }
	ts.do(t, "GET", "/api/v1/providers", viewerToken, nil).json(t, &provs)
	if len(provs.Items) != 1 || provs.Items[0].Name != "lab" || !provs.Items[0].Health.Healthy || len(provs.Items[0].Capabilities.Formats) == 0 {
		t.Fatalf("providers %+v", provs)
	}
	var vms struct{ Items []providers.VMInfo }
	ts.do(t, "GET", "/api/v1/providers/lab/vms?vm_name=vm-00*&power_state=poweredOff", viewerToken, nil).json(t, &vms)
	if len(vms.Items) != 4 {
		t.Fatalf("vms %d", len(vms.Items))
	}
	ts.do(t, "GET", "/api/v1/providers/lab/vms?q=VM-002", viewerToken, nil).json(t, &vms)
	if len(vms.Items) != 1 {
		t.Fatalf("search %d", len(vms.Items))
	}
	var vm providers.VMInfo
	r := ts.do(t, "GET", "/api/v1/providers/lab/vms/"+url.PathEscape("/DC0/vm/vm-001"), viewerToken, nil)
	r.json(t, &vm)
	if r.status != 200 || vm.ID != "fake-001" {
		t.Fatalf("get by path: %d %s", r.status, r.body)
	}
	expectProblem(t, ts.do(t, "GET", "/api/v1/providers/lab/vms/nope", viewerToken, nil), 404, "vm-not-found")
	expectProblem(t, ts.do(t, "GET", "/api/v1/providers/other/vms", viewerToken, nil), 404, "provider-not-found")
}

func TestMetricsRecordJobsAndRouteTemplates(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	var j apitypes.Job
	ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-001"}).json(t, &j)
	waitJob(t, ts, j.ID, apitypes.JobSucceeded)
	body := string(ts.do(t, "GET", "/metrics", "", nil).body)
	for _, want := range []string{
		`hypersdk_jobs_total{provider="lab",state="succeeded"} 1`,
		`hypersdk_jobs_submitted_total{provider="lab"} 1`,
		`hypersdk_jobs_running 0`, `hypersdk_jobs_queued 0`,
		`hypersdk_job_duration_seconds_count{provider="lab",state="succeeded"} 1`,
		`hypersdk_http_requests_total{code="200",method="GET",route="/api/v1/jobs/{id}"}`,
		`hypersdk_http_request_duration_seconds_bucket{method="POST",route="/api/v1/jobs"`,
		`hypersdk_build_info{goversion=`, `go_goroutines`, `process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var exported float64
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, `hypersdk_export_bytes_total{provider="lab"} `); ok {
			exported, _ = strconv.ParseFloat(v, 64)
		}
	}
	if exported < providertest.FakeDiskSize*3/2 {
		t.Errorf("hypersdk_export_bytes_total = %v, want at least the disk bytes %d", exported, providertest.FakeDiskSize*3/2)
	}
	if strings.Contains(body, j.ID) {
		t.Error("a raw path (job id) leaked into metric labels")
	}
}

// The OpenAPI document is valid OpenAPI 3.1 and documents exactly the
// routes the router serves.
func TestOpenAPIMatchesRouter(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	r := ts.do(t, "GET", "/api/v1/openapi.json", viewerToken, nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	doc, err := libopenapi.NewDocument(r.body)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("OpenAPI document invalid: %s (%s)", e.Message, e.Reason)
		}
	}
	var spec struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	r.json(t, &spec)
	if !strings.HasPrefix(spec.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", spec.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range spec.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	served := map[string]bool{}
	_ = chi.Walk(ts.srv.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served[method+" "+route] = true
		return nil
	})
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("served but undocumented: %v\ndocumented but not served: %v", missing, extra)
	}
	if len(served) < 12 {
		t.Fatalf("only %d routes served", len(served))
	}
}

// No token, password or secret appears in any response body or log line.
func TestSecretsNeverLeak(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	var j apitypes.Job
	ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-001"}).json(t, &j)
	waitJob(t, ts, j.ID, apitypes.JobSucceeded)
	var all []string
	for _, path := range []string{"/api/v1/jobs", "/api/v1/jobs/" + j.ID, "/api/v1/jobs/" + j.ID + "/logs", "/api/v1/providers",
		"/api/v1/status", "/api/v1/openapi.json", "/api/v1/providers/lab/vms", "/metrics"} {
		all = append(all, string(ts.do(t, "GET", path, adminToken, nil).body))
	}
	all = append(all, ts.logs.String())
	for _, s := range all {
		for _, secret := range []string{viewerToken, operatorToken, adminToken, secretPW} {
			if strings.Contains(s, secret) {
				t.Fatalf("secret %q leaked in %.200s", secret[:6], s)
			}
		}
	}
	if !strings.Contains(ts.logs.String(), `"principal":"ci-admin"`) {
		t.Error("access log does not name the principal")
	}
}

func TestWebhookEndpointsOverHTTP(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	var got sync.Mutex
	var bodies []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Lock()
		bodies = append(bodies, string(b))
		got.Unlock()
	}))
	defer rcv.Close()
	spec := map[string]any{"url": rcv.URL, "events": []string{"job.*"}, "headers": map[string]string{"Authorization": "Bearer rcv-secret-header"}}
	expectProblem(t, ts.do(t, "POST", "/api/v1/webhooks", operatorToken, spec), 403, "forbidden")
	p := expectProblem(t, ts.do(t, "POST", "/api/v1/webhooks", adminToken, map[string]any{"url": rcv.URL, "events": []string{"job.finished"}}), 422, "invalid-webhook")
	if !strings.Contains(p.Detail, "job.finished") {
		t.Errorf("detail %q", p.Detail)
	}
	r := ts.do(t, "POST", "/api/v1/webhooks", adminToken, spec)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created apitypes.CreatedEndpoint
	r.json(t, &created)
	if !strings.HasPrefix(created.Secret, "whsec_") || created.Endpoint.ID == "" {
		t.Fatalf("created %+v", created)
	}
	// The secret and header values never come back.
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + created.Endpoint.ID} {
		b := string(ts.do(t, "GET", path, viewerToken, nil).body)
		if strings.Contains(b, created.Secret) || strings.Contains(b, "rcv-secret-header") || !strings.Contains(b, `"secret_prefix"`) {
			t.Errorf("%s: %s", path, b)
		}
	}
	// A job's lifecycle reaches the receiver.
	var j apitypes.Job
	ts.do(t, "POST", "/api/v1/jobs", operatorToken, map[string]any{"provider": "lab", "vm": "vm-001"}).json(t, &j)
	waitJob(t, ts, j.ID, apitypes.JobSucceeded)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got.Lock()
		n := len(bodies)
		got.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events arrived", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var d apitypes.Delivery
	if r := ts.do(t, "POST", "/api/v1/webhooks/"+created.Endpoint.ID+"/test", operatorToken, nil); r.status != 202 {
		t.Fatalf("test: %d %s", r.status, r.body)
	} else {
		r.json(t, &d)
	}
	var list apitypes.DeliveryList
	for deadline := time.Now().Add(20 * time.Second); ; {
		ts.do(t, "GET", "/api/v1/webhooks/"+created.Endpoint.ID+"/deliveries?state=delivered", viewerToken, nil).json(t, &list)
		if len(list.Items) == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(list.Items) != 4 {
		t.Fatalf("%d delivered", len(list.Items))
	}
	var full apitypes.Delivery
	ts.do(t, "GET", "/api/v1/webhook-deliveries/"+d.ID, viewerToken, nil).json(t, &full)
	if len(full.History) != 1 || full.History[0].Status != 200 || full.EventType != "webhook.test" {
		t.Fatalf("delivery %+v", full)
	}
	var byEvent apitypes.DeliveryList
	ts.do(t, "GET", "/api/v1/webhook-events/"+d.EventID+"/deliveries", viewerToken, nil).json(t, &byEvent)
	if len(byEvent.Items) != 1 {
		t.Fatalf("event deliveries %+v", byEvent)
	}
	if r := ts.do(t, "POST", "/api/v1/webhook-deliveries/"+d.ID+"/redeliver", adminToken, nil); r.status != 202 {
		t.Fatalf("redeliver: %d %s", r.status, r.body)
	}
	var ep apitypes.Endpoint
	ts.do(t, "PATCH", "/api/v1/webhooks/"+created.Endpoint.ID, adminToken, map[string]any{"enabled": false}).json(t, &ep)
	if ep.Enabled || ep.DisabledReason == "" {
		t.Fatalf("disable: %+v", ep)
	}
	var rotated apitypes.CreatedEndpoint
	ts.do(t, "POST", "/api/v1/webhooks/"+created.Endpoint.ID+"/rotate-secret", adminToken, map[string]any{"grace": "1h"}).json(t, &rotated)
	if rotated.Secret == created.Secret || rotated.Endpoint.RotatingUntil == nil {
		t.Fatalf("rotate: %+v", rotated)
	}
	if r := ts.do(t, "DELETE", "/api/v1/webhooks/"+created.Endpoint.ID, adminToken, nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	expectProblem(t, ts.do(t, "GET", "/api/v1/webhooks/"+created.Endpoint.ID, viewerToken, nil), 404, "webhook-not-found")
	if strings.Contains(ts.logs.String(), created.Secret) || strings.Contains(ts.logs.String(), rotated.Secret) || strings.Contains(ts.logs.String(), "rcv-secret-header") {
		t.Error("a webhook secret reached the log")
	}
	metrics := string(ts.do(t, "GET", "/metrics", "", nil).body)
	if !strings.Contains(metrics, `hypersdk_webhook_deliveries_total{endpoint="`+created.Endpoint.ID+`",outcome="delivered"}`) ||
		!strings.Contains(metrics, "hypersdk_webhook_pending") || !strings.Contains(metrics, "hypersdk_webhook_delivery_duration_seconds_bucket") {
		t.Error("webhook metrics missing")
	}
}

func TestSchedulesOverHTTP(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	body := map[string]any{"name": "nightly-db", "schedule": "30 2 * * *", "timezone": "Europe/Berlin",
		"job": map[string]any{"provider": "lab", "vm": "vm-001", "format": "ova"}}
	expectProblem(t, ts.do(t, "POST", "/api/v1/schedules", viewerToken, body), 403, "forbidden")
	r := ts.do(t, "POST", "/api/v1/schedules", operatorToken, body)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var sc apitypes.Schedule
	r.json(t, &sc)
	if len(sc.NextRuns) != 5 || sc.NextRuns[0].In(mustZone(t, "Europe/Berlin")).Hour() != 2 || sc.CreatedBy != "ci-operator" {
		t.Fatalf("schedule %+v", sc)
	}
	expectProblem(t, ts.do(t, "POST", "/api/v1/schedules", operatorToken, body), 409, "schedule-conflict")
	bad := map[string]any{"name": "x", "schedule": "99 * * * *", "job": map[string]any{"provider": "nope", "vm": "v"}}
	p := expectProblem(t, ts.do(t, "POST", "/api/v1/schedules", operatorToken, bad), 422, "invalid-schedule")
	if b := string(mustJSON(p)); !strings.Contains(b, `"location":"body.schedule"`) || !strings.Contains(b, "use 5 fields") ||
		!strings.Contains(b, `"location":"body.job.provider"`) || !strings.Contains(b, `no provider named \"nope\"`) {
		t.Errorf("problem %s", b)
	}
	var prev struct{ Next []time.Time }
	ts.do(t, "POST", "/api/v1/schedules/preview", viewerToken, map[string]any{"schedule": "@hourly", "count": 3}).json(t, &prev)
	if len(prev.Next) != 3 {
		t.Fatalf("preview %+v", prev)
	}
	var x apitypes.Execution
	if r := ts.do(t, "POST", "/api/v1/schedules/nightly-db/run", operatorToken, nil); r.status != 202 {
		t.Fatalf("run: %d %s", r.status, r.body)
	} else {
		r.json(t, &x)
	}
	waitJob(t, ts, x.JobID, apitypes.JobSucceeded)
	var hist apitypes.ExecutionList
	deadline := time.Now().Add(10 * time.Second)
	for {
		ts.do(t, "GET", "/api/v1/schedules/nightly-db/history", viewerToken, nil).json(t, &hist)
		if len(hist.Items) == 1 && hist.Items[0].Status == "succeeded" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(hist.Items) != 1 || hist.Items[0].Kind != "manual" || hist.Items[0].Status != "succeeded" || hist.Items[0].DurationSeconds == nil {
		t.Fatalf("history %+v", hist.Items)
	}
	sc = apitypes.Schedule{}
	ts.do(t, "POST", "/api/v1/schedules/nightly-db/disable", operatorToken, nil).json(t, &sc)
	if sc.Enabled || sc.NextRun != nil {
		t.Fatalf("disabled %+v", sc)
	}
	ts.do(t, "PATCH", "/api/v1/schedules/nightly-db", operatorToken, map[string]any{"schedule": "@daily", "enabled": true}).json(t, &sc)
	if !sc.Enabled || sc.Schedule != "@daily" {
		t.Fatalf("patched %+v", sc)
	}
	metrics := string(ts.do(t, "GET", "/metrics", "", nil).body)
	if !strings.Contains(metrics, `hypersdk_schedules{state="enabled"} 1`) || !strings.Contains(metrics, `hypersdk_schedule_runs_total{outcome="manual",schedule="nightly-db"} 1`) {
		t.Error("schedule metrics missing")
	}
	expectProblem(t, ts.do(t, "DELETE", "/api/v1/schedules/nightly-db", operatorToken, nil), 403, "forbidden")
	if r := ts.do(t, "DELETE", "/api/v1/schedules/nightly-db", adminToken, nil); r.status != 204 {
		t.Fatalf("delete %d", r.status)
	}
	expectProblem(t, ts.do(t, "GET", "/api/v1/schedules/nightly-db", viewerToken, nil), 404, "schedule-not-found")
}

// Expressions that are not cron expressions, or that match no date, are
// refused with the reason, naming the field, and nothing is stored; a
// leap-day schedule is valid.
func TestScheduleExpressionsThatNeverRun(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	job := map[string]any{"provider": "lab", "vm": "vm-001"}
	for expr, want := range map[string]string{
		"7":                 `schedule "7": expected exactly 5 fields, found 1`,
		"0 0 31 2 *":        `schedule "0 0 31 2 *": never fires: February has no day 31`,
		"0 0 30 2 *":        `schedule "0 0 30 2 *": never fires: February has no day 30`,
		"0 0 31 4,6,9,11 *": "never fires: April, June, September and November have no day 31",
	} {
		p := expectProblem(t, ts.do(t, "POST", "/api/v1/schedules", operatorToken, map[string]any{"name": "x", "schedule": expr, "job": job}),
			422, "invalid-schedule")
		if got := p.text(); !strings.Contains(got, "\nbody.schedule: ") || !strings.Contains(got, want) {
			t.Errorf("create %q: problem %q, want %q at body.schedule", expr, got, want)
		}
		p = expectProblem(t, ts.do(t, "POST", "/api/v1/schedules/preview", viewerToken, map[string]any{"schedule": expr}), 422, "invalid-schedule")
		if got := p.text(); !strings.Contains(got, want) {
			t.Errorf("preview %q: problem %q, want %q", expr, got, want)
		}
	}
	if r := ts.do(t, "GET", "/api/v1/schedules", viewerToken, nil); !strings.Contains(string(r.body), `"items":[]`) {
		t.Fatalf("a refused schedule was stored: %s", r.body)
	}

	var sc apitypes.Schedule
	r := ts.do(t, "POST", "/api/v1/schedules", operatorToken, map[string]any{"name": "leap", "schedule": "0 0 29 2 *", "job": job})
	if r.status != 201 {
		t.Fatalf("leap day: %d %s", r.status, r.body)
	}
	r.json(t, &sc)
	if len(sc.NextRuns) != 5 || sc.NextRun == nil || sc.NextRun.Month() != time.February || sc.NextRun.Day() != 29 {
		t.Fatalf("leap day schedule %+v", sc)
	}
	// An update to a never-firing expression leaves the schedule as it was.
	p := expectProblem(t, ts.do(t, "PATCH", "/api/v1/schedules/leap", operatorToken, map[string]any{"schedule": "0 0 30 2 *"}), 422, "invalid-schedule")
	if got := p.text(); !strings.Contains(got, "body.schedule: ") || !strings.Contains(got, "never fires: February has no day 30") {
		t.Errorf("update: problem %q", got)
	}
	var got apitypes.Schedule
	ts.do(t, "GET", "/api/v1/schedules/leap", viewerToken, nil).json(t, &got)
	if got.Schedule != "0 0 29 2 *" || got.NextRun == nil || !got.NextRun.Equal(*sc.NextRun) {
		t.Fatalf("a refused update changed the schedule: %+v", got)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The providers package spells the problem slugs of its error classes out
// (apitypes imports it): they must be the ones apitypes declares.
func TestProviderErrorSlugsMatchAPITypes(t *testing.T) {
	for err, slug := range map[error]string{
		providers.ErrNotFound:        apitypes.ProblemVMNotFound,
		providers.ErrAmbiguous:       apitypes.ProblemVMAmbiguous,
		providers.ErrAuth:            apitypes.ProblemProviderAuthFailed,
		providers.ErrInvalidArgument: apitypes.ProblemInvalidArgument,
		providers.ErrNotConnected:    apitypes.ProblemProviderNotConnected,
	} {
		if got := errclass.Of(err).Slug; got != slug {
			t.Errorf("%v: slug %q, apitypes says %q", err, got, slug)
		}
	}
}
