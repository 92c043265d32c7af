package jobs_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/objstore"
)

// TestSweepUploadsOwnership: the sweep removes what a failed job's kept
// upload state names (the open upload aborted, the state forgotten, the
// job's log told); when a later job of the same output succeeded it only
// forgets the state (the objects are that job's now); while a job of the
// same output is queued it touches nothing.
func TestSweepUploadsOwnership(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		backend := s3mem.New()
		if err := backend.CreateBucket("b"); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(gofakes3.New(backend).Server())
		t.Cleanup(srv.Close)
		targets := objstore.Targets{{Name: "s3", URL: "s3://b/", S3: objstore.S3Config{
			Endpoint: srv.URL, Region: "us-east-1", AccessKeyID: "k", SecretAccessKey: "s", PathStyle: true}}}
		c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
		e := newEnv(t, db, 0)
		withTargets := func(o *jobs.Options) { o.OutputTargets = targets }
		m := e.start(withTargets)
		ctx := context.Background()
		submitTo := func(m *jobs.Manager, vm, out string) *apitypes.Job {
			t.Helper()
			j, _, err := m.Submit(ctx, apitypes.JobRequest{Provider: "fake", VM: vm, Output: out}, "tester", "")
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
		// Three failed jobs (each to an output of its own), a later job of
		// the second's output that succeeded.
		failed := map[string]*apitypes.Job{}
		for _, out := range []string{"removed", "superseded", "busy"} {
			failed[out] = waitState(t, m, submitTo(m, "no-such-vm", "s3://b/"+out+"/").ID, apitypes.JobFailed)
		}
		waitState(t, m, submitTo(m, "vm-001", "s3://b/superseded/").ID, apitypes.JobSucceeded)
		// What a killed attempt leaves: an open upload with a part, its
		// state in the job's directory.
		for out, j := range failed {
			root := mkRoot(t, j.Spec.Options.OutputDir)
			sink, err := targets.Open(ctx, "output", "s3://b/"+out+"/", root, nil)
			if err != nil {
				t.Fatal(err)
			}
			w, err := sink.Create(ctx, "left.raw", 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(make([]byte, 20<<20)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			root.Close()
		}
		if open := openKeys(t, c); len(open) != 3 {
			t.Fatalf("open uploads planted: %v", open)
		}
		ctxStop, cancel := context.WithCancel(ctx)
		cancel()
		_ = m.Stop(ctxStop)
		idle := e.manager(withTargets) // not started: its job stays queued
		submitTo(idle, "vm-002", "s3://b/busy/")

		removed, err := idle.SweepUploads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(removed, []string{"s3://b/removed/left.raw"}) {
			t.Errorf("removed %v, want the failed job's object only", removed)
		}
		open := openKeys(t, c)
		slices.Sort(open)
		if !slices.Equal(open, []string{"busy/left.raw", "superseded/left.raw"}) {
			t.Errorf("open uploads after the sweep: %v, want those of the superseded and the busy output", open)
		}
		for out, wantState := range map[string]bool{"removed": false, "superseded": false, "busy": true} {
			states, _ := filepath.Glob(filepath.Join(failed[out].Spec.Options.OutputDir, "*.upload.json"))
			if (len(states) > 0) != wantState {
				t.Errorf("%s: state files %v after the sweep", out, states)
			}
		}
		if msgs := logMessages(t, idle, failed["removed"].ID); !strings.Contains(msgs, "removed what the export's uploads left in object storage") {
			t.Errorf("the job's log does not tell the sweep:\n%s", msgs)
		}
		// A second sweep finds nothing more to do.
		if removed, err := idle.SweepUploads(ctx); err != nil || len(removed) > 0 {
			t.Errorf("second sweep: %v %v", removed, err)
		}
	})
}

func mkRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openKeys(t *testing.T, c *s3.Client) []string {
	t.Helper()
	out, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String("b")})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}
