package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/iterator"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/internal/s3test"
)

// TestDemoExportToS3ThroughTheDaemon submits a demo export with an s3://
// output to a daemon whose output_targets name versitygw: the files land
// there (verified by downloading them and checking the manifest), no
// upload is left open, and the secret key shows nowhere. An output no
// target serves is refused naming the field.
func TestDemoExportToS3ThroughTheDaemon(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.CreateBucket(t, "exports")
	cfg := `output_targets:
  - name: versitygw
    url: s3://exports/
    endpoint: ` + srv.URL + `
    allow_private: true
    region: ` + srv.Region + `
    access_key_id: ` + srv.AccessKeyID + `
    secret_access_key: {env: TEST_S3_SECRET}
    path_style: true
`
	dmn := newDaemon(t, cfg, "HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_S3_SECRET="+srv.SecretAccessKey)
	dmn.start("--demo")

	var problem map[string]any
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "/DC0/vm/production/db/db-01",
		"output": "s3://elsewhere/x/"}, &problem); code != 422 && code != 400 {
		t.Fatalf("an output no target serves: %d %v", code, problem)
	}
	if b, _ := json.Marshal(problem); !strings.Contains(string(b), `"location":"body.output"`) || !strings.Contains(string(b), "no output target") {
		t.Errorf("the refusal does not name the output field: %s", b)
	}

	// The NFC disk streams into the upload: no staged copy (<disk>.src)
	// or part file ever appears in the export directory.
	watchDone := make(chan struct{})
	watched := make(chan watchResult, 1)
	go func() { watched <- watchTree(filepath.Join(dmn.dataDir, "exports"), watchDone) }()
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "/DC0/vm/production/db/db-01",
		"output": "s3://exports/demo/db-01/"}, &j); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s", j.State)
		}
		time.Sleep(100 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
	}
	close(watchDone)
	w := <-watched
	for _, name := range w.names {
		if strings.HasSuffix(name, ".src") || strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".vmdk") {
			t.Errorf("%s appeared in the export directory: a disk was staged locally (seen: %v)", name, w.names)
		}
	}
	if w.most > 64<<10 {
		t.Errorf("the export directory held %d bytes at once (seen: %v)", w.most, w.names)
	}
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
	}
	if j.Result.OutputDir != "s3://exports/demo/db-01/" {
		t.Errorf("result output %q", j.Result.OutputDir)
	}
	dir := t.TempDir()
	c := srv.Client()
	for _, key := range srv.Keys(t, "exports") {
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("exports"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimPrefix(key, "demo/db-01/")), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sha256sum", "-c", j.Result.Manifest)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c of the downloaded objects: %v\n%s", err, out)
	}
	ups, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String("exports")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) > 0 {
		t.Errorf("%d uploads left open", len(ups.Uploads))
	}
	var raw json.RawMessage
	dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &raw)
	for what, text := range map[string]string{"daemon output": dmn.out.String(), "job": string(raw)} {
		if strings.Contains(text, srv.SecretAccessKey) {
			t.Errorf("the secret key shows in the %s", what)
		}
	}
}

// TestDemoOutputTarget: --demo serves s3://demo-exports/ in process, and
// an OVA export to it succeeds.
func TestDemoOutputTarget(t *testing.T) {
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	if !strings.Contains(dmn.out.String(), "--output s3://demo-exports/") {
		t.Errorf("the demo help does not show the object-storage output:\n%s", dmn.out.String())
	}
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "/DC0/vm/production/db/db-01",
		"format": "ova", "output": "s3://demo-exports/db-01/"}, &j); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s", j.State)
		}
		time.Sleep(100 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
	}
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
	}
	if j.Result.OutputDir != "s3://demo-exports/db-01/" || j.Result.OVAPath != "db-01.ova" {
		t.Errorf("result output %q, OVA %q", j.Result.OutputDir, j.Result.OVAPath)
	}
}

// partGate is a proxy in front of an object store that forwards the
// first limit part uploads (isPart) and holds every later one until
// released (a held request belongs to the attempt that is killed while it
// waits).
type partGate struct {
	url  string
	mu   sync.Mutex
	sent int
	held int
	open chan struct{}
}

func newPartGate(t *testing.T, target string, limit int, isPart func(*http.Request) bool) *partGate {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &partGate{open: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPart(r) {
			g.mu.Lock()
			closed := g.sent >= limit
			if closed {
				g.held++
			} else {
				g.sent++
			}
			g.mu.Unlock()
			if closed {
				select {
				case <-g.open:
				case <-r.Context().Done():
				}
				http.Error(w, "held at the gate", http.StatusServiceUnavailable)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *partGate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// sweepStore is an object store the sweep test exports to, through a
// gate: the output target's configuration, and what is left under a
// prefix (objects, and uploads left open, which are objects too on GCS).
type sweepStore struct {
	config string
	env    []string
	left   func(t *testing.T, prefix string) []string
}

func startSweepStore(t *testing.T, scheme string) (*sweepStore, *partGate) {
	switch scheme {
	case "s3":
		srv := s3test.Start(t, s3test.Options{})
		srv.CreateBucket(t, "exports")
		gate := newPartGate(t, srv.URL, 2, func(r *http.Request) bool {
			q := r.URL.Query()
			return r.Method == http.MethodPut && q.Get("partNumber") != "" && q.Get("uploadId") != ""
		})
		return &sweepStore{
			config: `output_targets:
  - name: versitygw
    url: s3://exports/
    endpoint: ` + gate.url + `
    allow_private: true
    region: ` + srv.Region + `
    access_key_id: ` + srv.AccessKeyID + `
    secret_access_key: {env: TEST_S3_SECRET}
    path_style: true
`,
			env: []string{"TEST_S3_SECRET=" + srv.SecretAccessKey},
			left: func(t *testing.T, prefix string) []string {
				left := openUploadKeys(t, srv.Client(), "exports")
				for _, k := range srv.Keys(t, "exports") {
					if strings.HasPrefix(k, prefix) {
						left = append(left, k)
					}
				}
				return left
			},
		}, gate
	case "gs":
		fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Writer: io.Discard})
		if err != nil {
			t.Fatalf("fake-gcs-server: %v", err)
		}
		t.Cleanup(fake.Stop)
		fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "exports"})
		gate := newPartGate(t, fake.URL(), 2, func(r *http.Request) bool {
			return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/upload/") && strings.Contains(r.URL.Query().Get("name"), ".parts/")
		})
		return &sweepStore{
			config: `output_targets:
  - name: fake-gcs
    url: gs://exports/
    endpoint: ` + gate.url + `/storage/v1/
    allow_private: true
    anonymous: true
`,
			left: func(t *testing.T, prefix string) []string {
				var names []string
				it := fake.Client().Bucket("exports").Objects(context.Background(), &storage.Query{Prefix: prefix})
				for {
					a, err := it.Next()
					if errors.Is(err, iterator.Done) {
						return names
					}
					if err != nil {
						t.Fatal(err)
					}
					names = append(names, a.Name)
				}
			},
		}, gate
	}
	t.Fatalf("no store %s", scheme)
	return nil, nil
}

// TestObjectStorageUploadsSweptAfterKill: a daemon killed with SIGKILL in
// the middle of an export's upload (S3 multipart upload to versitygw; GCS
// part objects to fake-gcs-server) leaves the upload open and its state in
// the job's directory; the restarted daemon fails the job (no attempt
// left: no export runs to abort anything), and the leader's sweep aborts
// the upload, deletes what the export wrote and forgets the state,
// counted in the orphan metrics and told in the job's log.
func TestObjectStorageUploadsSweptAfterKill(t *testing.T) {
	for _, scheme := range []string{"s3", "gs"} {
		t.Run(scheme, func(t *testing.T) { testUploadsSweptAfterKill(t, scheme) })
	}
}

func testUploadsSweptAfterKill(t *testing.T, scheme string) {
	st, gate := startSweepStore(t, scheme)
	dmn := newDaemon(t, st.config, append([]string{"HYPERVISORD_TEST_REAL_PROVIDERS=1"}, st.env...)...)
	dmn.start("--demo")
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "/DC0/vm/dev/dev-ubuntu-01",
		"format": "disks", "disk_format": "raw", "output": scheme + "://exports/dev/", "max_attempts": 1}, &j); code != 201 {
		t.Fatalf("submit: %d\n%s", code, dmn.out.String())
	}
	stateDir := filepath.Join(dmn.dataDir, "exports", j.ID)
	// Killed once two parts of the 128 MiB disk are recorded and the
	// third waits at the gate.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if gate.waiting() > 0 && len(recordedPartsIn(t, stateDir)) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			var now apitypes.Job
			dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &now)
			t.Fatalf("the export (%s) did not reach its third part within 3 minutes\n%s", now.State, dmn.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	dmn.kill()
	close(gate.open)
	if left := st.left(t, "dev/"); len(left) == 0 {
		t.Fatal("nothing left after the kill: the test proves nothing")
	}

	dmn.start("--demo")
	deadline = time.Now().Add(2 * time.Minute)
	for {
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
		left := st.left(t, "dev/")
		states, _ := filepath.Glob(filepath.Join(stateDir, "*.upload.json"))
		if j.State.Terminal() && len(left) == 0 && len(states) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s; left in the store %v, state files %v: not swept\n%s", j.State, left, states, dmn.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if j.State != apitypes.JobFailed {
		t.Errorf("job %s after the restart, want failed (no attempt left)", j.State)
	}
	if _, _, b := dmn.rawCall("GET", "/api/v1/jobs/"+j.ID+"/logs", nil); !strings.Contains(string(b), "removed what the export's uploads left in object storage") ||
		!strings.Contains(string(b), scheme+"://exports/dev/dev-ubuntu-01-disk-0.raw") {
		t.Errorf("the job's log does not tell the sweep: %s", b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", dmn.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+dmn.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Every object the killed attempt had started is counted: the disk
	// and any other file that streamed alongside it.
	for _, want := range []string{`hypersdk_orphans_deleted_total{provider="output_targets"} [1-9]`,
		`hypersdk_orphan_sweeps_total{outcome="ok",provider="output_targets"} [1-9]`} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want[:strings.LastIndex(want, " ")]) + ` [1-9]`).Match(body) {
			t.Errorf("metrics lack %s; they have:\n%s", want, grepLines(string(body), "hypersdk_orphan"))
		}
	}
}

// recordedPartsIn lists the parts the upload state files in dir record.
func recordedPartsIn(t *testing.T, dir string) []int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.upload.json"))
	var ns []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // being replaced
		}
		var st struct {
			Parts []struct {
				N int `json:"n"`
			} `json:"parts"`
		}
		if json.Unmarshal(b, &st) == nil {
			for _, p := range st.Parts {
				ns = append(ns, p.N)
			}
		}
	}
	return ns
}

func openUploadKeys(t *testing.T, c *s3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// watchResult is what watchTree saw: every file name, and the most bytes
// the files held at once.
type watchResult struct {
	names []string
	most  int64
}

// watchTree polls dir (which may not exist yet) until done.
func watchTree(dir string, done <-chan struct{}) watchResult {
	seen := map[string]bool{}
	var res watchResult
	for {
		var n int64
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
			if name := filepath.Base(path); !seen[name] {
				seen[name] = true
				res.names = append(res.names, name)
			}
			return nil
		})
		res.most = max(res.most, n)
		select {
		case <-done:
			return res
		case <-time.After(time.Millisecond):
		}
	}
}

// TestDemoAWSExportTaskToS3StagesNothing: the AWS demo's VM Export object
// (an OVA in its in-process S3, its VMDK member read in ranges) streams
// into an object-storage output with nothing staged in the export
// directory.
func TestDemoAWSExportTaskToS3StagesNothing(t *testing.T) {
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	watchDone := make(chan struct{})
	watched := make(chan watchResult, 1)
	go func() { watched <- watchTree(filepath.Join(dmn.dataDir, "exports"), watchDone) }()
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": demoAWSProvider, "vm": "db-1", "method": "export-task",
		"format": "disks", "disk_format": "qcow2", "output": "s3://demo-exports/db-1/"}, &j); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s", j.State)
		}
		time.Sleep(100 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
	}
	close(watchDone)
	w := <-watched
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
	}
	if len(j.Result.Files) == 0 {
		t.Fatal("no files in the result")
	}
	for _, name := range w.names {
		if strings.HasSuffix(name, ".src") || strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".qcow2") {
			t.Errorf("%s appeared in the export directory: a disk was staged locally (seen: %v)", name, w.names)
		}
	}
	if w.most > 64<<10 {
		t.Errorf("the export directory held %d bytes at once (seen: %v)", w.most, w.names)
	}
}

// TestDemoAWSEBSDirectToS3StagesNothing: the AWS demo's web-1, exported
// through the EBS direct APIs into s3://demo-exports/, streams its
// blocks into the objects with no part file or journal in the export
// directory; each disk object has the digest of the same disk exported
// locally (the journaled block engine, the oracle).
func TestDemoAWSEBSDirectToS3StagesNothing(t *testing.T) {
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	run := func(output string, watch bool) (apitypes.Job, watchResult) {
		t.Helper()
		watchDone := make(chan struct{})
		watched := make(chan watchResult, 1)
		if watch {
			go func() { watched <- watchTree(filepath.Join(dmn.dataDir, "exports"), watchDone) }()
		}
		spec := map[string]any{"provider": demoAWSProvider, "vm": "web-1", "method": "ebs-direct", "format": "disks", "disk_format": "raw"}
		if output != "" {
			spec["output"] = output
		}
		var j apitypes.Job
		if code := dmn.call("POST", "/api/v1/jobs", spec, &j); code != 201 {
			t.Fatalf("submit: %d", code)
		}
		deadline := time.Now().Add(3 * time.Minute)
		for !j.State.Terminal() {
			if time.Now().After(deadline) {
				t.Fatalf("export still %s", j.State)
			}
			time.Sleep(100 * time.Millisecond)
			dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
		}
		close(watchDone)
		var w watchResult
		if watch {
			w = <-watched
		}
		if j.State != apitypes.JobSucceeded {
			t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
		}
		return j, w
	}
	streamed, w := run("s3://demo-exports/web-1/", true)
	for _, name := range w.names {
		if strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".journal") || strings.HasSuffix(name, ".raw") {
			t.Errorf("%s appeared in the export directory: a disk was assembled locally (seen: %v)", name, w.names)
		}
	}
	if w.most > 64<<10 {
		t.Errorf("the export directory held %d bytes at once (seen: %v)", w.most, w.names)
	}
	local, _ := run("", false)
	digests := map[string]string{}
	for _, f := range local.Result.Files {
		if f.Kind == "disk" {
			digests[f.Path] = f.SHA256
		}
	}
	disks := 0
	for _, f := range streamed.Result.Files {
		if f.Kind != "disk" {
			continue
		}
		disks++
		if want, ok := digests[f.Path]; !ok || f.SHA256 != want {
			t.Errorf("%s: streamed SHA-256 %s, the local export's %q", f.Path, f.SHA256, want)
		}
	}
	if disks != 2 || len(digests) != 2 {
		t.Errorf("%d disks streamed, %d exported locally: web-1 has 2", disks, len(digests))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
