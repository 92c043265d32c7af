package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

var fastRetry = backoff.Policy{Base: time.Millisecond, Max: 5 * time.Millisecond}

func newClient(t *testing.T, srv *clienttest.Server, token string, mod ...func(*client.Options)) *client.Client {
	t.Helper()
	o := client.Options{Token: token, Timeout: 10 * time.Second, Backoff: fastRetry}
	for _, m := range mod {
		m(&o)
	}
	c, err := client.New(srv.URL, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSubmitWatchAndList(t *testing.T) {
	t.Parallel()
	srv := clienttest.NewServer(t, clienttest.Options{})
	c := newClient(t, srv, clienttest.OperatorToken)
	sub, err := c.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "/DC0/vm/vm-001", Output: "out1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	// The engine may already have claimed the job when the answer is read.
	if sub.Replayed || sub.Attempts != 1 || !strings.HasPrefix(sub.IdempotencyKey, "hsk-idem-") || sub.Job.State.Terminal() {
		t.Fatalf("submission %+v", sub)
	}
	var snapshots int
	final, err := c.WatchJob(ctx(t), sub.Job.ID, 10*time.Millisecond, func(*apitypes.Job) { snapshots++ })
	if err != nil {
		t.Fatal(err)
	}
	if final.State != apitypes.JobSucceeded || final.Result == nil || len(final.Result.Files) != 4 || snapshots == 0 {
		t.Fatalf("final %+v after %d snapshots", final, snapshots)
	}

	// The same key again returns the same job.
	again, err := c.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "/DC0/vm/vm-001", Output: "out1"}, sub.IdempotencyKey)
	if err != nil || !again.Replayed || again.Job.ID != sub.Job.ID {
		t.Fatalf("replay: %+v %v", again, err)
	}

	for i := range 4 {
		if _, err := c.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: fmt.Sprintf("vm-%03d", i)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.ListJobs(ctx(t), apitypes.JobFilter{Limit: 2})
	if err != nil || len(page.Items) != 2 || page.NextCursor == "" {
		t.Fatalf("page %+v %v", page, err)
	}
	var ids []string
	for j, err := range c.AllJobs(ctx(t), apitypes.JobFilter{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	if len(ids) != 5 {
		t.Fatalf("AllJobs: %d jobs, want 5", len(ids))
	}
	page, err = c.ListJobs(ctx(t), apitypes.JobFilter{States: []apitypes.JobState{apitypes.JobSucceeded}, VM: "/DC0/vm/vm-001",
		CreatedAfter: time.Now().Add(-time.Hour)})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != sub.Job.ID {
		t.Fatalf("filtered: %+v %v", page, err)
	}

	// Deleting needs admin.
	err = c.DeleteJob(ctx(t), sub.Job.ID)
	if !client.IsProblem(err, "forbidden") || client.StatusOf(err) != 403 {
		t.Fatalf("operator delete: %v", err)
	}
	admin := newClient(t, srv, clienttest.AdminToken)
	if err := admin.DeleteJob(ctx(t), sub.Job.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetJob(ctx(t), sub.Job.ID); !client.IsProblem(err, "job-not-found") {
		t.Fatalf("get deleted: %v", err)
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	srv := clienttest.NewServer(t, clienttest.Options{})

	_, err := newClient(t, srv, "").Status(ctx(t))
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 401 || p.Slug() != "unauthorized" || !strings.Contains(p.Error(), "bearer token is required") {
		t.Fatalf("no token: %v", err)
	}
	_, err = newClient(t, srv, clienttest.ViewerToken).SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "vm-001"}, "")
	if !client.IsProblem(err, "forbidden") || !strings.Contains(err.Error(), "needs operator") {
		t.Fatalf("viewer submit: %v", err)
	}
	op := newClient(t, srv, clienttest.OperatorToken)
	_, err = op.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "vm-001", CompressionLevel: new(12)}, "")
	if !errors.As(err, &p) || p.Status != 422 || len(p.FieldErrors()) == 0 || !strings.Contains(p.FieldErrors()[0], "body.compression_level") {
		t.Fatalf("invalid level: %v", err)
	}
	if want := "(HTTP 422 validation-failed)"; !strings.HasSuffix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Error() = %q, want one line ending %q", err, want)
	}
	_, err = op.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "nope", VM: "vm-001"}, "")
	if !client.IsProblem(err, "invalid-job-request") || !strings.Contains(err.Error(), `no provider named "nope"`) {
		t.Fatalf("unknown provider: %v", err)
	}
	if _, err := op.ListVMs(ctx(t), "other", providers.VMFilter{}); !client.IsProblem(err, "provider-not-found") {
		t.Fatalf("unknown provider vms: %v", err)
	}
	if sub, err := op.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "vm-000"}, ""); err != nil {
		t.Fatal(err)
	} else if _, err := op.WatchJob(ctx(t), sub.Job.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	} else if _, err := op.CancelJob(ctx(t), sub.Job.ID); !client.IsProblem(err, "job-conflict") {
		t.Fatalf("cancel finished job: %v", err)
	}
}

func TestNonProblemErrorBody(t *testing.T) {
	t.Parallel()
	// A reverse proxy in front of the daemon answering with its own page.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>")
	}))
	defer proxy.Close()
	c, err := client.New(proxy.URL+"/hypersdk/", client.Options{Token: "x", SubmitAttempts: 2, Backoff: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Providers(ctx(t))
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 502 || p.Slug() != "" || !strings.Contains(p.Detail, "nginx") || strings.Contains(p.Error(), "\n") {
		t.Fatalf("got %v", err)
	}
	_, err = c.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "x"}, "")
	if err == nil || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Fatalf("submit through a failing proxy: %v", err)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"127.0.0.1:8080", "ftp://host", "http://user:pw@host", "http://host/?x=1", "http://"} {
		if _, err := client.New(u, client.Options{}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

// dropFirst forwards requests matching match to the real transport, lets
// the server process the first one completely, then reports a connection
// failure instead of its response.
type dropFirst struct {
	next    http.RoundTripper
	match   func(*http.Request) bool
	dropped atomic.Bool
	mu      sync.Mutex
	keys    []string
}

func (d *dropFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	if !d.match(r) {
		return d.next.RoundTrip(r)
	}
	d.mu.Lock()
	d.keys = append(d.keys, r.Header.Get("Idempotency-Key"))
	d.mu.Unlock()
	resp, err := d.next.RoundTrip(r)
	if err != nil || d.dropped.Swap(true) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, errors.New("read: connection reset by peer (injected after the server answered)")
}

func TestSubmitRetryCreatesOneJob(t *testing.T) {
	t.Parallel()
	srv := clienttest.NewServer(t, clienttest.Options{})
	rt := &dropFirst{next: http.DefaultTransport, match: func(r *http.Request) bool { return r.Method == "POST" }}
	var retries []string
	c := newClient(t, srv, clienttest.OperatorToken, func(o *client.Options) {
		o.Transport = rt
		o.OnRetry = func(op string, attempt int, err error, d time.Duration) {
			retries = append(retries, fmt.Sprintf("%s#%d: %v", op, attempt, err))
		}
	})
	sub, err := c.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "vm-002"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Attempts != 2 || !sub.Replayed {
		t.Fatalf("attempts %d replayed %v", sub.Attempts, sub.Replayed)
	}
	if len(rt.keys) != 2 || rt.keys[0] != rt.keys[1] || rt.keys[0] == "" {
		t.Fatalf("Idempotency-Keys sent: %q", rt.keys)
	}
	if len(retries) != 1 || !strings.Contains(retries[0], "submit#1") {
		t.Fatalf("OnRetry calls: %q", retries)
	}
	if n := srv.JobCount(t); n != 1 {
		t.Fatalf("%d jobs created, want 1", n)
	}
}

// failGets fails the first n GETs of a job at the transport level, as a
// daemon restart would.
type failGets struct {
	next http.RoundTripper
	left atomic.Int32
}

func (f *failGets) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "GET" && f.left.Add(-1) >= 0 {
		return nil, errors.New("dial tcp: connection refused (injected)")
	}
	return f.next.RoundTrip(r)
}

func TestWatchSurvivesConnectionFailures(t *testing.T) {
	t.Parallel()
	srv := clienttest.NewServer(t, clienttest.Options{})
	rt := &failGets{next: http.DefaultTransport}
	c := newClient(t, srv, clienttest.OperatorToken, func(o *client.Options) { o.Transport = rt })
	sub, err := c.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "vm-003"}, "")
	if err != nil {
		t.Fatal(err)
	}
	rt.left.Store(3)
	final, err := c.WatchJob(ctx(t), sub.Job.ID, 10*time.Millisecond, nil)
	if err != nil || final.State != apitypes.JobSucceeded {
		t.Fatalf("watch: %+v %v", final, err)
	}
	// A gone job is not retried.
	if _, err := c.WatchJob(ctx(t), "no-such-job", 10*time.Millisecond, nil); !client.IsProblem(err, "job-not-found") {
		t.Fatalf("watch missing job: %v", err)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := clienttest.NewServer(t, clienttest.Options{Fake: func(f *providertest.Fake) {
		f.BeforeExport = func(ctx context.Context, vm string) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}})
	c := newClient(t, srv, clienttest.ViewerToken)
	op := newClient(t, srv, clienttest.OperatorToken)
	sub, err := op.SubmitJob(ctx(t), apitypes.JobRequest{Provider: "lab", VM: "vm-001"}, "")
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan apitypes.LogLine, 100)
	done := make(chan error, 1)
	go func() {
		done <- c.JobLogs(ctx(t), sub.Job.ID, client.LogOptions{Follow: true}, func(l apitypes.LogLine) error {
			lines <- l
			return nil
		})
	}()
	for l := range lines {
		if l.Message == "attempt started" {
			break
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(lines)
	var last apitypes.LogLine
	for l := range lines {
		last = l
	}
	if last.Message != "export succeeded" {
		t.Fatalf("last followed line %q", last.Message)
	}

	// Non-follow, after a given line; and a callback error stops the stream.
	var all []apitypes.LogLine
	if err := c.JobLogs(ctx(t), sub.Job.ID, client.LogOptions{}, func(l apitypes.LogLine) error { all = append(all, l); return nil }); err != nil {
		t.Fatal(err)
	}
	var rest []apitypes.LogLine
	if err := c.JobLogs(ctx(t), sub.Job.ID, client.LogOptions{After: all[0].ID}, func(l apitypes.LogLine) error { rest = append(rest, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) < 3 || len(rest) != len(all)-1 {
		t.Fatalf("all %d lines, after the first %d", len(all), len(rest))
	}
	stop := errors.New("enough")
	if err := c.JobLogs(ctx(t), sub.Job.ID, client.LogOptions{Follow: true}, func(apitypes.LogLine) error { return stop }); err != stop {
		t.Fatalf("callback error: %v", err)
	}
}

func TestProvidersVMsStatus(t *testing.T) {
	t.Parallel()
	srv := clienttest.NewServer(t, clienttest.Options{})
	c := newClient(t, srv, clienttest.ViewerToken)
	provs, err := c.Providers(ctx(t))
	if err != nil || len(provs) != 1 || provs[0].Name != "lab" || !provs[0].Health.Healthy {
		t.Fatalf("providers %+v %v", provs, err)
	}
	vms, err := c.ListVMs(ctx(t), "lab", providers.VMFilter{Name: "vm-00[12]", PowerState: providers.PowerOff, FolderPrefix: "/DC0/vm"})
	if err != nil || len(vms) != 2 {
		t.Fatalf("list %d %v", len(vms), err)
	}
	found, err := c.SearchVMs(ctx(t), "lab", "VM-003")
	if err != nil || len(found) != 1 || found[0].Name != "vm-003" {
		t.Fatalf("search %+v %v", found, err)
	}
	vm, err := c.GetVM(ctx(t), "lab", "/DC0/vm/vm-002")
	if err != nil || vm.ID != "fake-002" {
		t.Fatalf("get by inventory path: %+v %v", vm, err)
	}
	if _, err := c.GetVM(ctx(t), "lab", "../../jobs"); !client.IsProblem(err, "vm-not-found") {
		t.Fatalf("get odd id: %v", err)
	}
	st, err := c.Status(ctx(t))
	if err != nil || st.Version != "clienttest" || len(st.Providers) != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
}
