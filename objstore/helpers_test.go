package objstore_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hypersdk/hypersdk/internal/s3test"
	"github.com/hypersdk/hypersdk/providers"
)

// exporter hands the pipeline fixed reader disks.
type exporter struct {
	vm    *providers.VMInfo
	disks []providers.DiskSource
}

func (e *exporter) PrepareExport(context.Context, string, providers.ExportOptions) (*providers.Export, error) {
	return &providers.Export{VM: e.vm, Disks: e.disks}, nil
}

func newExporter(disks ...providers.DiskSource) *exporter {
	vm := &providers.VMInfo{Name: "web01", ID: "vm-1", CPUs: 2, MemoryMiB: 1024, GuestOS: "otherGuest64",
		NICs: []providers.NICInfo{{Label: "nic0", Network: "VM Network", Type: "vmxnet3"}}}
	for _, d := range disks {
		vm.Disks = append(vm.Disks, providers.DiskInfo{Label: d.Name, CapacityBytes: d.Capacity, Controller: "scsi0"})
	}
	return &exporter{vm: vm, disks: disks}
}

// diskBytes is a disk of size bytes: random 64 KiB blocks with every
// third one zero, so that outputs have holes and skipped grains.
func diskBytes(seed uint64, size int) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
	for off := 0; off < size; off += 64 << 10 {
		if (off/(64<<10))%3 == 1 {
			continue
		}
		for i := off; i < min(off+64<<10, size); i += 4 {
			v := rng.Uint32()
			b[i], b[i+1], b[i+2], b[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
	}
	return b
}

func readerDisk(name string, data []byte) providers.DiskSource {
	return providers.DiskSource{
		Name: name, Format: providers.SourceRaw, Capacity: int64(len(data)), Size: int64(len(data)),
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	}
}

// download copies every object under prefix into a new directory.
func download(t *testing.T, srv *s3test.Server, bucket, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	c := srv.Client()
	for _, key := range srv.Keys(t, bucket) {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		name := strings.TrimPrefix(key, prefix)
		if strings.Contains(name, "/") {
			t.Fatalf("object %s below the export's prefix", key)
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, out.Body); err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		out.Body.Close()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var manifestLine = regexp.MustCompile(`^SHA256\((.+)\)= ([0-9a-f]{64})$`)

// checkManifest verifies every line of the manifest mf in dir, and that
// it covers every other file there; it returns the names it lists.
func checkManifest(t *testing.T, dir, mf string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, mf))
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := manifestLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("manifest line %q", sc.Text())
		}
		if got := fileSum(t, filepath.Join(dir, m[1])); got != m[2] {
			t.Errorf("%s: SHA-256 %s, the manifest says %s", m[1], got, m[2])
		}
		names = append(names, m[1])
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != mf && !contains(names, e.Name()) {
			t.Errorf("%s is not in the manifest %s", e.Name(), mf)
		}
	}
	return names
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// openUploads lists the multipart uploads left open in bucket.
func openUploads(t *testing.T, srv *s3test.Server, bucket string) []string {
	t.Helper()
	out, err := srv.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// localWatch polls a directory tree while an export runs: the most bytes
// its files held at once, and every name seen that ends in ".stage".
type localWatch struct {
	once sync.Once
	stop chan struct{}
	done chan struct{}
	max  int64
	seen []string
}

func watchLocal(t *testing.T, dir string) *localWatch {
	w := &localWatch{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(w.end)
	go func() {
		defer close(w.done)
		for {
			var total int64
			_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				if strings.HasSuffix(d.Name(), ".stage") && !contains(w.seen, d.Name()) {
					w.seen = append(w.seen, d.Name())
				}
				if fi, err := d.Info(); err == nil {
					total += fi.Size()
				}
				return nil
			})
			w.max = max(w.max, total)
			select {
			case <-w.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return w
}

// check stops the watch and fails t if the directory ever held more than
// limit bytes or a staged copy.
func (w *localWatch) check(t *testing.T, limit int64) {
	t.Helper()
	w.end()
	if w.max > limit {
		t.Errorf("the local directory held up to %d bytes during the export, want at most %d (no local copy)", w.max, limit)
	}
	if len(w.seen) > 0 {
		t.Errorf("staged copies appeared: %v", w.seen)
	}
	t.Logf("the local directory held at most %d bytes", w.max)
}

func (w *localWatch) end() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}
