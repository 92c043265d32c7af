package azblobfake_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
)

// direct is an SDK transport serving requests in-process: a panic in the
// server fails the test instead of being recovered by net/http. With limit
// set, a body longer than that fails its writes (as a client that hangs up
// would): the fuzzer may well ask for all 8 TiB of a blob it created.
type direct struct {
	s     *azblobfake.Server
	limit int
}

// limitedRecorder is a ResponseRecorder whose body writes fail past limit.
type limitedRecorder struct {
	*httptest.ResponseRecorder
	limit     int
	truncated bool
}

func (l *limitedRecorder) Write(p []byte) (int, error) {
	if l.limit > 0 && l.Body.Len()+len(p) > l.limit {
		l.truncated = true
		return 0, errors.New("client gone")
	}
	return l.ResponseRecorder.Write(p)
}

func (d direct) Do(r *http.Request) (*http.Response, error) {
	in := r.Clone(r.Context())
	// As on the wire: the server sees canonical header names.
	in.Header = http.Header{}
	for k, v := range r.Header {
		for _, x := range v {
			in.Header.Add(k, x)
		}
	}
	if in.ContentLength > 0 || (in.Body != nil && in.Body != http.NoBody) {
		in.Header.Set("Content-Length", fmt.Sprint(in.ContentLength))
	}
	in.RequestURI = r.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:40000"
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := &limitedRecorder{ResponseRecorder: httptest.NewRecorder(), limit: d.limit}
	d.s.ServeHTTP(rec, in)
	resp := rec.Result()
	if rec.truncated {
		resp.Header.Set("X-Test-Truncated", "1")
	}
	return resp, nil
}

// rewrite is a per-call policy that edits a request before it is signed,
// to send what the SDK would not, correctly signed.
type rewrite func(*policy.Request)

func (f rewrite) Do(req *policy.Request) (*http.Response, error) {
	f(req)
	return req.Next()
}

type clientOpts struct {
	transport policy.Transporter
	rewrite   rewrite
	retries   int32
}

func pageClient(t testing.TB, url string, o clientOpts) *pageblob.Client {
	t.Helper()
	co := policy.ClientOptions{Transport: o.transport, Retry: policy.RetryOptions{MaxRetries: -1}}
	if o.retries > 0 {
		co.Retry = policy.RetryOptions{MaxRetries: o.retries, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Millisecond}
	}
	if o.rewrite != nil {
		co.PerCallPolicies = []policy.Policy{o.rewrite}
	}
	c, err := pageblob.NewClientWithSharedKeyCredential(url, sharedKeyTB(t), &pageblob.ClientOptions{ClientOptions: co})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sharedKeyTB(t testing.TB) *blob.SharedKeyCredential {
	cred, err := blob.NewSharedKeyCredential(azblobfake.AccountName, azblobfake.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// TestSparseTerabyte: a 1 TiB page blob with 12 MiB written costs about
// 12 MiB, and reads anywhere in it are right.
func TestSparseTerabyte(t *testing.T) {
	s := azblobfake.New(azblobfake.Options{})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pb := pageClient(t, s.URL()+"/disks/big.vhd", clientOpts{})
	const size = 1 << 40
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := pb.Create(ctx, size, nil); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	chunks := map[int64][]byte{0: randomBytes(rng, 4<<20), 512 << 30: randomBytes(rng, 4<<20), size - 4<<20: randomBytes(rng, 4<<20)}
	for off, b := range chunks {
		if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(b)), blob.HTTPRange{Offset: off, Count: int64(len(b))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if st := s.Stats(); st.BytesStored != 12<<20 {
		t.Fatalf("stored %d bytes, want %d", st.BytesStored, 12<<20)
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Fatalf("heap grew by %d MiB for 12 MiB written", grown>>20)
	}
	ranges := pageRanges(t, pb, nil)
	if want := [][2]int64{{0, 4<<20 - 1}, {512 << 30, 512<<30 + 4<<20 - 1}, {size - 4<<20, size - 1}}; fmt.Sprint(ranges) != fmt.Sprint(want) {
		t.Fatalf("page ranges %v, want %v", ranges, want)
	}
	for off, b := range chunks {
		r := blob.HTTPRange{Offset: off + 1000, Count: 100000}
		if got := download(t, pb.BlobClient(), &blob.DownloadStreamOptions{Range: r}); !bytes.Equal(got, b[1000:101000]) {
			t.Fatalf("read at %d differs", off)
		}
	}
	hole := download(t, pb.BlobClient(), &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 700 << 30, Count: 1 << 20}})
	if !bytes.Equal(hole, make([]byte, 1<<20)) {
		t.Fatal("a hole does not read as zeros")
	}
}

// TestSeededBlob: a blob seeded from an io.ReaderAt reads from it lazily
// (no memory), and writes through the API overlay it.
func TestSeededBlob(t *testing.T) {
	s := azblobfake.New(azblobfake.Options{})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		t.Fatal(err)
	}
	const size = 8 << 30
	src := patternReader{}
	ranges := []azblobfake.PageRange{{Start: 0, End: 1<<20 - 1}, {Start: 4 << 30, End: 4<<30 + 64<<20 - 1}, {Start: size - 512, End: size - 1}}
	if err := s.PutPageBlobFrom("disks", "seeded.vhd", size, src, ranges); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPageBlobFrom("disks", "bad.vhd", size, src, []azblobfake.PageRange{{Start: 100, End: 611}}); err == nil {
		t.Fatal("an unaligned seed range was accepted")
	}
	pb := pageClient(t, s.URL()+"/disks/seeded.vhd", clientOpts{})
	ctx := context.Background()
	if got := pageRanges(t, pb, nil); fmt.Sprint(got) != fmt.Sprint([][2]int64{{0, 1<<20 - 1}, {4 << 30, 4<<30 + 64<<20 - 1}, {size - 512, size - 1}}) {
		t.Fatalf("seeded page ranges %v", got)
	}
	want := func(off, n int64) []byte {
		b := make([]byte, n)
		for i := range b {
			p := off + int64(i)
			in := false
			for _, r := range ranges {
				in = in || (p >= r.Start && p <= r.End)
			}
			if in {
				b[i] = pattern(p)
			}
		}
		return b
	}
	r := blob.HTTPRange{Offset: 4<<30 - 1000, Count: 3 << 20}
	if got := download(t, pb.BlobClient(), &blob.DownloadStreamOptions{Range: r}); !bytes.Equal(got, want(r.Offset, r.Count)) {
		t.Fatal("seeded read differs")
	}
	over := bytes.Repeat([]byte{0xAB}, 1024)
	if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(over)), blob.HTTPRange{Offset: 4<<30 + 512, Count: 1024}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.ClearPages(ctx, blob.HTTPRange{Offset: 4<<30 + 4096, Count: 512}, nil); err != nil {
		t.Fatal(err)
	}
	got := download(t, pb.BlobClient(), &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 4 << 30, Count: 8192}})
	exp := want(4<<30, 8192)
	copy(exp[512:], over)
	clear(exp[4096:4608])
	if !bytes.Equal(got, exp) {
		t.Fatal("overlay read differs")
	}
	if st := s.Stats(); st.BytesStored != 1024 {
		t.Fatalf("stored %d bytes, want the 1024 written", st.BytesStored)
	}
}

func pattern(off int64) byte { return byte(off*7 + off>>9) }

type patternReader struct{}

func (patternReader) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = pattern(off + int64(i))
	}
	return len(p), nil
}

// TestFaults: injected 503/500 answers are retried by the SDK and the bytes
// still come out right; a cut body ends the stream early.
func TestFaults(t *testing.T) {
	var cut sync.Once
	s := azblobfake.New(azblobfake.Options{FailRate: 0.3, Seed: 7, Fault: func(r azblobfake.Request) azblobfake.Fault {
		if r.Op != azblobfake.OpGetBlob || r.RangeStart != 1<<20 {
			return azblobfake.Fault{}
		}
		var f azblobfake.Fault
		cut.Do(func() { f.CutAfter = 1000 })
		return f
	}})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(rand.New(rand.NewPCG(5, 6)), 2<<20)
	if err := s.PutPageBlob("disks", "d.vhd", 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePages("disks", "d.vhd", 0, data); err != nil {
		t.Fatal(err)
	}
	pb := pageClient(t, s.URL()+"/disks/d.vhd", clientOpts{retries: 50})
	for off := int64(0); off < 2<<20; off += 64 << 10 {
		if off == 1<<20 {
			continue
		}
		r := blob.HTTPRange{Offset: off, Count: 64 << 10}
		if got := download(t, pb.BlobClient(), &blob.DownloadStreamOptions{Range: r}); !bytes.Equal(got, data[off:off+64<<10]) {
			t.Fatalf("read at %d differs", off)
		}
	}
	st := s.Stats()
	if st.Faults == 0 || st.Errors["ServerBusy"] == 0 || st.Errors["InternalError"] == 0 {
		t.Fatalf("faults %d, errors %v: want both kinds injected", st.Faults, st.Errors)
	}

	// The cut: a plain client sees the body end early.
	resp, err := pb.DownloadStream(context.Background(), &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 1 << 20, Count: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(got) >= 64<<10 {
		t.Fatalf("cut body: read %d bytes, err %v; want an early end", len(got), err)
	}
	if !bytes.Equal(got, data[1<<20:1<<20+len(got)]) {
		t.Fatal("bytes before the cut differ")
	}
}

// TestSASExpiry: SAS stop working by use count, by ExpireSAS (also before
// the first use), and by the service clock.
func TestSASExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := azblobfake.New(azblobfake.Options{ExpireSASAfter: 3, Now: clock})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPageBlob("disks", "a/os.vhd", 1<<20); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read := func(u string) error {
		c, err := pageblob.NewClientWithNoCredential(u, &pageblob.ClientOptions{ClientOptions: noRetry.ClientOptions})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 0, Count: 512}})
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	u, err := s.SASURL("disks", "a/os.vhd", clock().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if path, _, _ := strings.Cut(u, "?"); path != s.URL()+"/disks/a/os.vhd" {
		t.Fatalf("SAS URL path: %s", path)
	}
	for i := range 3 {
		if err := read(u); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	wantErr(t, "fourth use", read(u), 403, "AuthenticationFailed")

	u2, _ := s.SASURL("disks", "a/os.vhd", clock().Add(2*time.Hour))
	if err := read(u2); err != nil {
		t.Fatal(err)
	}
	u3, _ := s.SASURL("disks", "a/os.vhd", clock().Add(3*time.Hour)) // minted, not yet used
	s.ExpireSAS("disks", "a/os.vhd")
	wantErr(t, "revoked SAS", read(u2), 403, "AuthenticationFailed")
	wantErr(t, "revoked SAS never used", read(u3), 403, "AuthenticationFailed")

	// (The same values sign to the same SAS: u4 must differ from u.)
	u4, _ := s.SASURL("disks", "a/os.vhd", clock().Add(90*time.Minute))
	if err := read(u4); err != nil {
		t.Fatalf("a SAS minted after the revocation: %v", err)
	}
	mu.Lock()
	now = now.Add(91 * time.Minute)
	mu.Unlock()
	wantErr(t, "SAS past its expiry by the service clock", read(u4), 403, "AuthenticationFailed")
	if st := s.Stats(); st.AuthFailures != 4 {
		t.Fatalf("auth failures %d, want 4", st.AuthFailures)
	}
}

// TestInspect: every authorized request is shown with its operation and
// range, and concurrent GETs are counted.
func TestInspect(t *testing.T) {
	var mu sync.Mutex
	var seen []azblobfake.Request
	s := azblobfake.New(azblobfake.Options{Latency: 20 * time.Millisecond, Inspect: func(r azblobfake.Request) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
	}})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPageBlob("disks", "d.vhd", 8<<20); err != nil {
		t.Fatal(err)
	}
	pb := pageClient(t, s.URL()+"/disks/d.vhd", clientOpts{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			download(t, pb.BlobClient(), &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: int64(i) << 20, Count: 1 << 20}})
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.RangedGets != 8 || st.BytesServed != 8<<20 || st.Ops[azblobfake.OpGetBlob] != 8 {
		t.Fatalf("stats %+v", st)
	}
	if st.MaxConcurrentGets < 1 || st.MaxConcurrentGets > 8 {
		t.Fatalf("max concurrent GETs %d", st.MaxConcurrentGets)
	}
	starts := map[int64]bool{}
	for _, r := range seen {
		if r.Op != azblobfake.OpGetBlob || r.Auth != azblobfake.AuthSharedKey || !r.HasRange || r.RangeEnd-r.RangeStart != 1<<20-1 {
			t.Fatalf("request %+v", r)
		}
		starts[r.RangeStart] = true
	}
	if len(starts) != 8 {
		t.Fatalf("ranges seen: %v", starts)
	}
	if bl := s.Blobs(""); len(bl) != 1 || bl[0].Name != "d.vhd" || bl[0].Size != 8<<20 || bl[0].StoredBytes != 0 {
		t.Fatalf("blobs %+v", bl)
	}
}

// TestHostileRequests: correctly signed but hostile requests are refused
// with Azure's error codes, and nothing allocates more than what arrives.
func TestHostileRequests(t *testing.T) {
	s := azblobfake.New(azblobfake.Options{})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPageBlob("disks", "d.vhd", 1<<20); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		edit   func(*policy.Request)
		op     func(*pageblob.Client) error
		status int
		code   string
	}{
		{"8 TiB page blob", nil, func(c *pageblob.Client) error { _, err := c.Create(ctx, azblobfake.MaxPageBlobSize, nil); return err }, 0, ""},
		{"8 TiB + 512", nil, func(c *pageblob.Client) error {
			_, err := c.Create(ctx, azblobfake.MaxPageBlobSize+512, nil)
			return err
		}, 400, "InvalidHeaderValue"},
		{"negative size", nil, func(c *pageblob.Client) error { _, err := c.Create(ctx, -512, nil); return err }, 400, "InvalidHeaderValue"},
		{"range to MaxInt64", setHeader("x-ms-range", "bytes=0-9223372036854775807"), getRange(ctx), 0, ""},
		{"range start past MaxInt64", setHeader("x-ms-range", "bytes=9223372036854775808-"), getRange(ctx), 400, "InvalidHeaderValue"},
		{"suffix range", setHeader("x-ms-range", "bytes=-5"), getRange(ctx), 400, "InvalidHeaderValue"},
		{"reversed range", setHeader("x-ms-range", "bytes=10-5"), getRange(ctx), 400, "InvalidHeaderValue"},
		{"multi range", setHeader("x-ms-range", "bytes=0-5,10-20"), getRange(ctx), 400, "InvalidHeaderValue"},
		{"MD5 without range", setHeader("x-ms-range-get-content-md5", "true"), func(c *pageblob.Client) error {
			_, err := c.DownloadStream(ctx, nil)
			return err
		}, 400, "InvalidHeaderValue"},
		{"put page to MaxInt64", setHeader("x-ms-range", "bytes=0-9223372036854775807"), putPage(ctx, 512), 416, "InvalidPageRange"},
		{"put page over 4 MiB", nil, putPage(ctx, 4<<20+512), 413, "RequestBodyTooLarge"},
		{"put page length mismatch", setHeader("x-ms-range", "bytes=0-1023"), putPage(ctx, 512), 400, "InvalidHeaderValue"},
		{"put page bad mode", setHeader("x-ms-page-write", "append"), putPage(ctx, 512), 400, "InvalidHeaderValue"},
		{"page ranges bad marker", setQuery("marker", "xyz"), pageRangesOp(ctx), 400, "InvalidQueryParameterValue"},
		{"page ranges maxresults 0", setQuery("maxresults", "0"), pageRangesOp(ctx), 400, "OutOfRangeQueryParameterValue"},
		{"page ranges past the end", setHeader("x-ms-range", "bytes=2097152-"), pageRangesOp(ctx), 416, "InvalidPageRange"},
		{"unknown comp", setQuery("comp", "nonsense"), getRange(ctx), 400, "InvalidQueryParameterValue"},
		{"PATCH", func(r *policy.Request) { r.Raw().Method = "PATCH" }, getRange(ctx), 405, "UnsupportedHttpVerb"},
		{"snapshot", setQuery("snapshot", "2024-01-01T00:00:00.0000000Z"), getRange(ctx), 404, "BlobNotFound"},
		{"bad snapshot", setQuery("snapshot", "yesterday"), getRange(ctx), 400, "InvalidQueryParameterValue"},
		{"old version", setHeader("x-ms-version", "2009-01-01"), getRange(ctx), 400, "InvalidHeaderValue"},
		{"no version", delHeader("x-ms-version"), getRange(ctx), 400, "MissingRequiredHeader"},
		{"stale date", setHeader("x-ms-date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)), getRange(ctx), 403, "AuthenticationFailed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Creations go to another blob, so d.vhd stays 1 MiB.
			c := pageClient(t, s.URL()+"/disks/d.vhd", clientOpts{transport: direct{s: s}, rewrite: tc.edit})
			if strings.Contains(tc.name, "size") || strings.HasPrefix(tc.name, "8 TiB") {
				c = pageClient(t, s.URL()+"/disks/other.vhd", clientOpts{transport: direct{s: s}, rewrite: tc.edit})
			}
			err := tc.op(c)
			if tc.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, tc.name, err, tc.status, tc.code)
		})
	}
	if st := s.Stats(); st.BytesStored != 0 {
		t.Fatalf("refused requests stored %d bytes", st.BytesStored)
	}
}

// setHeader replaces a header whatever the case of its key in the map (the
// SDK writes lowercase keys directly), so exactly one value is sent.
func setHeader(k, v string) func(*policy.Request) {
	return func(r *policy.Request) {
		delHeader(k)(r)
		r.Raw().Header[strings.ToLower(k)] = []string{v}
	}
}

func delHeader(k string) func(*policy.Request) {
	return func(r *policy.Request) {
		for key := range r.Raw().Header {
			if strings.EqualFold(key, k) {
				delete(r.Raw().Header, key)
			}
		}
	}
}

func setQuery(k, v string) func(*policy.Request) {
	return func(r *policy.Request) {
		q := r.Raw().URL.Query()
		q.Set(k, v)
		r.Raw().URL.RawQuery = q.Encode()
	}
}

func getRange(ctx context.Context) func(*pageblob.Client) error {
	return func(c *pageblob.Client) error {
		resp, err := c.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 0, Count: 512}})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
}

func putPage(ctx context.Context, n int) func(*pageblob.Client) error {
	return func(c *pageblob.Client) error {
		_, err := c.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(make([]byte, n))), blob.HTTPRange{Offset: 0, Count: int64(n)}, nil)
		return err
	}
}

func pageRangesOp(ctx context.Context) func(*pageblob.Client) error {
	return func(c *pageblob.Client) error {
		_, err := c.NewGetPageRangesPager(nil).NextPage(ctx)
		return err
	}
}

// FuzzServe sends correctly signed requests built from fuzz input through
// the SDK's own signing to the server in-process: it must not panic, must
// answer with a status and, for errors, a well-formed Azure error.
func FuzzServe(f *testing.F) {
	f.Add(uint8(0), "disks/d.vhd", "", "bytes=0-511", "", "", []byte{})
	f.Add(uint8(1), "disks/d.vhd", "comp=page", "bytes=512-1023", "update", "", bytes.Repeat([]byte{1}, 512))
	f.Add(uint8(1), "disks/d.vhd", "comp=page", "bytes=0-4095", "clear", "", []byte{})
	f.Add(uint8(0), "disks/d.vhd", "comp=pagelist&maxresults=1&marker=512", "bytes=0-", "", "", []byte{})
	f.Add(uint8(1), "disks/new.vhd", "", "", "", "8796093022208", []byte{})
	f.Add(uint8(1), "disks/blk", "", "", "", "", []byte("hello"))
	f.Add(uint8(2), "disks/d.vhd", "", "", "", "", []byte{})
	f.Add(uint8(0), "disks", "restype=container&comp=list&delimiter=/&prefix=d", "", "", "", []byte{})
	f.Add(uint8(3), "disks/d.vhd", "", "bytes=9223372036854775806-9223372036854775807", "", "", []byte{})
	s := azblobfake.New(azblobfake.Options{})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		f.Fatal(err)
	}
	if err := s.PutPageBlob("disks", "d.vhd", 1<<20); err != nil {
		f.Fatal(err)
	}
	if err := s.WritePages("disks", "d.vhd", 4096, make([]byte, 8192)); err != nil {
		f.Fatal(err)
	}
	methods := []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodPost}
	f.Fuzz(func(t *testing.T, method uint8, path, query, rng, pageWrite, blobLen string, body []byte) {
		if len(body) > 1<<20 || strings.ContainsAny(path, "?#") {
			return
		}
		c := pageClient(t, s.URL()+"/disks/d.vhd", clientOpts{transport: capture{direct{s: s, limit: 4 << 20}}, rewrite: func(r *policy.Request) {
			raw := r.Raw()
			raw.Method = methods[int(method)%len(methods)]
			raw.URL.Path = "/" + azblobfake.AccountName + "/" + path
			raw.URL.RawPath = ""
			raw.URL.RawQuery = query
			raw.Header = http.Header{"x-ms-version": {"2026-12-06"}}
			if rng != "" {
				raw.Header.Set("x-ms-range", rng)
			}
			if pageWrite != "" {
				raw.Header.Set("x-ms-page-write", pageWrite)
				raw.Header.Set("x-ms-blob-type", "PageBlob")
			} else if len(body) > 0 {
				raw.Header.Set("x-ms-blob-type", "BlockBlob")
			}
			if blobLen != "" {
				raw.Header.Set("x-ms-blob-content-length", blobLen)
				raw.Header.Set("x-ms-blob-type", "PageBlob")
			}
			if len(body) > 0 {
				_ = r.SetBody(streaming.NopCloser(bytes.NewReader(body)), "application/octet-stream")
			} else {
				raw.Body, raw.ContentLength = nil, 0
				raw.Header.Del("Content-Length")
			}
		}})
		_, _ = c.GetProperties(context.Background(), nil)
	})
}

// capture checks every answer of the server in FuzzServe.
type capture struct{ d direct }

func (c capture) Do(r *http.Request) (*http.Response, error) {
	resp, err := c.d.Do(r)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode < 200 || resp.StatusCode > 599 {
		panic(fmt.Sprintf("status %d", resp.StatusCode))
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" && r.Method != http.MethodHead && resp.Header.Get("X-Test-Truncated") == "" && cl != fmt.Sprint(len(body)) {
		panic(fmt.Sprintf("Content-Length %s for a %d-byte body", cl, len(body)))
	}
	if resp.StatusCode >= 400 {
		code := resp.Header.Get("x-ms-error-code")
		if code == "" {
			panic(fmt.Sprintf("status %d without x-ms-error-code", resp.StatusCode))
		}
		if r.Method != http.MethodHead {
			var e struct {
				Code string `xml:"Code"`
			}
			if err := xml.Unmarshal(bytes.TrimPrefix(body, []byte("\ufeff")), &e); err != nil || e.Code != code {
				panic(fmt.Sprintf("error body %q for code %s: %v", body, code, err))
			}
		}
	}
	return resp, nil
}

// TestConcurrentWritesAndReads: writers on disjoint ranges and readers of
// the whole blob at once (run with -race); every read sees each 64 KiB
// piece either empty or whole, and the end state is every write.
func TestConcurrentWritesAndReads(t *testing.T) {
	s := azblobfake.New(azblobfake.Options{})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		t.Fatal(err)
	}
	const size, piece = 4 << 20, 64 << 10
	if err := s.PutPageBlob("disks", "d.vhd", size); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(rand.New(rand.NewPCG(9, 9)), size)
	pb := pageClient(t, s.URL()+"/disks/d.vhd", clientOpts{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := int64(w) * piece; off < size; off += 4 * piece {
				if _, err := pb.UploadPages(ctx, body(data[off:off+piece]), blob.HTTPRange{Offset: off, Count: piece}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				got := download(t, pb.BlobClient(), nil)
				for off := 0; off < size; off += piece {
					p := got[off : off+piece]
					if !bytes.Equal(p, data[off:off+piece]) && !bytes.Equal(p, make([]byte, piece)) {
						t.Errorf("piece at %d is torn", off)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if got := download(t, pb.BlobClient(), nil); !bytes.Equal(got, data) {
		t.Fatal("final content differs")
	}
}

// TestStreamRate: a paced body is still exactly the blob's bytes.
func TestStreamRate(t *testing.T) {
	s := azblobfake.New(azblobfake.Options{StreamRate: 64 << 20})
	defer s.Close()
	if err := s.CreateContainer("disks"); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(rand.New(rand.NewPCG(8, 8)), 4<<20)
	if err := s.PutPageBlob("disks", "d.vhd", 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePages("disks", "d.vhd", 0, data); err != nil {
		t.Fatal(err)
	}
	pb := pageClient(t, s.URL()+"/disks/d.vhd", clientOpts{})
	if got := download(t, pb.BlobClient(), nil); !bytes.Equal(got, data) {
		t.Fatal("paced body differs")
	}
}

// BenchmarkGetBlob measures what the fake serves over loopback, one whole
// stream and 8 parallel 8 MiB ranged GETs (AzCopy-like), so a download
// benchmark against it knows the fake is not its bottleneck. Prints MB/s.
func BenchmarkGetBlob(b *testing.B) {
	s := azblobfake.New(azblobfake.Options{})
	defer s.Close()
	const size = 256 << 20
	if err := s.CreateContainer("disks"); err != nil {
		b.Fatal(err)
	}
	if err := s.PutPageBlob("disks", "d.vhd", size); err != nil {
		b.Fatal(err)
	}
	data := randomBytes(rand.New(rand.NewPCG(1, 1)), size)
	if err := s.WritePages("disks", "d.vhd", 0, data); err != nil {
		b.Fatal(err)
	}
	u, err := s.SASURL("disks", "d.vhd", time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	get := func(rng string) int64 {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if rng != "" {
			req.Header.Set("x-ms-range", rng)
		}
		req.Header.Set("x-ms-version", azblobfake.DefaultVersion)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode/100 != 2 {
			b.Fatalf("GET %s: %d %v", rng, resp.StatusCode, err)
		}
		return n
	}
	ranged := func(size int64) {
		offs := make(chan int64, size/(8<<20))
		for off := int64(0); off < size; off += 8 << 20 {
			offs <- off
		}
		close(offs)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off := range offs {
					get(fmt.Sprintf("bytes=%d-%d", off, off+8<<20-1))
				}
			}()
		}
		wg.Wait()
	}
	b.Run("single", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			get("")
		}
	})
	b.Run("ranged8x8MiB", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			ranged(size)
		}
	})
	// With StreamRate at 32 MiB/s the first 64 MiB, one stream against 8.
	paced := azblobfake.New(azblobfake.Options{StreamRate: 32 << 20})
	defer paced.Close()
	if err := paced.CreateContainer("disks"); err != nil {
		b.Fatal(err)
	}
	if err := paced.PutPageBlob("disks", "d.vhd", 64<<20); err != nil {
		b.Fatal(err)
	}
	if err := paced.WritePages("disks", "d.vhd", 0, data[:64<<20]); err != nil {
		b.Fatal(err)
	}
	if u, err = paced.SASURL("disks", "d.vhd", time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.Run("paced-single", func(b *testing.B) {
		b.SetBytes(64 << 20)
		for b.Loop() {
			get("")
		}
	})
	b.Run("paced-ranged8x8MiB", func(b *testing.B) {
		b.SetBytes(64 << 20)
		for b.Loop() {
			ranged(64 << 20)
		}
	})
}
