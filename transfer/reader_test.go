package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/internal/backoff"
)

func randomObject(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// rangeStart returns the first byte of a "bytes=a-b" header, 0 without one.
func rangeStart(r *http.Request) int64 {
	v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	if !ok {
		return 0
	}
	a, _, _ := strings.Cut(v, "-")
	n, _ := strconv.ParseInt(a, 10, 64)
	return n
}

func fastRetry() backoff.Policy {
	return backoff.Policy{Base: time.Millisecond, Max: 5 * time.Millisecond}
}

func TestReaderOrderedAndBoundedAhead(t *testing.T) {
	obj := randomObject(5<<20 + 12345)
	const chunk, conc = 128 << 10, 4
	var consumed atomic.Int64
	var mu sync.Mutex
	var ahead []int64 // how far past the consumed bytes each request started
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ahead = append(ahead, rangeStart(r)-consumed.Load())
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "obj", time.Time{}, bytes.NewReader(obj))
	}))
	defer srv.Close()

	rd, err := NewReader(context.Background(), ReaderOptions{
		URL: srv.URL + "/obj?sig=secret", Size: int64(len(obj)), ChunkSize: chunk, Concurrency: conc,
		Digest: crc32.New(crc32.MakeTable(crc32.Castagnoli)), WantDigest: crc32c(obj), DigestName: "CRC32C",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got bytes.Buffer
	buf := make([]byte, 10_000) // not a divisor of the chunk size
	for {
		n, err := rd.Read(buf)
		got.Write(buf[:n])
		consumed.Add(int64(n))
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Microsecond) // a slow consumer: the readers must wait for it
	}
	if !bytes.Equal(got.Bytes(), obj) {
		t.Fatal("bytes differ from the object")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := (len(obj) + chunk - 1) / chunk; len(ahead) != want {
		t.Errorf("%d requests for %d chunks", len(ahead), want)
	}
	for _, a := range ahead {
		if a >= conc*chunk {
			t.Errorf("a range started %d bytes ahead of the reader, bound %d", a, conc*chunk)
		}
	}
	if s := rd.Stats(); s.Retries != 0 || s.Restarts != 0 || s.BytesTransferred != int64(len(obj)) {
		t.Errorf("stats %+v", s)
	}
}

func crc32c(b []byte) []byte {
	s := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	return []byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// A range whose connection dies half-way is resumed from its last byte,
// not fetched again.
func TestReaderResumesABrokenRange(t *testing.T) {
	obj := randomObject(2 << 20)
	const chunk = 512 << 10
	var broke atomic.Bool
	var mu sync.Mutex
	var starts []int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from := rangeStart(r)
		mu.Lock()
		starts = append(starts, from)
		mu.Unlock()
		if from == chunk && broke.CompareAndSwap(false, true) {
			// Half the chunk, then the connection drops.
			w.Header().Set("Content-Range", "bytes "+strconv.Itoa(chunk)+"-"+strconv.Itoa(2*chunk-1)+"/"+strconv.Itoa(len(obj)))
			w.Header().Set("Content-Length", strconv.Itoa(chunk))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(obj[chunk : chunk+chunk/2])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		http.ServeContent(w, r, "obj", time.Time{}, bytes.NewReader(obj))
	}))
	defer srv.Close()
	rd, err := NewReader(context.Background(), ReaderOptions{URL: srv.URL, Size: int64(len(obj)), ChunkSize: chunk, Concurrency: 2, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, obj) {
		t.Fatal("bytes differ from the object")
	}
	if rd.Stats().Retries != 1 {
		t.Errorf("retries %d, want 1", rd.Stats().Retries)
	}
	mu.Lock()
	defer mu.Unlock()
	resumed := false
	for _, s := range starts {
		resumed = resumed || s == chunk+chunk/2
	}
	if !resumed {
		t.Errorf("no request resumed at byte %d: %v", chunk+chunk/2, starts)
	}
}

// A server that ignores Range is read as one stream; a break restarts it
// from the first byte and skips what was already read.
func TestReaderServerIgnoringRange(t *testing.T) {
	obj := randomObject(3<<20 + 7)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(obj)))
		w.WriteHeader(http.StatusOK)
		if n == 1 {
			w.Write(obj[:1<<20])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		w.Write(obj)
	}))
	defer srv.Close()
	rd, err := NewReader(context.Background(), ReaderOptions{
		URL: srv.URL, Size: int64(len(obj)), ChunkSize: 256 << 10, Retry: fastRetry(),
		Digest: crc32.New(crc32.MakeTable(crc32.Castagnoli)), WantDigest: crc32c(obj),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, obj) {
		t.Fatal("bytes differ from the object")
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (one broken stream, one restart)", n)
	}
	if rd.Stats().Restarts != 1 {
		t.Errorf("restarts %d, want 1", rd.Stats().Restarts)
	}
}

func TestReaderDigestMismatchAndRefusals(t *testing.T) {
	obj := randomObject(1 << 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/denied") {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		http.ServeContent(w, r, "obj", time.Time{}, bytes.NewReader(obj))
	}))
	defer srv.Close()

	want := crc32c(obj)
	want[0] ^= 1
	rd, err := NewReader(context.Background(), ReaderOptions{
		URL: srv.URL + "/obj", Size: int64(len(obj)), ChunkSize: 100_000,
		Digest: crc32.New(crc32.MakeTable(crc32.Castagnoli)), WantDigest: want, DigestName: "CRC32C",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rd)
	rd.Close()
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "CRC32C") {
		t.Errorf("corrupted object read: %v, want a CRC32C ErrDigestMismatch", err)
	}

	_, err = NewReader(context.Background(), ReaderOptions{URL: srv.URL + "/denied?X-Goog-Signature=abc", Size: 10, Retry: fastRetry()})
	if !errors.Is(err, ErrPermanent) || strings.Contains(err.Error(), "abc") {
		t.Errorf("403: %v, want a permanent error without the query", err)
	}

	// A size other than the store's is refused, not read short.
	_, err = NewReader(context.Background(), ReaderOptions{URL: srv.URL + "/obj", Size: int64(len(obj)) + 1, ChunkSize: 100_000, Retry: fastRetry()})
	if err == nil {
		rd, _ := NewReader(context.Background(), ReaderOptions{URL: srv.URL + "/obj", Size: int64(len(obj)) + 1, ChunkSize: 100_000, Retry: fastRetry()})
		_, err = io.ReadAll(rd)
		rd.Close()
	}
	if err == nil {
		t.Error("a wrong size was not noticed")
	}
}

func TestReaderCancel(t *testing.T) {
	obj := randomObject(4 << 20)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rangeStart(r) > 0 {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		http.ServeContent(w, r, "obj", time.Time{}, bytes.NewReader(obj))
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	rd, err := NewReader(ctx, ReaderOptions{URL: srv.URL, Size: int64(len(obj)), ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(rd, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := rd.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v", err)
	}
	rd.Close()
}

// A part of an object (Offset) is read in ranges within the part, each
// sent with If-Match on the caller's ETag; another version is refused for
// good, and so is a server that answers a part with the whole object.
func TestReaderPartOfAVersionedObject(t *testing.T) {
	obj := randomObject(5<<20 + 77)
	const etag = `"v1"`
	var mu sync.Mutex
	var ranges, ifMatch []string
	ignoreRange := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		ifMatch = append(ifMatch, r.Header.Get("If-Match"))
		ignore := ignoreRange
		mu.Unlock()
		w.Header().Set("ETag", etag)
		if ignore {
			r.Header.Del("Range")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(obj))
	}))
	defer srv.Close()
	const off, size = 1<<20 + 3, 3<<20 + 5
	rd, err := NewReader(context.Background(), ReaderOptions{URL: srv.URL, Size: size, Offset: off, Validator: etag, ChunkSize: 1 << 20, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd)
	rd.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, obj[off:off+size]) {
		t.Fatal("the part read differs from the object's bytes")
	}
	mu.Lock()
	for i, rg := range ranges {
		var a, b int64
		if _, err := fmt.Sscanf(rg, "bytes=%d-%d", &a, &b); err != nil || a < off || b >= off+size {
			t.Errorf("Range %q is not within the part [%d, %d)", rg, off, off+size)
		}
		if ifMatch[i] != etag {
			t.Errorf("If-Match %q, want %s", ifMatch[i], etag)
		}
	}
	mu.Unlock()

	_, err = NewReader(context.Background(), ReaderOptions{URL: srv.URL, Size: size, Offset: off, Validator: `"v0"`, Retry: fastRetry()})
	if !errors.Is(err, errObjectChanged) {
		t.Errorf("another version: err = %v, want the object changed", err)
	}
	mu.Lock()
	ignoreRange = true
	mu.Unlock()
	_, err = NewReader(context.Background(), ReaderOptions{URL: srv.URL, Size: size, Offset: off, Retry: fastRetry()})
	if !errors.Is(err, errSpanIgnored) {
		t.Errorf("whole object for a part: err = %v, want the range ignored", err)
	}
}
