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
		// Three failed jobs (each to an output of its own); later, to the
		// second's output, a job of another VM that succeeded.
		failed := map[string]*apitypes.Job{}
		for _, out := range []string{"removed", "superseded", "busy"} {
			failed[out] = waitState(t, m, submitTo(m, "no-such-vm", "s3://b/"+out+"/").ID, apitypes.JobFailed)
		}
		later := waitState(t, m, submitTo(m, "vm-001", "s3://b/superseded/").ID, apitypes.JobSucceeded)
		if later.Result == nil || len(later.Result.Files) == 0 {
			t.Fatalf("the succeeded job has no files: %+v", later.Result)
		}
		published := later.Result.Files[0].Path
		// What a killed attempt leaves: an open upload with a part, its
		// state in the job's directory. The superseded job also left one
		// of the key the later job published.
		plant := func(j *apitypes.Job, out, name string) {
			t.Helper()
			root := mkRoot(t, j.Spec.Options.OutputDir)
			defer root.Close()
			sink, err := targets.Open(ctx, "output", "s3://b/"+out+"/", root, nil)
			if err != nil {
				t.Fatal(err)
			}
			w, err := sink.Create(ctx, name, 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(make([]byte, 40<<20)); err != nil { // part 2 sent (part 1 is held until Commit)
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		for out, j := range failed {
			plant(j, out, "left.raw")
		}
		plant(failed["superseded"], "superseded", published)
		if open := openKeys(t, c); len(open) != 4 {
			t.Fatalf("open uploads planted: %v", open)
		}
		ctxStop, cancel := context.WithCancel(ctx)
		cancel()
		_ = m.Stop(ctxStop)
		idle := e.manager(withTargets) // not started: its jobs stay queued
		// Queued: an export of the busy job's VM to its output, and one of
		// another VM to the removed job's output (which does not hold the
		// sweep back).
		submitTo(idle, "no-such-vm", "s3://b/busy/")
		submitTo(idle, "vm-002", "s3://b/removed/")

		removed, err := idle.SweepUploads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(removed)
		if !slices.Equal(removed, []string{"s3://b/removed/left.raw", "s3://b/superseded/left.raw"}) {
			t.Errorf("removed %v, want the failed jobs' objects no live or later job owns", removed)
		}
		open := openKeys(t, c)
		slices.Sort(open)
		if want := []string{"busy/left.raw", "superseded/" + published}; !slices.Equal(open, want) {
			t.Errorf("open uploads after the sweep: %v, want %v (the busy job's, and the key the later job published, left alone)", open, want)
		}
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("superseded/" + published)}); err != nil {
			t.Errorf("the later job's object is gone: %v", err)
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
