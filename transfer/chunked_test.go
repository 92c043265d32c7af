package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/progress"
)

const chunkTestSize = 128 << 10

func TestChunkedParallelDownload(t *testing.T) {
	data := genData(mib+12345, 30)
	var log reqLog
	var dropped atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		// One mid-file chunk dies half way, once.
		if r.Header.Get("Range") == fmt.Sprintf("bytes=%d-%d", 3*chunkTestSize, 4*chunkTestSize-1) && dropped.CompareAndSwap(false, true) {
			serveBytes(&dropWriter{ResponseWriter: w, left: chunkTestSize / 2}, r, data, `"c1"`)
			return
		}
		serveBytes(w, r, data, `"c1"`)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "blob")
	d, _ := testDownloader(t, Options{ChunkConcurrency: 4, ChunkSize: chunkTestSize}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL + "/blob?sig=x", Path: dest, SHA256: sha(data)}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	r := res[0]
	chunks := (len(data) + chunkTestSize - 1) / chunkTestSize
	if !r.Chunked || r.Retries != 1 || r.Restarts != 0 || log.count() != chunks+1 {
		t.Fatalf("chunked %v retries %d restarts %d requests %d (chunks %d)", r.Chunked, r.Retries, r.Restarts, log.count(), chunks)
	}
	if r.BytesTransferred != int64(len(data)) {
		t.Errorf("transferred %d, want %d: the broken chunk should resume, not restart", r.BytesTransferred, len(data))
	}
	seen := map[string]bool{}
	for i := range log.count() {
		rg := log.header(i, "Range")
		if rg == "" || seen[rg] {
			t.Errorf("request %d: Range %q missing or repeated", i, rg)
		}
		seen[rg] = true
		if i > 0 && log.header(i, "If-Range") != `"c1"` {
			t.Errorf("request %d (%s) without If-Range", i, rg)
		}
	}
	if log.header(0, "Range") != fmt.Sprintf("bytes=0-%d", chunkTestSize-1) {
		t.Errorf("probe Range %q", log.header(0, "Range"))
	}
}

func TestChunkedSmallFileIsOneRequest(t *testing.T) {
	data := genData(1000, 31)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "small")
	d, _ := testDownloader(t, Options{ChunkConcurrency: 4, ChunkSize: chunkTestSize}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].Chunked || log.count() != 1 {
		t.Errorf("chunked %v, %d requests", res[0].Chunked, log.count())
	}
}

func TestChunkedEmptyObject(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, nil, "") // a ranged GET of an empty object is a 416
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "empty")
	d, _ := testDownloader(t, Options{ChunkConcurrency: 4, ChunkSize: chunkTestSize}, newFakeClock())
	if _, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha(nil)}}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, nil)
}

func TestChunkedOffWhenServerIgnoresRange(t *testing.T) {
	data := genData(mib, 32)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serveNFC(w, data, -1)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "disk")
	d, _ := testDownloader(t, Options{ChunkConcurrency: 4, ChunkSize: chunkTestSize}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].Chunked || log.count() != 1 || res[0].BytesTransferred != int64(len(data)) {
		t.Errorf("chunked %v, %d requests, %d transferred: the 200 should be streamed as is",
			res[0].Chunked, log.count(), res[0].BytesTransferred)
	}
}

func TestChunkedRestartsAsSingleStreamWhenObjectChanges(t *testing.T) {
	v1, v2 := genData(mib, 33), genData(mib, 34)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) <= 2 {
			serveBytes(w, r, v1, `"v1"`)
			return
		}
		serveBytes(w, r, v2, `"v2"`) // If-Range "v1" no longer matches: 200
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "blob")
	d, _ := testDownloader(t, Options{ChunkConcurrency: 1 + 1, ChunkSize: chunkTestSize}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, v2)
	// The restart is one plain GET. (A chunk request cancelled by the
	// restart may still reach the server after it, so do not look at order.)
	plain := 0
	for i := range log.count() {
		if log.header(i, "Range") == "" {
			plain++
		}
	}
	if !res[0].Chunked || res[0].Restarts != 1 || plain != 1 {
		t.Errorf("chunked %v restarts %d, %d requests without Range", res[0].Chunked, res[0].Restarts, plain)
	}
}

func TestChunkedFailureKeepsOnlyTheContiguousPrefix(t *testing.T) {
	data := genData(mib, 35)
	const failing = 5 // of 8 chunks
	// The failing chunk answers only once every other chunk is on disk, so
	// the contiguous prefix is exactly chunks 0-4 and chunks 6-7 lie beyond
	// a hole.
	everyOther := make(chan struct{})
	var once sync.Once
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Range"), fmt.Sprintf("bytes=%d-", failing*chunkTestSize)) {
			select {
			case <-everyOther:
			case <-time.After(10 * time.Second):
			}
			http.Error(w, "denied", http.StatusForbidden)
			return
		}
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "blob")
	clk := newFakeClock()
	clk.step = time.Second // every write is reported
	d, _ := testDownloader(t, Options{
		ChunkConcurrency: 3, ChunkSize: chunkTestSize, KeepPartial: true,
		Progress: func(p progress.Report) {
			if p.ItemBytes == int64(len(data)-chunkTestSize) {
				once.Do(func() { close(everyOther) })
			}
		},
	}, clk)
	_, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v", err)
	}
	if exists(dest) || exists(dest+".chunks") {
		t.Fatal("final or chunks file left")
	}
	part, err := os.ReadFile(dest + ".part")
	if err != nil {
		t.Fatal(err)
	}
	if len(part) != failing*chunkTestSize || sha(part) != sha(data[:len(part)]) {
		t.Fatalf("kept %d bytes, want the %d-byte contiguous prefix", len(part), failing*chunkTestSize)
	}

	// And the next run resumes from it.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, data, "")
	}))
	defer ok.Close()
	res, err := d.Download(context.Background(), []File{{URL: ok.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].ReusedBytes != int64(len(part)) || res[0].BytesTransferred != int64(len(data)-len(part)) {
		t.Errorf("result %+v after keeping %d bytes", res[0], len(part))
	}
}

func TestStaleChunksFileIsDiscarded(t *testing.T) {
	data := genData(mib, 36)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "blob")
	// A crash during a chunked download leaves a file with holes.
	if err := os.WriteFile(dest+".chunks", make([]byte, len(data)), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := testDownloader(t, Options{KeepPartial: true}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].ReusedBytes != 0 {
		t.Errorf("reused %d bytes of an untrusted chunks file", res[0].ReusedBytes)
	}
}

// A wrong expected digest after a chunked (spliced) download earns exactly
// one clean single-stream download before the file fails.
func TestChunkedChecksumMismatchRetriesOnceThenFails(t *testing.T) {
	data := genData(mib, 37)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serveBytes(w, r, data, `"e"`)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "blob")
	d, _ := testDownloader(t, Options{ChunkConcurrency: 4, ChunkSize: chunkTestSize, KeepPartial: true}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha([]byte("other"))}})
	if !errors.Is(err, ErrChecksumMismatch) || !strings.Contains(err.Error(), dest) {
		t.Fatalf("err %v", err)
	}
	r := res[0]
	if !r.Chunked || r.Restarts != 1 || r.BytesTransferred != 2*int64(len(data)) {
		t.Errorf("result %+v", r)
	}
	plain := 0
	for i := range log.count() {
		if log.header(i, "Range") == "" {
			plain++
		}
	}
	if plain != 1 {
		t.Errorf("%d requests without Range, want the one clean retry", plain)
	}
	if exists(dest) || exists(dest+".part") || exists(dest+".chunks") {
		t.Error("a file that failed verification was left behind")
	}
}
