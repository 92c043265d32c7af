package objstore_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
)

// The child process of TestObjectStorageKillResume exports through these
// settings (the targets, credentials included, in the environment, never
// the argument list).
const (
	childEnv     = "HYPERSDK_OBJSTORE_CHILD"
	childState   = "HYPERSDK_OBJSTORE_STATE"
	childTargets = "HYPERSDK_OBJSTORE_TARGETS"
	childOutput  = "HYPERSDK_OBJSTORE_OUTPUT"
	childKind    = "HYPERSDK_OBJSTORE_KIND"
)

// killSize is the disk of the kill tests: five 16 MiB parts.
const killSize = 80 << 20

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := childExport(); err != nil {
			fmt.Fprintln(os.Stderr, "child export:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childExport is the export the killed process runs.
func childExport() error {
	root, err := os.OpenRoot(os.Getenv(childState))
	if err != nil {
		return err
	}
	defer root.Close()
	var ts objstore.Targets
	if err := json.Unmarshal([]byte(os.Getenv(childTargets)), &ts); err != nil {
		return err
	}
	sink, err := ts.Open(context.Background(), "output", os.Getenv(childOutput), root, nil)
	if err != nil {
		return err
	}
	e, opts := killExport(os.Getenv(childKind))
	opts.OutputRoot, opts.Output = root, sink
	_, err = pipeline.Export(context.Background(), e, "vm-1", opts)
	return err
}

// killExport is the export TestObjectStorageKillResume interrupts: one
// disk in the disk format kind ("raw", "qcow2"), or an OVA of two disks
// streamed into its object, plain ("ova") or gzip-compressed ("ova.gz").
func killExport(kind string) (*exporter, providers.ExportOptions) {
	switch kind {
	case "ova", "ova.gz":
		return newExporter(readerDisk("disk-0", diskBytes(7, killSize)), readerDisk("disk-1", diskBytes(8, 20<<20))),
			providers.ExportOptions{Format: providers.FormatOVA, Compress: kind == "ova.gz"}
	}
	return newExporter(readerDisk("disk-0", diskBytes(7, killSize))),
		providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskFormat(kind)}
}

// backend is an object store the resume tests export to, behind a gate
// that counts the parts it is sent.
type backend struct {
	scheme string
	// bucket is what the output URL names: "bucket", "account/container".
	bucket  string
	gate    *gate
	targets objstore.Targets // through the gate
	// objects lists the published objects under prefix; open the objects
	// under prefix that an upload left open holds parts of.
	objects, open func(t *testing.T, prefix string) []string
	download      func(t *testing.T, prefix string) string
}

func (b *backend) output(prefix string) string { return b.scheme + "://" + b.bucket + "/" + prefix }

// partOf names the part a request uploads ("<key>#<n>"); ok is false for any
// other request. Each store has its own: S3 UploadPart, a GCS upload of a
// part object ("<key>.parts/<upload id>/<n>"), an Azure Put Block (block
// id "<upload id>-<n>").
type partOf func(r *http.Request) (string, bool)

func s3Part(r *http.Request) (string, bool) {
	q := r.URL.Query()
	if r.Method != http.MethodPut || q.Get("partNumber") == "" || q.Get("uploadId") == "" {
		return "", false
	}
	// The path is /<bucket>/<key>.
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return key + "#" + q.Get("partNumber"), true
}

func gcsPart(r *http.Request) (string, bool) {
	name := r.URL.Query().Get("name")
	key, rest, found := strings.Cut(name, ".parts/")
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/upload/") || !found {
		return "", false
	}
	n, err := strconv.Atoi(path.Base(rest))
	if err != nil {
		return "", false
	}
	return key + "#" + strconv.Itoa(n), true
}

func azurePart(r *http.Request) (string, bool) {
	q := r.URL.Query()
	if r.Method != http.MethodPut || q.Get("comp") != "block" {
		return "", false
	}
	id, err := base64.StdEncoding.DecodeString(q.Get("blockid"))
	if err != nil {
		return "", false
	}
	_, num, _ := strings.Cut(string(id), "-")
	n, err := strconv.Atoi(num)
	if err != nil {
		return "", false
	}
	// The path is /<account>/<container>/<key>.
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	return parts[len(parts)-1] + "#" + strconv.Itoa(n), true
}

// startBackend starts the store of scheme with an empty bucket (or
// container) named bucket behind a gate that lets limit parts through
// (<0: all).
func startBackend(t *testing.T, scheme, bucket string, limit int) *backend {
	t.Helper()
	b := &backend{scheme: scheme, bucket: bucket}
	under := func(names []string, prefix string, parts bool) []string {
		var out []string
		for _, n := range names {
			if strings.HasPrefix(n, prefix) && strings.Contains(n, ".parts/") == parts {
				out = append(out, n)
			}
		}
		return out
	}
	switch scheme {
	case "s3":
		srv := s3test.Start(t, s3test.Options{})
		srv.CreateBucket(t, bucket)
		b.gate = newGate(t, srv.URL, limit, s3Part)
		b.targets = objstore.Targets{{Name: "versitygw", URL: "s3://" + bucket + "/", S3: objstore.S3Config{
			Endpoint: b.gate.srv.URL, Region: srv.Region, AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey, PathStyle: true}}}
		b.objects = func(t *testing.T, prefix string) []string { return under(srv.Keys(t, bucket), prefix, false) }
		b.open = func(t *testing.T, prefix string) []string { return under(openUploads(t, srv, bucket), prefix, false) }
		b.download = func(t *testing.T, prefix string) string { return download(t, srv, bucket, prefix) }
	case "gs":
		srv := startGCS(t, bucket)
		b.gate = newGate(t, srv.url, limit, gcsPart)
		b.targets = objstore.Targets{{Name: "gcs", URL: "gs://" + bucket + "/", GCS: objstore.GCSConfig{
			Endpoint: b.gate.srv.URL + "/storage/v1/", Anonymous: true}}}
		b.objects = func(t *testing.T, prefix string) []string {
			return under(srv.objects(t, bucket, prefix), prefix, false)
		}
		b.open = func(t *testing.T, prefix string) []string { return under(srv.objects(t, bucket, prefix), prefix, true) }
		b.download = func(t *testing.T, prefix string) string { return srv.download(t, bucket, prefix) }
	case "azblob":
		srv := startAzure(t, bucket)
		u, err := url.Parse(srv.url)
		if err != nil {
			t.Fatal(err)
		}
		b.gate = newGate(t, u.Scheme+"://"+u.Host, limit, azurePart)
		b.bucket = srv.az.AccountName + "/" + bucket
		b.targets = objstore.Targets{{Name: "azurite", URL: "azblob://" + srv.az.AccountName + "/",
			Azure: objstore.AzureConfig{Endpoint: b.gate.srv.URL + u.Path, AccountKey: srv.az.AccountKey}}}
		b.objects = func(t *testing.T, prefix string) []string { return srv.blobs(t, prefix) }
		b.open = func(t *testing.T, prefix string) []string {
			var open []string
			for _, name := range srv.blobsWithUncommitted(t, prefix) {
				if srv.uncommitted(t, name) > 0 {
					open = append(open, name)
				}
			}
			return open
		}
		b.download = func(t *testing.T, prefix string) string { return srv.download(t, prefix) }
	default:
		t.Fatalf("no backend %s", scheme)
	}
	return b
}

// blobsWithUncommitted lists the blobs under prefix, those that have only
// uncommitted blocks too.
func (s *azureServer) blobsWithUncommitted(t *testing.T, prefix string) []string {
	t.Helper()
	var names []string
	pages := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, Include: container.ListBlobsInclude{UncommittedBlobs: true}})
	for pages.More() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	return names
}

// gate is a proxy in front of a store that counts the parts it forwards
// (per key and part number) and, once limit parts passed, holds every
// further part back and never forwards it.
type gate struct {
	srv   *httptest.Server
	mu    sync.Mutex
	parts map[string]int // "key#n" → part uploads forwarded
	limit int            // parts forwarded before the gate closes; <0: open
	held  int            // requests waiting at the closed gate
	open  chan struct{}
}

func newGate(t *testing.T, target string, limit int, part partOf) *gate {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{parts: map[string]int{}, limit: limit, open: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := part(r); ok {
			g.mu.Lock()
			closed := g.limit >= 0 && g.forwarded() >= g.limit
			if closed {
				g.held++
			} else {
				g.parts[p]++
			}
			g.mu.Unlock()
			if closed {
				// A request held here belongs to the attempt that is killed
				// while it waits: it never reaches the server. (Its
				// context need not end with its client: the server notices
				// a closed connection only once it reads the body.)
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
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gate) forwarded() (n int) {
	for _, c := range g.parts {
		n += c
	}
	return n
}

// release opens the gate for good and returns and forgets the counts.
func (g *gate) release() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	counts := g.parts
	g.parts = map[string]int{}
	if g.limit >= 0 {
		g.limit = -1
		close(g.open)
	}
	return counts
}

func (g *gate) snapshot() (map[string]int, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.parts), g.held
}

// recordedParts reads the part numbers the upload state of name lists.
func recordedParts(t *testing.T, stateDir, name string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, name+".upload.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Parts []struct {
			N int `json:"n"`
		} `json:"parts"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil // being replaced: read again
	}
	var ns []int
	for _, p := range st.Parts {
		ns = append(ns, p.N)
	}
	return ns
}

// checkResent checks that the attempt whose part uploads sent counts sent
// every part of key from 1 to parts once, but those in skipped never.
func checkResent(t *testing.T, sent map[string]int, key string, parts int, skipped []int) {
	t.Helper()
	for n := 1; n <= parts; n++ {
		want := 1
		if slices.Contains(skipped, n) {
			want = 0
		}
		if got := sent[key+"#"+strconv.Itoa(n)]; got != want {
			t.Errorf("part %d sent %d times by the resumed attempt, want %d (finished before: %v)", n, got, want, skipped)
		}
	}
	for k := range sent {
		if n, err := strconv.Atoi(k[strings.LastIndex(k, "#")+1:]); strings.HasPrefix(k, key+"#") && (err != nil || n > parts) {
			t.Errorf("part %s sent by the resumed attempt, beyond the object's %d", k, parts)
		}
	}
}

// TestObjectStorageKillResume kills an export with kill -9 in the middle
// of an object's upload and resumes it: the parts the killed process had
// finished are not sent again (counted by a proxy in front of the
// server), the others are sent once, the object verifies, and no upload
// is left open. A raw disk against each store; against S3 also a qcow2
// disk (its header patched into part 1, held until the upload commits)
// and an OVA streaming into its object, plain and gzip-compressed (the
// resumed attempt writes the same bytes: the archive's time was recorded
// by the first).
func TestObjectStorageKillResume(t *testing.T) {
	for _, tc := range []struct{ scheme, kind string }{
		{"s3", "raw"}, {"gs", "raw"}, {"azblob", "raw"}, {"s3", "qcow2"}, {"s3", "ova"}, {"s3", "ova.gz"},
	} {
		t.Run(tc.scheme+"/"+tc.kind, func(t *testing.T) { testKillResume(t, tc.scheme, tc.kind) })
	}
}

func testKillResume(t *testing.T, scheme, kind string) {
	asOVA := strings.HasPrefix(kind, "ova")
	b := startBackend(t, scheme, "resume", 2)
	out := b.output("vm/")
	state := t.TempDir()
	tsJSON, err := json.Marshal(b.targets)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childState+"="+state, childTargets+"="+string(tsJSON), childOutput+"="+out, childKind+"="+kind)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	name := "web01-disk-0." + kind
	if asOVA {
		name = "web01." + kind
	}
	// Kill once two parts are durable in the state and the third waits
	// at the gate.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, held := b.gate.snapshot()
		if len(recordedParts(t, state, name)) >= 2 && held > 0 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the export ended before it was killed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the export did not reach its third part within 3 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	recorded := recordedParts(t, state, name)
	first := b.gate.release()
	t.Logf("killed after parts %v were recorded; first attempt sent %v", recorded, first)
	if open := b.open(t, "vm/"); len(open) == 0 {
		t.Fatal("no upload open after the kill: the test proves nothing")
	}

	// The next attempt, in this process, resumes from the same state.
	e, opts := killExport(kind)
	res, err := exportTo(t, b.targets, out, state, e, opts)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := b.gate.snapshot()
	dir := b.download(t, "vm/")
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	checkResent(t, second, "vm/"+name, int((st.Size()+16<<20-1)/(16<<20)), recorded)
	src := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(src, diskBytes(7, killSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if asOVA {
		x := filepath.Join(t.TempDir(), "x")
		if _, err := ova.Extract(context.Background(), filepath.Join(dir, name), x, ova.ExtractOptions{}); err != nil {
			t.Fatalf("extract the resumed OVA: %v", err)
		}
		checkManifest(t, x, "web01.mf")
		if sum := fileSum(t, filepath.Join(dir, name)); sum != res.Files[0].SHA256 {
			t.Errorf("the object's SHA-256 is %s, the result says %s", sum, res.Files[0].SHA256)
		}
		disktest.Compare(t, src, "raw", filepath.Join(x, "web01-disk-0.vmdk"), "vmdk")
	} else {
		checkManifest(t, dir, "web01.sha256")
		disktest.Compare(t, src, "raw", filepath.Join(dir, name), kind)
	}
	if open := b.open(t, ""); len(open) > 0 {
		t.Errorf("uploads left open: %v", open)
	}
	if left := listDir(t, state); len(left) > 0 {
		t.Errorf("state left behind: %v", left)
	}
}

// TestObjectStorageResumeAfterFailure: against each store, an attempt
// that fails after two parts of a disk keeps the second (the first is
// held until Commit); the next sends only
// the rest (counted at the server), and a last attempt's failure leaves
// no object and no open upload.
func TestObjectStorageResumeAfterFailure(t *testing.T) {
	for _, scheme := range []string{"s3", "gs", "azblob"} {
		t.Run(scheme, func(t *testing.T) {
			b := startBackend(t, scheme, "resume", -1)
			state := t.TempDir()
			data := diskBytes(3, 64<<20) // four 16 MiB parts
			opts := providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw}
			if _, err := exportTo(t, b.targets, b.output("x/"), state, newExporter(failingDisk("disk-0", data, 40<<20)), opts); err == nil {
				t.Fatal("the first attempt succeeded")
			}
			// Part 1 is held until Commit (for WriteAt), so the failed
			// attempt finished only part 2.
			recorded := recordedParts(t, state, "web01-disk-0.raw")
			if !slices.Equal(recorded, []int{2}) {
				t.Fatalf("parts %v recorded by the failed attempt, want [2]", recorded)
			}
			b.gate.release()
			if _, err := exportTo(t, b.targets, b.output("x/"), state, newExporter(readerDisk("disk-0", data)), opts); err != nil {
				t.Fatal(err)
			}
			sent, _ := b.gate.snapshot()
			checkResent(t, sent, "x/web01-disk-0.raw", 4, recorded)
			dir := b.download(t, "x/")
			checkManifest(t, dir, "web01.sha256")
			if sumOf(data) != fileSum(t, filepath.Join(dir, "web01-disk-0.raw")) {
				t.Error("the object is not the disk")
			}

			// A last attempt that fails leaves nothing.
			opts.FinalAttempt = true
			if _, err := exportTo(t, b.targets, b.output("y/"), state, newExporter(failingDisk("disk-0", diskBytes(4, 64<<20), 40<<20)), opts); err == nil {
				t.Fatal("the failing attempt succeeded")
			}
			if left := b.objects(t, "y/"); len(left) > 0 {
				t.Errorf("objects left by a failed last attempt: %v", left)
			}
			if open := b.open(t, "y/"); len(open) > 0 {
				t.Errorf("uploads left open by a failed last attempt: %v", open)
			}
		})
	}
}
