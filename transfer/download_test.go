package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/progress"
)

const mib = 1 << 20

func TestDownloadParallelHappyPath(t *testing.T) {
	sizes := []int{0, 1, mib + 17, 3*mib - 5, 2 * mib}
	data := make([][]byte, len(sizes))
	for i, n := range sizes {
		data[i] = genData(n, uint64(i+1))
	}
	var inflight, peak atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/disk-"))
		serveBytes(w, r, data[i], fmt.Sprintf(`"e%d"`, i))
	}))
	defer ts.Close()

	dir := t.TempDir()
	var (
		mu     sync.Mutex
		finals = map[string]progress.Report{}
		last   progress.Report
	)
	d, logs := testDownloader(t, Options{
		Concurrency: 3,
		Progress: func(p progress.Report) {
			mu.Lock()
			defer mu.Unlock()
			if p.Final {
				finals[p.Item] = p
			}
			if p.BytesDone >= last.BytesDone {
				last = p
			}
		},
	}, nil)
	files := make([]File, len(sizes))
	for i := range files {
		files[i] = File{
			URL:  fmt.Sprintf("%s/disk-%d?sig=topsecret", ts.URL, i),
			Path: filepath.Join(dir, fmt.Sprintf("disk-%d.vmdk", i)),
		}
		if i%2 == 0 {
			files[i].SHA256 = sha(data[i])
			files[i].Size = int64(sizes[i])
		}
	}
	res, err := d.Download(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i, r := range res {
		checkFile(t, files[i].Path, data[i])
		if r.Err != nil || r.SHA256 != sha(data[i]) || r.Size != int64(sizes[i]) || r.Path != files[i].Path {
			t.Errorf("file %d: result %+v", i, r)
		}
		if r.BytesTransferred != int64(sizes[i]) || r.Retries != 0 || r.Restarts != 0 {
			t.Errorf("file %d: transferred %d retries %d restarts %d on a clean run", i, r.BytesTransferred, r.Retries, r.Restarts)
		}
		f := finals[files[i].Path]
		if f.ItemBytes != int64(sizes[i]) || f.ItemSize != int64(sizes[i]) || f.Phase != progress.PhaseDownloading {
			t.Errorf("file %d: final progress %+v", i, f)
		}
		total += int64(sizes[i])
	}
	if last.BytesDone != total || last.BytesTotal != total {
		t.Errorf("last overall progress %+v, want %d of %d", last, total, total)
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d requests in flight, Concurrency is 3", p)
	}
	if strings.Contains(logs.String(), "topsecret") {
		t.Errorf("log leaks the URL query string:\n%s", logs.String())
	}
}

// TestConcurrency proves that Concurrency files really are in flight at once:
// no handler answers before three requests have arrived.
func TestConcurrency(t *testing.T) {
	var arrived atomic.Int64
	gate := make(chan struct{})
	var once sync.Once
	data := genData(1000, 7)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == 3 {
			once.Do(func() { close(gate) })
		}
		select {
		case <-gate:
		case <-time.After(10 * time.Second): // fail, not hang, if concurrency is broken
			http.Error(w, "concurrency never reached 3", http.StatusBadRequest)
			return
		}
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	dir := t.TempDir()
	d, _ := testDownloader(t, Options{Concurrency: 3}, nil)
	var files []File
	for i := range 6 {
		files = append(files, File{URL: fmt.Sprintf("%s/%d", ts.URL, i), Path: filepath.Join(dir, strconv.Itoa(i))})
	}
	if _, err := d.Download(context.Background(), files); err != nil {
		t.Fatal(err)
	}
}

func TestResumeAfterDrop(t *testing.T) {
	data := genData(4*mib+333, 2)
	half := len(data) / 2
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			serveBytes(&dropWriter{ResponseWriter: w, left: half}, r, data, `"v1"`)
			return
		}
		serveBytes(w, r, data, `"v1"`)
	}))
	defer ts.Close()

	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	d, logs := testDownloader(t, Options{}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{
		URL:    ts.URL + "/nfc/disk-0?token=topsecret",
		Path:   dest,
		Header: http.Header{"Cookie": {"vmware_soap_session=cookiesecret"}},
		Size:   int64(len(data)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	r := res[0]
	if r.SHA256 != sha(data) {
		t.Errorf("result sha %s", r.SHA256)
	}
	if log.count() != 2 || r.Retries != 1 || r.Restarts != 0 {
		t.Fatalf("requests %d, retries %d, restarts %d; want 2, 1, 0", log.count(), r.Retries, r.Restarts)
	}
	if got, want := log.header(1, "Range"), fmt.Sprintf("bytes=%d-", half); got != want {
		t.Errorf("resume Range %q, want %q", got, want)
	}
	if got := log.header(1, "If-Range"); got != `"v1"` {
		t.Errorf("resume If-Range %q, want the ETag", got)
	}
	for i := range 2 {
		if c := log.header(i, "Cookie"); c != "vmware_soap_session=cookiesecret" {
			t.Errorf("request %d: Cookie %q not forwarded", i, c)
		}
	}
	// Only the second half came again: re-downloaded bytes are a small fraction.
	if r.BytesTransferred != int64(len(data)) || float64(r.BytesTransferred) >= 1.1*float64(len(data)) {
		t.Errorf("transferred %d bytes for a %d-byte file", r.BytesTransferred, len(data))
	}
	if l := logs.String(); strings.Contains(l, "topsecret") || strings.Contains(l, "cookiesecret") {
		t.Errorf("log leaks a secret:\n%s", l)
	}
}

func TestNFCLikeServerRestartsCleanly(t *testing.T) {
	data := genData(3*mib+1, 3)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			serveNFC(w, data, len(data)/2)
			return
		}
		serveNFC(w, data, -1)
	}))
	defer ts.Close()

	dest := filepath.Join(t.TempDir(), "disk-0.vmdk")
	d, _ := testDownloader(t, Options{ChunkConcurrency: 4, ChunkSize: 256 << 10}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL + "/disk-0.vmdk", Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	r := res[0]
	if log.count() != 2 || r.Restarts != 1 || r.Chunked {
		t.Fatalf("requests %d, restarts %d, chunked %v; want 2, 1, false", log.count(), r.Restarts, r.Chunked)
	}
	if log.header(1, "Range") == "" {
		t.Error("the retry did not try to resume with Range")
	}
	if r.SHA256 != sha(data) || r.Size != int64(len(data)) {
		t.Errorf("result %+v", r)
	}
}

func TestWrongContentRangeRestarts(t *testing.T) {
	data := genData(2*mib, 4)
	half := len(data) / 2
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch log.add(r) {
		case 1:
			serveBytes(&dropWriter{ResponseWriter: w, left: half}, r, data, "")
		case 2: // a self-consistent 206 for the wrong place
			start := half - 1000
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(data[start:])
		default:
			serveBytes(w, r, data, "")
		}
	}))
	defer ts.Close()

	dest := filepath.Join(t.TempDir(), "f")
	d, _ := testDownloader(t, Options{}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if log.count() != 3 || res[0].Restarts != 1 {
		t.Fatalf("requests %d, restarts %d; want 3, 1", log.count(), res[0].Restarts)
	}
	if rg := log.header(2, "Range"); rg != "" {
		t.Errorf("after a bad Content-Range the download should start over, got Range %q", rg)
	}
}

func TestObjectChangedRestartsInsteadOfSplicing(t *testing.T) {
	v1, v2 := genData(2*mib, 5), genData(2*mib, 6)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			serveBytes(&dropWriter{ResponseWriter: w, left: mib}, r, v1, `"v1"`)
			return
		}
		serveBytes(w, r, v2, `"v2"`) // replaced meanwhile: If-Range "v1" fails, full 200
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "f")
	d, _ := testDownloader(t, Options{}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, v2)
	if log.header(1, "If-Range") != `"v1"` || res[0].Restarts != 1 {
		t.Fatalf("If-Range %q, restarts %d", log.header(1, "If-Range"), res[0].Restarts)
	}
}

func TestShortCloseDelimitedBodyIsResumed(t *testing.T) {
	data := genData(mib+99, 8)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			// No Content-Length, not chunked: the end of the body is the close,
			// so nothing but the expected size reveals it is short.
			rawResponse(w, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", data[:1000])
			return
		}
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "f")
	d, _ := testDownloader(t, Options{}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, Size: int64(len(data))}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if log.header(1, "Range") != "bytes=1000-" || res[0].Restarts != 0 || res[0].BytesTransferred != int64(len(data)) {
		t.Fatalf("range %q, result %+v", log.header(1, "Range"), res[0])
	}
}

func TestLongBodyIsRetried(t *testing.T) {
	data := genData(mib, 9)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			serveNFC(w, append(append([]byte(nil), data...), genData(5000, 10)...), -1)
			return
		}
		serveNFC(w, data, -1)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "f")
	d, _ := testDownloader(t, Options{}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, Size: int64(len(data))}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if log.count() != 2 || res[0].Restarts != 1 {
		t.Fatalf("requests %d, restarts %d", log.count(), res[0].Restarts)
	}
}

func TestPermanentStatusIsNotRetried(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			var hits atomic.Int64
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				http.Error(w, "nope", code)
			}))
			defer ts.Close()
			dir := t.TempDir()
			d, logs := testDownloader(t, Options{KeepPartial: true}, newFakeClock())
			res, err := d.Download(context.Background(), []File{{
				URL:  ts.URL + "/vmfs/disk-1.vmdk?sv=2024&sig=topsecret",
				Path: filepath.Join(dir, "disk-1.vmdk"),
			}})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrPermanent) || !errors.Is(res[0].Err, ErrPermanent) {
				t.Errorf("error does not wrap ErrPermanent: %v", err)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != code {
				t.Errorf("no StatusError with code %d in %v", code, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, ts.URL+"/vmfs/disk-1.vmdk") || strings.Contains(msg, "topsecret") || strings.Contains(msg, "sv=") {
				t.Errorf("error should name the URL without its query: %s", msg)
			}
			if strings.Contains(logs.String(), "topsecret") {
				t.Errorf("log leaks the signature:\n%s", logs.String())
			}
			if h := hits.Load(); h != 1 {
				t.Errorf("server hit %d times, want 1", h)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("files left behind: %v", ents)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		code       int
		retryAfter string
		maxWait    time.Duration
		want       time.Duration
	}{
		{"503 honours Retry-After", http.StatusServiceUnavailable, "1", 0, time.Second},
		{"429 Retry-After is capped", http.StatusTooManyRequests, "3600", 5 * time.Second, 5 * time.Second},
		{"500 uses the backoff", http.StatusInternalServerError, "", 0, time.Millisecond},
		{"408 uses the backoff", http.StatusRequestTimeout, "", 0, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := genData(100_000, 11)
			var hits atomic.Int64
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if hits.Add(1) == 1 {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					http.Error(w, "busy", tc.code)
					return
				}
				serveBytes(w, r, data, "")
			}))
			defer ts.Close()
			clk := newFakeClock()
			d, _ := testDownloader(t, Options{MaxRetryAfter: tc.maxWait}, clk)
			d.retry.Max, d.retry.Jitter = time.Millisecond, 0
			dest := filepath.Join(t.TempDir(), "f")
			res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, data)
			if got := clk.recorded(); len(got) != 1 || got[0] != tc.want {
				t.Errorf("waited %v, want [%v]", got, tc.want)
			}
			if hits.Load() != 2 || res[0].Retries != 1 {
				t.Errorf("hits %d, retries %d", hits.Load(), res[0].Retries)
			}
		})
	}
}

func TestGivesUpAfterMaxRetries(t *testing.T) {
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer ts.Close()
	clk := newFakeClock()
	d, _ := testDownloader(t, Options{MaxRetries: 3}, clk)
	dest := filepath.Join(t.TempDir(), "f")
	_, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if err == nil || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("want a non-permanent give-up error, got %v", err)
	}
	if hits.Load() != 4 || len(clk.recorded()) != 3 {
		t.Errorf("hits %d, waits %d; want 4, 3", hits.Load(), len(clk.recorded()))
	}
	if exists(dest) || exists(dest+".part") {
		t.Error("files left behind")
	}
}

func TestSizeMismatchIsPermanent(t *testing.T) {
	data := genData(1000, 12)
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	d, _ := testDownloader(t, Options{}, newFakeClock())
	dest := filepath.Join(t.TempDir(), "f")
	_, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, Size: 2000}})
	if !errors.Is(err, ErrSizeMismatch) || !errors.Is(err, ErrPermanent) || hits.Load() != 1 {
		t.Fatalf("err %v, hits %d", err, hits.Load())
	}
	if exists(dest) || exists(dest+".part") {
		t.Error("files left behind")
	}
}

func TestExpectedSHAMismatch(t *testing.T) {
	data := genData(mib+5, 13)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	d, _ := testDownloader(t, Options{KeepPartial: true}, newFakeClock())
	dest := filepath.Join(t.TempDir(), "disk-7.vmdk")
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha([]byte("something else"))}})
	if !errors.Is(err, ErrChecksumMismatch) || !strings.Contains(err.Error(), dest) {
		t.Fatalf("want a checksum error naming %s, got %v", dest, err)
	}
	if res[0].SHA256 != "" || res[0].Err == nil {
		t.Errorf("result %+v", res[0])
	}
	if exists(dest) || exists(dest+".part") {
		t.Error("a file that failed verification must not exist under any name, even with KeepPartial")
	}
}

func TestCancelStopsStreamsAndCleansUp(t *testing.T) {
	const files = 3
	started := make(chan struct{}, files)
	gone := make(chan struct{}, files)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(64*mib))
		_, _ = w.Write(genData(256<<10, 14))
		http.NewResponseController(w).Flush()
		started <- struct{}{}
		<-r.Context().Done() // a server that never finishes
		gone <- struct{}{}
	}))
	defer ts.Close()

	dir := t.TempDir()
	d, _ := testDownloader(t, Options{Concurrency: files}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var list []File
	for i := range files {
		list = append(list, File{URL: fmt.Sprintf("%s/%d", ts.URL, i), Path: filepath.Join(dir, strconv.Itoa(i))})
	}
	type out struct {
		res []Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := d.Download(ctx, list)
		done <- out{res, err}
	}()
	for range files {
		<-started
	}
	cancel()
	var o out
	select {
	case o = <-done:
	case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("Download did not return after cancellation")
	}
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", o.err)
	}
	for i, r := range o.res {
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("file %d: %v", i, r.Err)
		}
	}
	for range files {
		select {
		case <-gone:
		case <-time.After(20 * time.Second):
			t.Fatal("the server never saw the client go away")
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left behind: %v", ents)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	asked := make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "later", http.StatusServiceUnavailable)
		select {
		case asked <- struct{}{}:
		default:
		}
	}))
	defer ts.Close()
	d, _ := testDownloader(t, Options{MaxRetryAfter: time.Hour}, nil) // real clock: a real hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	dest := filepath.Join(t.TempDir(), "f")
	go func() {
		_, err := d.Download(ctx, []File{{URL: ts.URL, Path: dest}})
		done <- err
	}()
	<-asked
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Download kept sleeping after cancellation")
	}
	if exists(dest + ".part") {
		t.Error(".part left behind")
	}
}

func TestStalledStreamIsResumed(t *testing.T) {
	data := genData(2*mib, 15)
	half := len(data) / 2
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			_, _ = w.Write(data[:half])
			http.NewResponseController(w).Flush()
			<-r.Context().Done() // alive, connected, silent
			return
		}
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	// Long enough that a busy test machine does not look like a stall.
	d, _ := testDownloader(t, Options{StallTimeout: 250 * time.Millisecond}, nil)
	dest := filepath.Join(t.TempDir(), "f")
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if log.header(1, "Range") != fmt.Sprintf("bytes=%d-", half) || res[0].Retries < 1 || res[0].Restarts != 0 {
		t.Fatalf("range %q, retries %d", log.header(1, "Range"), res[0].Retries)
	}
}

func TestResumeFromPartialFileOfEarlierRun(t *testing.T) {
	data := genData(4*mib+1, 16)
	half := len(data) / 2
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serveBytes(w, r, data, `"x"`)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	if err := os.WriteFile(dest+".part", data[:half], 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := testDownloader(t, Options{KeepPartial: true}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha(data)}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	r := res[0]
	if log.count() != 1 || log.header(0, "Range") != fmt.Sprintf("bytes=%d-", half) {
		t.Fatalf("requests %d, range %q", log.count(), log.header(0, "Range"))
	}
	if r.BytesTransferred != int64(len(data)-half) || r.ReusedBytes != int64(half) || r.SHA256 != sha(data) {
		t.Errorf("result %+v", r)
	}
}

func TestStalePartialFileIsReplacedWhenChecksumFails(t *testing.T) {
	data := genData(2*mib, 17)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	// The object was replaced between two runs; nothing but the digest knows.
	if err := os.WriteFile(dest+".part", genData(mib, 99), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := testDownloader(t, Options{KeepPartial: true}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha(data)}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].Restarts != 1 {
		t.Errorf("restarts %d, want 1", res[0].Restarts)
	}
}

func TestCompletePartialFileIsNotDownloadedAgain(t *testing.T) {
	data := genData(mib, 18)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serveBytes(w, r, data, "")
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(dest+".part", data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := testDownloader(t, Options{KeepPartial: true}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, Size: int64(len(data))}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].BytesTransferred != 0 || log.count() != 1 {
		t.Errorf("transferred %d in %d requests", res[0].BytesTransferred, log.count())
	}
}

func TestKeepPartialOnFailureThenResume(t *testing.T) {
	data := genData(2*mib+7, 19)
	half := len(data) / 2
	var log reqLog
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.add(r) == 1 {
			serveBytes(&dropWriter{ResponseWriter: w, left: half}, r, data, "")
			return
		}
		http.Error(w, "gone away", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	dest := filepath.Join(t.TempDir(), "f")
	d, _ := testDownloader(t, Options{KeepPartial: true, MaxRetries: 1}, newFakeClock())
	if _, err := d.Download(context.Background(), []File{{URL: broken.URL, Path: dest}}); err == nil {
		t.Fatal("no error from a server that broke")
	}
	part, err := os.ReadFile(dest + ".part")
	if err != nil {
		t.Fatal(err)
	}
	if len(part) != half || sha(part) != sha(data[:half]) {
		t.Fatalf("kept %d bytes, want the %d received", len(part), half)
	}

	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, data, "")
	}))
	defer good.Close()
	res, err := d.Download(context.Background(), []File{{URL: good.URL, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].BytesTransferred != int64(len(data)-half) {
		t.Errorf("transferred %d, want %d", res[0].BytesTransferred, len(data)-half)
	}
}

func TestFailureStopsSiblings(t *testing.T) {
	blocked := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			<-blocked // fail only once the other file is streaming
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(64*mib))
		_, _ = w.Write(genData(1000, 1))
		http.NewResponseController(w).Flush()
		close(blocked)
		<-r.Context().Done()
	}))
	defer ts.Close()
	dir := t.TempDir()
	d, _ := testDownloader(t, Options{}, nil)
	res, err := d.Download(context.Background(), []File{
		{URL: ts.URL + "/slow", Path: filepath.Join(dir, "slow")},
		{URL: ts.URL + "/missing", Path: filepath.Join(dir, "missing")},
	})
	if !errors.Is(err, ErrPermanent) || errors.Is(err, context.Canceled) {
		t.Fatalf("err %v: want the 404 only", err)
	}
	if !errors.Is(res[0].Err, context.Canceled) {
		t.Errorf("sibling result: %v", res[0].Err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left behind: %v", ents)
	}
}

func TestInvalidRequestsAreRefusedUpFront(t *testing.T) {
	d, _ := testDownloader(t, Options{}, nil)
	dir := t.TempDir()
	for name, files := range map[string][]File{
		"relative URL":    {{URL: "/x", Path: filepath.Join(dir, "a")}},
		"ftp URL":         {{URL: "ftp://h/x", Path: filepath.Join(dir, "a")}},
		"no path":         {{URL: "http://h/x"}},
		"bad sha":         {{URL: "http://h/x", Path: filepath.Join(dir, "a"), SHA256: "abc"}},
		"same dest twice": {{URL: "http://h/x", Path: filepath.Join(dir, "a")}, {URL: "http://h/y", Path: filepath.Join(dir, ".", "a")}},
	} {
		if _, err := d.Download(context.Background(), files); !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files created: %v", ents)
	}
}

func TestProgressIsThrottled(t *testing.T) {
	a, b := genData(3*mib, 20), genData(2*mib+1, 21)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			serveBytes(w, r, a, "")
		} else {
			serveNFC(w, b, -1)
		}
	}))
	defer ts.Close()
	var mu sync.Mutex
	var reports []progress.Report
	dir := t.TempDir()
	// The fake clock never advances, so after each file's first report only
	// its final one may follow.
	d, _ := testDownloader(t, Options{Concurrency: 1, Progress: func(p progress.Report) {
		mu.Lock()
		reports = append(reports, p)
		mu.Unlock()
	}}, newFakeClock())
	pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if _, err := d.Download(context.Background(), []File{{URL: ts.URL + "/a", Path: pa}, {URL: ts.URL + "/b", Path: pb}}); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 4 {
		t.Fatalf("%d reports, want 4: %+v", len(reports), reports)
	}
	const dl = progress.PhaseDownloading
	want := []progress.Report{
		// The first report comes after the first block (one buffer). Sizes
		// and totals not known yet are 0.
		{Phase: dl, Item: pa, ItemBytes: bufferSize, ItemSize: int64(len(a)), BytesDone: bufferSize, BytesTotal: 0},
		{Phase: dl, Item: pa, ItemBytes: int64(len(a)), ItemSize: int64(len(a)), BytesDone: int64(len(a)), BytesTotal: 0, Final: true},
		{Phase: dl, Item: pb, ItemBytes: bufferSize, ItemSize: 0, BytesDone: int64(len(a)) + bufferSize, BytesTotal: 0},
		{Phase: dl, Item: pb, ItemBytes: int64(len(b)), ItemSize: int64(len(b)), BytesDone: int64(len(a) + len(b)), BytesTotal: int64(len(a) + len(b)), Final: true},
	}
	for i := range want {
		if reports[i] != want[i] {
			t.Errorf("report %d: %+v, want %+v", i, reports[i], want[i])
		}
	}
}

func TestMemoryStaysFlat(t *testing.T) {
	const size = 48 * mib
	p := newPattern(size)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, p.reader())
	}))
	defer ts.Close()
	d, _ := testDownloader(t, Options{}, nil)
	dest := filepath.Join(t.TempDir(), "big")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: p.sha()}})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	// Client and server together; a design that buffered the body would
	// allocate at least its 48 MiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*mib {
		t.Errorf("allocated %d MiB to move %d MiB", alloc/mib, size/mib)
	}
	if res[0].Size != size {
		t.Errorf("size %d", res[0].Size)
	}
}
