package objstore_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/iterator"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
)

// gcsServer is fake-gcs-server in process behind a proxy counting the
// object uploads it is sent.
type gcsServer struct {
	fake    *fakestorage.Server
	url     string
	uploads atomic.Int64
}

func startGCS(t *testing.T, bucket string) *gcsServer {
	t.Helper()
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Writer: io.Discard})
	if err != nil {
		t.Fatalf("fake-gcs-server: %v", err)
	}
	t.Cleanup(fake.Stop)
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	s := &gcsServer{fake: fake}
	target, _ := url.Parse(fake.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/upload/") {
			s.uploads.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	s.url = front.URL
	return s
}

func (s *gcsServer) targets(bucket string) objstore.Targets {
	return objstore.Targets{{Name: "gcs", URL: "gs://" + bucket + "/", GCS: objstore.GCSConfig{Endpoint: s.url + "/storage/v1/", Anonymous: true}}}
}

// objects lists the names under prefix.
func (s *gcsServer) objects(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	var names []string
	it := s.fake.Client().Bucket(bucket).Objects(context.Background(), &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if err == iterator.Done { //nolint:errorlint // the iterator's sentinel
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, a.Name)
	}
}

func (s *gcsServer) download(t *testing.T, bucket, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range s.objects(t, bucket, prefix) {
		r, err := s.fake.Client().Bucket(bucket).Object(name).NewReader(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimPrefix(name, prefix)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func exportGCS(t *testing.T, ts objstore.Targets, out, state string, e providers.Exporter, opts providers.ExportOptions) (*providers.ExportResult, error) {
	t.Helper()
	root, err := os.OpenRoot(state)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	sink, err := ts.Open(context.Background(), "output", out, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.OutputRoot, opts.Output = root, sink
	return pipeline.Export(context.Background(), e, "vm-1", opts)
}

// TestGCSExport exports to fake-gcs-server as plain disks (parts composed
// into the object) and as an OVF folder, downloads the objects and checks
// them against the manifest and the source.
func TestGCSExport(t *testing.T) {
	srv := startGCS(t, "exports")
	ts := srv.targets("exports")
	big, small := diskBytes(1, 40<<20), diskBytes(2, 3<<20)
	srcDir := t.TempDir()
	for name, data := range map[string][]byte{"disk-0": big, "disk-1": small} {
		if err := os.WriteFile(filepath.Join(srcDir, name+".raw"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		format providers.Format
		disk   providers.DiskFormat
		mf     string
	}{
		{"disks-raw", providers.FormatDisks, providers.DiskRaw, "web01.sha256"},
		{"disks-qcow2", providers.FormatDisks, providers.DiskQCOW2, "web01.sha256"},
		{"disks-vhdx", providers.FormatDisks, providers.DiskVHDX, "web01.sha256"},
		{"ovf", providers.FormatOVF, providers.DiskVMDK, "web01.mf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			prefix := "vms/" + tc.name + "/"
			e := newExporter(readerDisk("disk-0", big), readerDisk("disk-1", small))
			watch := watchLocal(t, state)
			if _, err := exportGCS(t, ts, "gs://exports/"+prefix, state, e, providers.ExportOptions{Format: tc.format, DiskFormat: tc.disk}); err != nil {
				t.Fatal(err)
			}
			watch.check(t, 16<<10)
			for _, n := range srv.objects(t, "exports", prefix) {
				if strings.Contains(n, ".parts/") {
					t.Errorf("part object left: %s", n)
				}
			}
			dir := srv.download(t, "exports", prefix)
			checkManifest(t, dir, tc.mf)
			qemu := map[providers.DiskFormat]string{providers.DiskRaw: "raw", providers.DiskVMDK: "vmdk", providers.DiskQCOW2: "qcow2", providers.DiskVHDX: "vhdx"}[tc.disk]
			for _, d := range []string{"disk-0", "disk-1"} {
				disktest.Compare(t, filepath.Join(srcDir, d+".raw"), "raw", filepath.Join(dir, "web01-"+d+"."+string(tc.disk)), qemu)
			}
			if left := listDir(t, state); len(left) > 0 {
				t.Errorf("state left behind: %v", left)
			}
		})
	}
}

// TestGCSResume: an attempt that fails after two parts of a disk keeps
// the second (the first is held for WriteAt until Commit); the next
// sends only the rest (counted at the server), and the last attempt's
// failure removes everything.
func TestGCSResume(t *testing.T) {
	srv := startGCS(t, "resume")
	ts := srv.targets("resume")
	state := t.TempDir()
	data := diskBytes(3, 64<<20) // four 16 MiB parts
	e := newExporter(failingDisk("disk-0", data, 40<<20))
	if _, err := exportGCS(t, ts, "gs://resume/x/", state, e, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw}); err == nil {
		t.Fatal("the first attempt succeeded")
	}
	if got := recordedParts(t, state, "web01-disk-0.raw"); len(got) != 1 || got[0] != 2 {
		t.Fatalf("parts %v recorded by the failed attempt, want [2]", got)
	}
	srv.uploads.Store(0)
	e = newExporter(readerDisk("disk-0", data))
	if _, err := exportGCS(t, ts, "gs://resume/x/", state, e, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw}); err != nil {
		t.Fatal(err)
	}
	// Parts 1, 3 and 4, the metadata and the manifest.
	if got := srv.uploads.Load(); got != 5 {
		t.Errorf("the resumed attempt uploaded %d objects, want 5 (parts 1, 3 and 4, metadata, manifest)", got)
	}
	dir := srv.download(t, "resume", "x/")
	checkManifest(t, dir, "web01.sha256")
	if sumOf(data) != fileSum(t, filepath.Join(dir, "web01-disk-0.raw")) {
		t.Error("the object is not the disk")
	}

	// A last attempt that fails leaves nothing.
	e = newExporter(failingDisk("disk-0", diskBytes(4, 64<<20), 40<<20))
	if _, err := exportGCS(t, ts, "gs://resume/y/", state, e, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, FinalAttempt: true}); err == nil {
		t.Fatal("the failing attempt succeeded")
	}
	if left := srv.objects(t, "resume", "y/"); len(left) > 0 {
		t.Errorf("objects left by a failed last attempt: %v", left)
	}
}
