package objstore_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/providers"
)

// failingDisk serves data and fails after limit bytes.
func failingDisk(name string, data []byte, limit int) providers.DiskSource {
	d := readerDisk(name, data)
	d.Open = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader(string(data[:limit])), errReader{})), nil
	}
	return d
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("the platform's stream broke") }

// TestS3FailedUploadKeptThenAborted: a failure that may heal keeps the
// open upload and its state for the next attempt; the last attempt's
// failure aborts it and removes every object and the state.
func TestS3FailedUploadKeptThenAborted(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.CreateBucket(t, "fail")
	ts := s3Targets(srv, "fail")
	state := t.TempDir()
	data := diskBytes(3, 64<<20)
	for _, final := range []bool{false, true} {
		e := newExporter(readerDisk("disk-0", diskBytes(4, 1<<20)), failingDisk("disk-1", data, 40<<20))
		_, err := exportTo(t, ts, "s3://fail/x/", state, e, providers.ExportOptions{
			Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, FinalAttempt: final, ParallelDownloads: 1})
		if err == nil {
			t.Fatal("the export succeeded")
		}
		open := openUploads(t, srv, "fail")
		if !final {
			if len(open) != 1 || open[0] != "x/web01-disk-1.raw" {
				t.Errorf("open uploads after a failure that may heal: %v, want the broken disk's", open)
			}
			if len(recordedParts(t, state, "web01-disk-1.raw")) < 1 {
				t.Errorf("the state of the broken disk's upload is not kept: %v", listDir(t, state))
			}
			continue
		}
		if len(open) > 0 {
			t.Errorf("uploads left open after the last attempt failed: %v", open)
		}
		if keys := srv.Keys(t, "fail"); len(keys) > 0 {
			t.Errorf("objects left after the last attempt failed: %v", keys)
		}
		if left := listDir(t, state); len(left) > 0 {
			t.Errorf("state left after the last attempt failed: %v", left)
		}
	}
}

// TestS3UploadLeftOpenBeforeItsIDWasRecorded: an upload of the key that
// no state records (an attempt killed between creating it and recording
// its id) is aborted by the next attempt.
func TestS3UploadLeftOpenBeforeItsIDWasRecorded(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	srv.CreateBucket(t, "orphan")
	if _, err := srv.Client().CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{
		Bucket: aws.String("orphan"), Key: aws.String("x/web01-disk-0.raw")}); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	e := newExporter(readerDisk("disk-0", diskBytes(5, 20<<20)))
	if _, err := exportTo(t, s3Targets(srv, "orphan"), "s3://orphan/x/", state, e, providers.ExportOptions{
		Format: providers.FormatDisks, DiskFormat: providers.DiskRaw}); err != nil {
		t.Fatal(err)
	}
	if open := openUploads(t, srv, "orphan"); len(open) > 0 {
		t.Errorf("uploads left open: %v", open)
	}
}

// TestOutputURLErrors: bad output URLs and unconfigured targets are
// refused naming the field.
func TestOutputURLErrors(t *testing.T) {
	ts := s3Targets(&s3test.Server{URL: "http://127.0.0.1:1"}, "known")
	for raw, want := range map[string]string{
		"s3://":                          "output: names no bucket",
		"s3://user:pw@known/x/":          "output: must not carry credentials",
		"s3://known/x/?X-Amz-Signature=": "output: must not carry credentials",
		"ftp://known/":                   "output: must start with s3://",
		"s3://known/a//b/":               "output: prefix",
		"s3://other/":                    "output: no output target is configured for s3://other/",
		"azblob://acct/":                 "output: azblob://account/container/prefix/: names no container",
	} {
		err := ts.Check("output", raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("%q: the error shows the password: %v", raw, err)
		}
	}
	if err := ts.Check("output", "s3://known/vms/"); err != nil {
		t.Errorf("a configured target: %v", err)
	}
}
