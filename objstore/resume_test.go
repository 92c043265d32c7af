package objstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
)

// The child process of TestS3KillResume exports through these settings
// (credentials in the environment, never the argument list).
const (
	childEnv   = "HYPERSDK_OBJSTORE_CHILD"
	childState = "HYPERSDK_OBJSTORE_STATE"
	childURL   = "HYPERSDK_OBJSTORE_ENDPOINT"
	childKey   = "HYPERSDK_OBJSTORE_KEY"
	childSec   = "HYPERSDK_OBJSTORE_SECRET"
	childKind  = "HYPERSDK_OBJSTORE_KIND"
)

const (
	killBucket = "resume"
	killPrefix = "vm/"
	killSize   = 80 << 20 // five 16 MiB parts
)

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

func killTargets(endpoint, key, secret string) objstore.Targets {
	return objstore.Targets{{Name: "test", URL: "s3://" + killBucket + "/", S3: objstore.S3Config{
		Endpoint: endpoint, Region: "us-east-1", AccessKeyID: key, SecretAccessKey: secret, PathStyle: true}}}
}

// childExport is the export the killed process runs.
func childExport() error {
	root, err := os.OpenRoot(os.Getenv(childState))
	if err != nil {
		return err
	}
	defer root.Close()
	sink, err := killTargets(os.Getenv(childURL), os.Getenv(childKey), os.Getenv(childSec)).Open(context.Background(), "output", "s3://"+killBucket+"/"+killPrefix, root, nil)
	if err != nil {
		return err
	}
	e, opts := killExport(os.Getenv(childKind))
	opts.OutputRoot, opts.Output = root, sink
	_, err = pipeline.Export(context.Background(), e, "vm-1", opts)
	return err
}

// killExport is the export TestS3KillResume interrupts: one disk in the
// disk format kind ("raw", "qcow2"), or an OVA of two disks streamed into
// its object, plain ("ova") or gzip-compressed ("ova.gz").
func killExport(kind string) (*exporter, providers.ExportOptions) {
	switch kind {
	case "ova", "ova.gz":
		return newExporter(readerDisk("disk-0", diskBytes(7, killSize)), readerDisk("disk-1", diskBytes(8, 20<<20))),
			providers.ExportOptions{Format: providers.FormatOVA, Compress: kind == "ova.gz"}
	}
	return newExporter(readerDisk("disk-0", diskBytes(7, killSize))),
		providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskFormat(kind)}
}

// gate is a proxy in front of the S3 server that counts the parts it
// forwards (per key and part number) and, once limit parts passed, holds
// every further part back and never forwards it.
type gate struct {
	srv   *httptest.Server
	mu    sync.Mutex
	parts map[string]int // "key#n" → UploadPart requests forwarded
	limit int            // parts forwarded before the gate closes; <0: open
	held  int            // requests waiting at the closed gate
	open  chan struct{}
}

func newGate(t *testing.T, target string, limit int) *gate {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{parts: map[string]int{}, limit: limit, open: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.URL.Query().Get("partNumber")
		if r.Method == http.MethodPut && n != "" && r.URL.Query().Get("uploadId") != "" {
			g.mu.Lock()
			closed := g.limit >= 0 && g.forwarded() >= g.limit
			if closed {
				g.held++
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
			g.mu.Lock()
			g.parts[r.URL.Path+"#"+n]++
			g.mu.Unlock()
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

// release opens the gate for good and forgets the counts.
func (g *gate) release() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	counts := g.parts
	g.parts = map[string]int{}
	g.limit = -1
	close(g.open)
	return counts
}

func (g *gate) snapshot() (map[string]int, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := map[string]int{}
	for k, v := range g.parts {
		c[k] = v
	}
	return c, g.held
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

// TestS3KillResume kills an export with kill -9 in the middle of a disk's
// multipart upload and resumes it: the parts the killed process had
// finished are not sent again (counted by a proxy in front of versitygw),
// the others are sent once, the object is the disk, and no upload is
// left open. A qcow2 disk streams as a raw one does, its header patched
// into part 1, which is held until the upload commits. The OVA cases
// interrupt an archive streaming into its object: the resumed attempt
// writes the same bytes (the archive's time was recorded by the first),
// so it skips the same parts.
func TestS3KillResume(t *testing.T) {
	for _, kind := range []string{"raw", "qcow2", "ova", "ova.gz"} {
		t.Run(kind, func(t *testing.T) { testKillResume(t, kind) })
	}
}

func testKillResume(t *testing.T, kind string) {
	asOVA := strings.HasPrefix(kind, "ova")
	srv := s3test.Start(t, s3test.Options{})
	srv.CreateBucket(t, killBucket)
	g := newGate(t, srv.URL, 2)
	state := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childState+"="+state, childURL+"="+g.srv.URL,
		childKey+"="+srv.AccessKeyID, childSec+"="+srv.SecretAccessKey, childKind+"="+kind)
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
		_, held := g.snapshot()
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
	first := g.release()
	t.Logf("killed after parts %v were recorded; first attempt sent %v", recorded, first)
	if open := openUploads(t, srv, killBucket); len(open) != 1 {
		t.Fatalf("open uploads after the kill: %v, want the disk's", open)
	}

	// The next attempt, in this process, resumes from the same state.
	root, err := os.OpenRoot(state)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	sink, err := killTargets(g.srv.URL, srv.AccessKeyID, srv.SecretAccessKey).Open(context.Background(), "output", "s3://"+killBucket+"/"+killPrefix, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := diskBytes(7, killSize)
	e, opts := killExport(kind)
	opts.OutputRoot, opts.Output = root, sink
	res, err := pipeline.Export(context.Background(), e, "vm-1", opts)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := g.snapshot()
	key := "/" + killBucket + "/" + killPrefix + name
	dir := download(t, srv, killBucket, killPrefix)
	if !asOVA {
		checkManifest(t, dir, "web01.sha256")
	}
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; int64(n-1)*(16<<20) < st.Size(); n++ {
		want := 1
		for _, r := range recorded {
			if r == n {
				want = 0
			}
		}
		if got := second[key+"#"+strconv.Itoa(n)]; got != want {
			t.Errorf("part %d sent %d times by the resumed attempt, want %d (recorded before the kill: %v)", n, got, want, recorded)
		}
	}
	src := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(src, data, 0o600); err != nil {
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
		disktest.Compare(t, src, "raw", filepath.Join(dir, name), kind)
	}
	if open := openUploads(t, srv, killBucket); len(open) > 0 {
		t.Errorf("uploads left open: %v", open)
	}
	if left := listDir(t, state); len(left) > 0 {
		t.Errorf("state left behind: %v", left)
	}
}
