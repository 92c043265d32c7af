package objstore_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/iterator"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/netguard"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/providers"
)

// gcsServer is fake-gcs-server in process behind a proxy counting the
// requests it is sent.
type gcsServer struct {
	fake     *fakestorage.Server
	url      string
	requests atomic.Int64 // every request
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
		s.requests.Add(1)
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
			if _, err := exportTo(t, ts, "gs://exports/"+prefix, state, e, providers.ExportOptions{Format: tc.format, DiskFormat: tc.disk}); err != nil {
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

// serviceAccountKey writes a service account key file whose token
// endpoint is tokenURL.
func serviceAccountKey(t *testing.T, tokenURL string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "guard-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "exporter@guard-test.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGCSCredentialsKeepTheGuard: a target with credentials is reached
// through the guarded client too, so that a guard that refuses private
// and link-local addresses refuses a store there (here fake-gcs-server on
// loopback, and the metadata server's address), and nothing reaches it.
func TestGCSCredentialsKeepTheGuard(t *testing.T) {
	srv := startGCS(t, "guarded")
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"guard-test-token","token_type":"Bearer","expires_in":3600}`))
	}))
	t.Cleanup(tokens.Close)
	keyFile := serviceAccountKey(t, tokens.URL+"/token")
	client, err := objstore.GuardedClient(netguard.Guard{Setting: "output_targets[0].allow_private"})
	if err != nil {
		t.Fatal(err)
	}
	for _, endpoint := range []string{srv.url + "/storage/v1/", "http://169.254.169.254/storage/v1/"} {
		srv.requests.Store(0)
		ts := objstore.Targets{{Name: "gcs", URL: "gs://guarded/", GCS: objstore.GCSConfig{
			Endpoint: endpoint, CredentialsFile: keyFile, HTTPClient: client}}}
		e := newExporter(readerDisk("disk-0", diskBytes(6, 1<<20)))
		_, err := exportTo(t, ts, "gs://guarded/x/", t.TempDir(), e, providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw})
		var refused *netguard.Error
		if !errors.As(err, &refused) {
			t.Errorf("%s: the export was not refused by the guard: %v", endpoint, err)
		}
		if n := srv.requests.Load(); n > 0 {
			t.Errorf("%s: %d requests reached the store", endpoint, n)
		}
	}
}

// TestGCSRetriesTransientErrors: the library does not retry an upload in
// one request, so the store does: a part refused once with 503 is sent
// again and the export succeeds; a part refused every time fails the
// attempt after a bounded number of tries.
func TestGCSRetriesTransientErrors(t *testing.T) {
	srv := startGCS(t, "flaky")
	var (
		mu    sync.Mutex
		tries = map[string]int{}
	)
	const always = "always/web01-disk-0.raw.parts/"
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if r.Method == http.MethodPost && strings.Contains(name, ".parts/") {
			mu.Lock()
			tries[name]++
			n := tries[name]
			mu.Unlock()
			if n == 1 || strings.HasPrefix(name, always) {
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
		}
		u, _ := url.Parse(srv.url)
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	ts := objstore.Targets{{Name: "gcs", URL: "gs://flaky/", GCS: objstore.GCSConfig{Endpoint: front.URL + "/storage/v1/", Anonymous: true}}}
	data := diskBytes(8, 40<<20) // three parts
	opts := providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw}
	if _, err := exportTo(t, ts, "gs://flaky/once/", t.TempDir(), newExporter(readerDisk("disk-0", data)), opts); err != nil {
		t.Fatalf("an export whose parts were each refused once: %v", err)
	}
	dir := srv.download(t, "flaky", "once/")
	checkManifest(t, dir, "web01.sha256")
	if fileSum(t, filepath.Join(dir, "web01-disk-0.raw")) != sumOf(data) {
		t.Error("the object is not the disk")
	}
	if _, err := exportTo(t, ts, "gs://flaky/always/", t.TempDir(), newExporter(readerDisk("disk-0", data)), opts); err == nil {
		t.Fatal("an export whose parts are always refused succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	for name, n := range tries {
		want := 2
		if strings.HasPrefix(name, always) {
			want = 4 // gcsTries
		}
		if n != want {
			t.Errorf("%s tried %d times, want %d", name, n, want)
		}
	}
}
