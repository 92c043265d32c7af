package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
	"github.com/hypersdk/hypersdk/client/clienttest"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// syncBuffer is written by the command (and mpb's render goroutine) while
// a test reads it.
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

// harness runs hyperctl in process against a real API.
type harness struct {
	t   *testing.T
	srv *clienttest.Server
	// vars is the environment hyperctl sees.
	vars map[string]string
	// dataDir is what hyperctl takes for the local daemon's default data
	// directory (empty unless a test fills it).
	dataDir string
	wrap    func(http.RoundTripper) http.RoundTripper
	tty     bool
	// timeout bounds each run (0: 30s).
	timeout time.Duration
}

func newHarness(t *testing.T, o clienttest.Options) *harness {
	t.Helper()
	srv := clienttest.NewServer(t, o)
	return &harness{t: t, srv: srv, dataDir: t.TempDir(), vars: map[string]string{
		"HYPERSDK_SERVER": srv.URL, "HYPERSDK_TOKEN": clienttest.OperatorToken,
	}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (h *harness) env(stdout, stderr io.Writer) *env {
	return &env{
		stdout: stdout, stderr: stderr,
		getenv:         func(k string) string { return h.vars[k] },
		defaultDataDir: func() string { return h.dataDir },
		isTerminal:     func(io.Writer) bool { return h.tty },
		wrapTransport:  h.wrap,
		pollInterval:   10 * time.Millisecond,
		retry:          backoff.Policy{Base: time.Millisecond, Max: 10 * time.Millisecond},
		now:            time.Now,
	}
}

func (h *harness) run(args ...string) result {
	h.t.Helper()
	timeout := h.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr syncBuffer
	code := run(ctx, args, h.env(&stdout, &stderr))
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (r result) expect(t *testing.T, code int, want ...string) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	all := r.stdout + r.stderr
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Fatalf("output lacks %q\nstdout:\n%s\nstderr:\n%s", w, r.stdout, r.stderr)
		}
	}
	return r
}

func (h *harness) client(token string) *client.Client {
	h.t.Helper()
	c, err := client.New(h.srv.URL, client.Options{Token: token})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) submit(vm string) *apitypes.Job {
	h.t.Helper()
	r := h.run("jobs", "submit", "--provider", "lab", "--vm", vm, "-o", "json").expect(h.t, 0)
	var j apitypes.Job
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		h.t.Fatalf("submit -o json: %v\n%s", err, r.stdout)
	}
	return &j
}

func (h *harness) waitState(id string, want apitypes.JobState) *apitypes.Job {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := h.client(clienttest.ViewerToken).GetJob(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if j.State == want {
			return j
		}
		if j.State.Terminal() || time.Now().After(deadline) {
			h.t.Fatalf("job %s is %s, want %s", id, j.State, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// blockExports makes every export wait until release is closed.
func blockExports(release <-chan struct{}) clienttest.Options {
	return clienttest.Options{Fake: func(f *providertest.Fake) {
		f.BeforeExport = func(ctx context.Context, vm string) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}}
}

// gateVM makes exports of one VM wait until release is closed.
func gateVM(name string, release <-chan struct{}) clienttest.Options {
	return clienttest.Options{Fake: func(f *providertest.Fake) {
		f.BeforeExport = func(ctx context.Context, vm string) error {
			if vm != name {
				return nil
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}}
}

// waitOutput waits until buf holds want.
func waitOutput(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q:\n%s", want, buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSubmitWaitSucceeds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := newHarness(t, gateVM("vm-001", release))
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"jobs", "submit", "--provider", "lab", "--vm", "/DC0/vm/vm-001",
			"--output", "web", "--format", "ovf", "--parallel", "2", "--wait"}, h.env(&stdout, &stderr))
	}()
	// Without a terminal, progress comes as plain lines on stderr.
	waitOutput(t, &stderr, "submitted: lab /DC0/vm/vm-001 -> "+filepath.Join(h.srv.ExportDir, "web"))
	waitOutput(t, &stderr, ": running, ")
	if stdout.String() != "" {
		t.Fatalf("stdout before the job ended: %q", stdout.String())
	}
	close(release)
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	result{stdout: stdout.String(), stderr: stderr.String()}.expect(t, 0, ": succeeded", "succeeded: lab /DC0/vm/vm-001",
		"4 file(s), 1.5 MiB", "manifest: "+filepath.Join(h.srv.ExportDir, "web", "vm-001.mf"))

	// The same through `export`, with the live bar.
	h.tty = true
	r := h.run("export", "--provider", "lab", "--vm", "vm-002", "--output", "vm2", "--format", "ova", "--wait").expect(t, 0, "succeeded: lab vm-002")
	if !strings.Contains(r.stderr, "1.5 MiB / 1.5 MiB") || !strings.Contains(r.stderr, "100.0%") {
		t.Fatalf("progress bar did not end full:\n%s", r.stderr)
	}
	h.tty = false

	// -o json prints the final job.
	j := h.submit("vm-003")
	r = h.run("jobs", "watch", j.ID, "-o", "json").expect(t, 0)
	var final apitypes.Job
	if err := json.Unmarshal([]byte(r.stdout), &final); err != nil || final.State != apitypes.JobSucceeded || final.Result == nil {
		t.Fatalf("watch -o json: %v\n%s", err, r.stdout)
	}
}

func TestSubmitWaitFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	h.srv.Fake.FailNext("vm-003", providers.Permanent(errors.New("disk 2 is locked by another task")))
	r := h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-003", "--wait")
	r.expect(t, 1, "failed after 1 of 3 attempt(s) (permanent): ", "disk 2 is locked by another task")
	if strings.Contains(r.stdout, "succeeded") {
		t.Fatalf("stdout claims success:\n%s", r.stdout)
	}
	list, err := h.client(clienttest.ViewerToken).ListJobs(context.Background(), apitypes.JobFilter{VM: "vm-003"})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("jobs of vm-003: %v %+v", err, list)
	}
	h.tty = true
	h.run("jobs", "watch", list.Items[0].ID).expect(t, 1, "disk 2 is locked")
	h.tty = false
	r = h.run("jobs", "watch", list.Items[0].ID, "-o", "json").expect(t, 1, "disk 2 is locked")
	var j apitypes.Job
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.State != apitypes.JobFailed {
		t.Fatalf("watch -o json of a failed job: %v\n%s", err, r.stdout)
	}

	// retry runs the failed job again as a new one; a job that did not
	// fail cannot be retried, and the error says its state.
	r = h.run("jobs", "retry", j.ID, "--wait", "-o", "json").expect(t, 0)
	var again apitypes.Job
	if err := json.Unmarshal([]byte(r.stdout), &again); err != nil || again.ID == j.ID || again.State != apitypes.JobSucceeded || again.VM != "vm-003" {
		t.Fatalf("retry --wait: %v\n%s", err, r.stdout)
	}
	h.run("jobs", "retry", again.ID).expect(t, 1, "job "+again.ID+" is succeeded; only failed or cancelled jobs can be retried")

	// A transient failure is retried by the daemon; waiting ends with the
	// later attempt's success.
	h.srv.Fake.FailNext("vm-000", errors.New("connection reset by vCenter"))
	h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-000", "--wait").expect(t, 0, "succeeded: lab vm-000")
	list, err = h.client(clienttest.ViewerToken).ListJobs(context.Background(), apitypes.JobFilter{VM: "vm-000"})
	if err != nil || len(list.Items) != 1 || list.Items[0].Attempt != 2 {
		t.Fatalf("jobs of vm-000: %v %+v", err, list)
	}
}

func TestListOutputs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	var ids []string
	for _, vm := range []string{"vm-000", "vm-001", "vm-002"} {
		j := h.submit(vm)
		h.waitState(j.ID, apitypes.JobSucceeded)
		ids = append(ids, j.ID)
	}

	r := h.run("jobs", "list").expect(t, 0, "ID", "STATE", "PROVIDER", "succeeded", "100%", "1.5 MiB")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], ids[2]) || !strings.HasPrefix(lines[3], ids[0]) {
		t.Fatalf("table, newest first:\n%s", r.stdout)
	}
	if col := strings.Index(lines[0], "STATE"); col < 0 || strings.Index(lines[1], "succeeded") != col {
		t.Fatalf("columns not aligned:\n%s", r.stdout)
	}

	// JSON: the API's JobList, items round-trip into apitypes.Job.
	r = h.run("jobs", "list", "-o", "json").expect(t, 0)
	var list apitypes.JobList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Items) != 3 {
		t.Fatalf("list -o json: %v\n%s", err, r.stdout)
	}
	apiJob, err := h.client(clienttest.ViewerToken).GetJob(context.Background(), ids[1])
	if err != nil {
		t.Fatal(err)
	}
	r = h.run("jobs", "get", ids[1], "-o", "json").expect(t, 0)
	var got apitypes.Job
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, r.stdout)
	}
	if !reflect.DeepEqual(&got, apiJob) {
		t.Fatalf("get -o json differs from the API's job:\n%+v\n%+v", got, apiJob)
	}

	// YAML: the same field names and values.
	r = h.run("jobs", "list", "-o", "yaml").expect(t, 0)
	var y struct {
		Items []map[string]any `yaml:"items"`
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &y); err != nil || len(y.Items) != 3 {
		t.Fatalf("list -o yaml: %v\n%s", err, r.stdout)
	}
	if y.Items[0]["id"] != ids[2] || y.Items[0]["state"] != "succeeded" || y.Items[0]["max_attempts"] != 3 {
		t.Fatalf("yaml item %v", y.Items[0])
	}
	if !strings.Contains(r.stdout, "\n    progress:\n      phase: done\n") || strings.Contains(r.stdout, "{") {
		t.Fatalf("yaml not in block style with API names:\n%s", r.stdout)
	}

	// Filters and paging.
	h.run("jobs", "list", "--limit", "1").expect(t, 0, ids[2], "More jobs match")
	r = h.run("jobs", "list", "--limit", "1", "--all", "-o", "json").expect(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Items) != 3 || list.NextCursor != "" {
		t.Fatalf("--all: %v %+v", err, list)
	}
	h.run("jobs", "list", "--state", "failed,cancelled").expect(t, 0, "No jobs found.")
	h.run("jobs", "list", "--since", "1h", "--provider", "lab", "--vm", "vm-001").expect(t, 0, ids[1])
	h.run("jobs", "list", "--until", "1h").expect(t, 0, "No jobs found.")
	h.run("jobs", "list", "--state", "bogus").expect(t, 1, "query.state[0]", "HTTP 422 validation-failed")

	h.run("jobs", "get", ids[0]).expect(t, 0, "State:", "succeeded", "FILE", "vm-000-disk1.vmdk", "manifest", "Submitted:", "by ci-operator")
}

func TestLogs(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := newHarness(t, blockExports(release))
	j := h.submit("vm-001")
	h.waitState(j.ID, apitypes.JobRunning)

	// Follow: lines arrive while the job runs, and the command ends with it.
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"jobs", "logs", "-f", j.ID}, h.env(&stdout, &stderr))
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "attempt started") {
		if time.Now().After(deadline) {
			t.Fatalf("no 'attempt started' while following:\n%s%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("follow ended (%d) while the job was running", code)
	default:
	}
	close(release)
	if code := <-done; code != 0 {
		t.Fatalf("follow exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "INFO  export succeeded") || !strings.Contains(last, "files=4") {
		t.Fatalf("last followed line %q", last)
	}

	// Non-follow: TIME LEVEL MESSAGE key=value…
	r := h.run("jobs", "logs", j.ID).expect(t, 0, "INFO  job accepted by=ci-operator provider=lab vm=vm-001")
	if r.stdout != stdout.String() {
		t.Fatalf("followed and plain logs differ:\n%s\n---\n%s", stdout.String(), r.stdout)
	}
	if _, err := time.ParseInLocation("2006-01-02 15:04:05.000", lines[0][:23], time.Local); err != nil {
		t.Fatalf("line does not start with a time: %q", lines[0])
	}

	// -o json: NDJSON of apitypes.LogLine.
	r = h.run("jobs", "logs", j.ID, "-o", "json").expect(t, 0)
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	n := 0
	for sc.Scan() {
		var l apitypes.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.ID == 0 || l.Message == "" {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		n++
	}
	if n != len(lines) {
		t.Fatalf("%d json lines, %d text lines", n, len(lines))
	}
	h.run("jobs", "logs", "no-such-job").expect(t, 1, "HTTP 404 job-not-found")
}

func TestCancelWait(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	o := blockExports(release)
	o.MaxConcurrent = 1
	h := newHarness(t, o)
	j := h.submit("vm-002")
	h.waitState(j.ID, apitypes.JobRunning)

	// With the one worker busy, this one stays queued and is cancelled at
	// once.
	q := h.submit("vm-003")
	r := h.run("jobs", "cancel", q.ID, "-o", "json").expect(t, 0)
	var got apitypes.Job
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.State != apitypes.JobCancelled {
		t.Fatalf("cancel queued: %v %s", err, r.stdout)
	}

	// A running one is stopped; --wait returns once it has.
	h.run("jobs", "cancel", j.ID, "--wait").expect(t, 0, "job "+j.ID+" cancelled")
	if got := h.waitState(j.ID, apitypes.JobCancelled); got.ErrorKind != apitypes.ErrorKindCancelled {
		t.Fatalf("job %+v", got)
	}
	h.run("jobs", "watch", j.ID).expect(t, 1, "job "+j.ID+" was cancelled: cancelled on request")

	// Deleting needs admin; the operator is told so.
	h.run("jobs", "delete", j.ID).expect(t, 1, "HTTP 403 forbidden", "needs admin", "role")
	h.vars["HYPERSDK_TOKEN"] = clienttest.AdminToken
	h.run("jobs", "delete", j.ID).expect(t, 0, "job "+j.ID+" deleted")
	h.run("jobs", "get", j.ID).expect(t, 1, "HTTP 404 job-not-found")
}

func TestTokenDiscovery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	h.vars = map[string]string{}
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("endpoint", h.srv.URL+"\n")
	write("admin.token", clienttest.AdminToken+"\n")

	// --data-dir names another daemon's directory: its endpoint and token.
	h.run("--data-dir", dir, "status").expect(t, 0, "Version:", "clienttest", "Server:", h.srv.URL)
	h.vars["HYPERSDK_DATA_DIR"] = dir
	h.run("jobs", "list").expect(t, 0)
	delete(h.vars, "HYPERSDK_DATA_DIR")

	// The default data directory of a daemon on this host, untold.
	h.dataDir = dir
	h.run("status", "-o", "json").expect(t, 0, `"version": "clienttest"`)
	// Admin token: may delete.
	j := h.submit("vm-001")
	h.waitState(j.ID, apitypes.JobSucceeded)
	h.run("jobs", "delete", j.ID).expect(t, 0, "deleted")

	// The local admin token is not sent to a server the user named that is
	// not the daemon of that directory.
	h.vars["HYPERSDK_SERVER"] = "http://192.0.2.1:8080"
	h.run("status").expect(t, 1, "no API token for http://192.0.2.1:8080", "was not used", "--data-dir "+dir)
	// …unless the data directory is named explicitly.
	h.vars["HYPERSDK_SERVER"] = h.srv.URL + "/"
	h.run("status").expect(t, 0)
	delete(h.vars, "HYPERSDK_SERVER")

	// Explicit tokens win over the file; --token warns.
	r := h.run("--token", clienttest.ViewerToken, "jobs", "delete", "x").expect(t, 1, "HTTP 403 forbidden", "from --token")
	if !strings.Contains(r.stderr, "warning: a token given with --token is visible") {
		t.Fatalf("no --token warning:\n%s", r.stderr)
	}
	tf := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tf, []byte(clienttest.ViewerToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = h.run("--token-file", tf, "jobs", "delete", "x").expect(t, 1, "HTTP 403 forbidden", "from "+tf)
	if strings.Contains(r.stderr, "warning") {
		t.Fatalf("--token-file warned:\n%s", r.stderr)
	}
	h.vars["HYPERSDK_TOKEN"] = clienttest.ViewerToken
	h.run("jobs", "delete", "x").expect(t, 1, "from HYPERSDK_TOKEN")
}

func TestMissingAndRejectedTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	delete(h.vars, "HYPERSDK_TOKEN")
	r := h.run("jobs", "list").expect(t, 1, "no API token for "+h.srv.URL, "HYPERSDK_TOKEN", "--data-dir", "--token-file")
	if !strings.Contains(r.stderr, filepath.Join(h.dataDir, "admin.token")+" does not exist") {
		t.Fatalf("message does not say which file was tried:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Fatalf("stdout %q", r.stdout)
	}

	h.vars["HYPERSDK_TOKEN"] = "not-a-valid-token-000000"
	h.run("status").expect(t, 1, "a valid bearer token is required", "HTTP 401 unauthorized", "rejected the token from HYPERSDK_TOKEN")

	h.vars["HYPERSDK_TOKEN"] = clienttest.ViewerToken
	h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-001").
		expect(t, 1, `token "ci-viewer" has role viewer; this operation needs operator`, "HTTP 403 forbidden")

	h.vars["HYPERSDK_TOKEN"] = clienttest.OperatorToken
	r = h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-001", "--compression-level", "12", "--parallel", "99")
	r.expect(t, 1, "submit lab vm-001: validation failed (HTTP 422 validation-failed)",
		"\n  --compression-level: expected number <= 9 (got 12)", "\n  --parallel: expected number <= 32")
	h.run("jobs", "submit", "--provider", "nope", "--vm", "vm-001").
		expect(t, 1, "invalid job request (HTTP 422 invalid-job-request)", "\n  --provider: "+`no provider named "nope" is configured`)
	h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-001", "--compress", "--format", "ovf").
		expect(t, 1, "compress: only OVA exports are compressed")
	if n := h.srv.JobCount(t); n != 0 {
		t.Fatalf("%d jobs created by rejected submissions", n)
	}
}

// dropFirstPOST lets the server process the first POST, then loses its
// response as a broken connection would.
type dropFirstPOST struct {
	next    http.RoundTripper
	dropped atomic.Bool
	mu      sync.Mutex
	keys    []string
}

func (d *dropFirstPOST) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost {
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
	return nil, errors.New("read tcp: connection reset by peer")
}

func TestSubmitRetryIsIdempotent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	rt := &dropFirstPOST{}
	h.wrap = func(next http.RoundTripper) http.RoundTripper { rt.next = next; return rt }
	r := h.run("export", "--provider", "lab", "--vm", "vm-001", "--output", "once", "-o", "json").expect(t, 0, "submit: ", "connection reset by peer; retrying in")
	var j apitypes.Job
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatal(err)
	}
	if len(rt.keys) != 2 || rt.keys[0] != rt.keys[1] || !strings.HasPrefix(rt.keys[0], "hsk-idem-") {
		t.Fatalf("Idempotency-Key per attempt: %q", rt.keys)
	}
	if n := h.srv.JobCount(t); n != 1 {
		t.Fatalf("%d jobs created, want 1", n)
	}
	// Each invocation has its own key: a second export is a second job.
	h.wrap = nil
	h.run("export", "--provider", "lab", "--vm", "vm-001", "--output", "twice").expect(t, 0)
	if n := h.srv.JobCount(t); n != 2 {
		t.Fatalf("%d jobs, want 2", n)
	}
	// A given key makes the repeat return the first job.
	h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-002", "--idempotency-key", "k1").expect(t, 0)
	h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-002", "--idempotency-key", "k1").expect(t, 0, "an earlier submission with this idempotency key")
	h.run("jobs", "submit", "--provider", "lab", "--vm", "vm-003", "--idempotency-key", "k1").expect(t, 1, "HTTP 409 job-conflict", "different request")
	if n := h.srv.JobCount(t); n != 3 {
		t.Fatalf("%d jobs, want 3", n)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{TLS: true})
	h.run("status").expect(t, 1, "certificate", "pass it with --cacert FILE")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	h.run("--cacert", ca, "status").expect(t, 0, "Server:", "https://")
	h.run("--insecure", "status").expect(t, 0, "clienttest")
	h.run("--cacert", filepath.Join(t.TempDir(), "missing.pem"), "status").expect(t, 2, "--cacert")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"jobz"}, `unknown command "jobz"`},
		{[]string{"jobs", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"jobs", "get"}, "takes 1 argument(s) (ID), got 0"},
		{[]string{"jobs", "submit", "--vm", "x"}, "--provider and --vm are required"},
		{[]string{"jobs", "submit", "--provider", "lab", "--vm", "x", "--snapshot", "--power-off"}, "none of the others can be"},
		{[]string{"jobs", "submit", "--provider", "lab", "--vm", "x", "--bandwidth-limit", "fast"}, "--bandwidth-limit"},
		{[]string{"jobs", "list", "--since", "yesterday"}, "--since"},
		{[]string{"jobs", "list", "--limit", "5000"}, "--limit"},
		{[]string{"export", "--provider", "lab"}, "--provider and --vm are required"},
		{[]string{"export", "--local", "--vm", "x", "--output", "o"}, "give the vCenter as --url"},
		{[]string{"export", "--local", "--url", "https://vc/sdk"}, "with --local, --vm is required"},
		{[]string{"vms", "list"}, "--provider is required"},
		{[]string{"vms", "list", "--provider", "lab", "--search", "x", "--folder", "/DC0"}, "--search cannot be combined"},
		{[]string{"-o", "xml", "status"}, "must be table, json or yaml"},
		{[]string{"status", "--timeout", "soon"}, "invalid argument"},
	} {
		r := h.run(tc.args...)
		r.expect(t, 2, tc.want, "--help' for usage")
	}
	h.run().expect(t, 0, "Available Commands")
	h.run("jobs").expect(t, 0, "submit", "watch")
	h.run("--version").expect(t, 0, "hyperctl version")
	if n := h.srv.JobCount(t); n != 0 {
		t.Fatalf("usage errors created %d jobs", n)
	}
}

func TestProvidersVMsStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	h.vars["HYPERSDK_TOKEN"] = clienttest.ViewerToken
	h.run("providers", "list").expect(t, 0, "NAME", "lab", "vsphere", "healthy", "ovf,ova,disks (vmdk,raw,qcow2,vhd,vhdx)", "snapshot, power-off, parallel")
	r := h.run("vms", "list", "--provider", "lab", "--name-glob", "vm-00[1-2]").expect(t, 0, "vm-001", "fake-002", "poweredOff", "2.0 GiB", "2 (1.5 MiB)")
	if n := strings.Count(r.stdout, "\n"); n != 3 {
		t.Fatalf("%d lines:\n%s", n, r.stdout)
	}
	h.run("vms", "list", "--provider", "lab", "--search", "fake-003").expect(t, 0, "vm-003")
	h.run("vms", "list", "--provider", "lab", "--power-state", "poweredOn").expect(t, 0, "No VMs match.")
	h.run("vms", "list", "--provider", "nope").expect(t, 1, "no provider named nope is configured (HTTP 404 provider-not-found)")

	// IDs with slashes are escaped.
	h.run("vms", "get", "--provider", "lab", "/DC0/vm/vm-001").expect(t, 0, "Name:", "vm-001", "fake-001", "Hard disk 2", "VM Network")
	r = h.run("vms", "get", "--provider", "lab", "/DC0/vm/vm-002", "-o", "json").expect(t, 0)
	var vm providers.VMInfo
	if err := json.Unmarshal([]byte(r.stdout), &vm); err != nil || vm.ID != "fake-002" || len(vm.Disks) != 2 {
		t.Fatalf("vms get -o json: %v %+v", err, vm)
	}
	h.run("vms", "get", "--provider", "lab", "/DC0/vm/none").expect(t, 1, "HTTP 404 vm-not-found")

	h.run("status").expect(t, 0, "Version:", "clienttest", "Jobs:", "0 queued", "PROVIDER", "lab", "healthy")
	r = h.run("status", "-o", "yaml").expect(t, 0, "version: clienttest", "uptime_seconds:")
	var st apitypes.Status
	r = h.run("status", "-o", "json").expect(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Node != "clienttest" {
		t.Fatalf("status json: %v %+v", err, st)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, clienttest.Options{})
	h.run("completion", "bash").expect(t, 0, "bash completion")
	h.run("completion", "zsh").expect(t, 0, "compdef")
	j := h.submit("vm-001")
	h.run("__complete", "jobs", "watch", "").expect(t, 0, j.ID)
	h.run("__complete", "jobs", "submit", "--provider", "").expect(t, 0, "lab\tvsphere")
	h.run("__complete", "jobs", "list", "--state", "").expect(t, 0, "running", "cancelled")
}

func TestLineViewAndProgressText(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	v := &lineView{w: &out, now: func() time.Time { return now }}
	eta := 3.4
	next := now.Add(20 * time.Second)
	for _, j := range []*apitypes.Job{
		{ID: "j1", State: apitypes.JobQueued, Attempt: 0, MaxAttempts: 3},
		{ID: "j1", State: apitypes.JobRunning, Attempt: 1, MaxAttempts: 3, Progress: apitypes.JobProgress{Phase: "downloading", BytesDone: 1 << 20, BytesTotal: 4 << 20, Percent: 25, RateBps: 2 << 20, ETASeconds: &eta}},
		{ID: "j1", State: apitypes.JobRunning, Attempt: 1, MaxAttempts: 3, Progress: apitypes.JobProgress{Phase: "downloading", BytesDone: 1 << 20, BytesTotal: 4 << 20, Percent: 26}}, // same tenth: no line
		{ID: "j1", State: apitypes.JobQueued, Attempt: 1, MaxAttempts: 3, Error: "connection reset", ErrorKind: "transient", NextAttemptAt: &next},
		{ID: "j1", State: apitypes.JobSucceeded, Attempt: 2, MaxAttempts: 3},
	} {
		v.update(j)
	}
	want := "job j1: queued\n" +
		"job j1: running, downloading 25.0% (1.0 MiB of 4.0 MiB, 2.0 MiB/s, ETA 3s)\n" +
		"job j1: queued, attempt 1 failed (connection reset); retrying in 20s\n" +
		"job j1: succeeded\n"
	if out.String() != want {
		t.Fatalf("lines:\n%s\nwant:\n%s", out.String(), want)
	}
	if got := progressText(&apitypes.Job{State: apitypes.JobQueued, Attempt: 1, MaxAttempts: 3, NextAttemptAt: &next}, now); got != "retry 2/3 in 20s" {
		t.Errorf("progressText = %q", got)
	}
	if got := stateText(&apitypes.Job{State: apitypes.JobRunning, CancelRequested: true}); got != "running (cancelling)" {
		t.Errorf("stateText = %q", got)
	}
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"1048576": 1 << 20, "512K": 512 << 10, "10MiB": 10 << 20, "1.5G": 3 << 29, "100MB/s": 100e6, "2 TiB": 2 << 40} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-1M", "10XB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90m": now.Add(-90 * time.Minute), "7d": now.AddDate(0, 0, -7),
		"2026-03-01T10:00:00Z": time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got := humanBytes(1536 << 20); got != "1.5 GiB" {
		t.Errorf("humanBytes = %q", got)
	}
	if got := attrValue("two words"); got != `"two words"` {
		t.Errorf("attrValue = %s", got)
	}
	if got := attrValue(float64(1572864)); got != "1572864" {
		t.Errorf("attrValue = %s", got)
	}
}
