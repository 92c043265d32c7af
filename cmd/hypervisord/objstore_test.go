package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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
