package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// member lays out an object as an archive holds a member: prefix, the
// member's bytes, suffix.
type member struct {
	object         []byte
	offset, length int64
}

func newMember(prefixLen, length, suffixLen int, seed uint64) member {
	obj := genData(prefixLen+length+suffixLen, seed)
	return member{object: obj, offset: int64(prefixLen), length: int64(length)}
}

func (m member) bytes() []byte { return m.object[m.offset : m.offset+m.length] }

// wholeDigest returns a framed digest of the whole object checking the
// member.
func (m member) wholeDigest(t *testing.T, name string, newHash func() hash.Hash) Digest {
	t.Helper()
	h := newHash()
	h.Write(m.object)
	framed, err := Framed(newHash, m.object[:m.offset], m.object[m.offset+m.length:])
	if err != nil {
		t.Fatal(err)
	}
	return Digest{Name: name, New: framed, Sum: h.Sum(nil)}
}

// rangeOf parses "bytes=a-b".
func rangeOf(t *testing.T, r *http.Request) (int64, int64) {
	t.Helper()
	v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	a, b, ok2 := strings.Cut(v, "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil {
		t.Errorf("request without a bounded Range: %q", r.Header.Get("Range"))
		return -1, -1
	}
	return first, last
}

func TestOffsetFetchesAMemberWithParallelRangesAndChecksTheWholeObject(t *testing.T) {
	m := newMember(10_000, mib+4321, 3_000, 41)
	var log reqLog
	var dropped atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		first, last := rangeOf(t, r)
		if first < m.offset || last >= m.offset+m.length {
			t.Errorf("Range %d-%d outside the member [%d, %d)", first, last, m.offset, m.offset+m.length)
		}
		// One chunk dies half way, once: it resumes within the member.
		if first == m.offset+2*chunkTestSize && dropped.CompareAndSwap(false, true) {
			serveBytes(&dropWriter{ResponseWriter: w, left: chunkTestSize / 2}, r, m.object, `"v1"`)
			return
		}
		serveBytes(w, r, m.object, `"v1"`)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	// The Downloader chunks nothing by default: the file asks for it.
	d, _ := testDownloader(t, Options{ChunkSize: chunkTestSize}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{
		URL: ts.URL + "/bucket/obj.ova?X-Amz-Signature=secret", Path: dest, Offset: m.offset, Size: m.length,
		ChunkConcurrency: 4, Validator: `"v1"`, SHA256: sha(m.bytes()),
		Digests: []Digest{m.wholeDigest(t, "md5", md5.New), m.wholeDigest(t, "crc64nvme", func() hash.Hash {
			return crc64.New(crc64.MakeTable(0x9a6c9329ac4bc9b5))
		})},
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, m.bytes())
	if r := res[0]; !r.Chunked || r.Retries != 1 || r.Restarts != 0 || r.BytesTransferred != m.length {
		t.Fatalf("chunked %v retries %d restarts %d transferred %d of %d", r.Chunked, r.Retries, r.Restarts, r.BytesTransferred, m.length)
	}
	if log.count() < 4 {
		t.Errorf("%d requests: want several ranged GETs", log.count())
	}
}

func TestOffsetWholeObjectDigestMismatchFails(t *testing.T) {
	m := newMember(1000, 200_000, 1000, 42)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveBytes(w, r, m.object, `"v1"`) }))
	defer ts.Close()
	bad := m.wholeDigest(t, "md5", md5.New)
	bad.Sum = bytes.Clone(bad.Sum)
	bad.Sum[0] ^= 1
	dest := filepath.Join(t.TempDir(), "disk")
	d, _ := testDownloader(t, Options{}, newFakeClock())
	_, err := d.Download(context.Background(), []File{{URL: ts.URL + "/o", Path: dest, Offset: m.offset, Size: m.length, Digests: []Digest{bad}}})
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "md5") {
		t.Fatalf("err = %v, want a md5 digest mismatch", err)
	}
	if exists(dest) {
		t.Error("a file that failed its digest got its final name")
	}
	noTemp(t, filepath.Dir(dest))
}

func TestOffsetRefusedUnlessTheServerHonoursRanges(t *testing.T) {
	m := newMember(1000, 5000, 10, 43)
	short := m.object[:m.offset+m.length-1]
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"range ignored", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(m.object) }, "ignored the Range request"},
		{"object too short", func(w http.ResponseWriter, r *http.Request) { serveBytes(w, r, short, "") }, "size mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(tc.handler)
			defer ts.Close()
			d, _ := testDownloader(t, Options{}, newFakeClock())
			dest := filepath.Join(t.TempDir(), "m")
			_, err := d.Download(context.Background(), []File{{URL: ts.URL + "/o", Path: dest, Offset: m.offset, Size: m.length}})
			if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want permanent %q", err, tc.want)
			}
			noTemp(t, filepath.Dir(dest))
		})
	}
	d, _ := testDownloader(t, Options{}, newFakeClock())
	if _, err := d.Download(context.Background(), []File{{URL: "http://x/o", Path: "p", Offset: 5}}); !errors.Is(err, ErrPermanent) {
		t.Fatalf("an offset without a size: %v", err)
	}
}

func TestPerFileChunkingLeavesOtherFilesUnprobed(t *testing.T) {
	data := genData(3*chunkTestSize+5, 44)
	var log reqLog
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		serveBytes(w, r, data, `"e"`)
	}))
	defer ts.Close()
	dir := t.TempDir()
	d, _ := testDownloader(t, Options{ChunkSize: chunkTestSize, Concurrency: 1}, newFakeClock())
	res, err := d.Download(context.Background(), []File{
		{URL: ts.URL + "/plain", Path: filepath.Join(dir, "plain")},
		{URL: ts.URL + "/object", Path: filepath.Join(dir, "object"), ChunkConcurrency: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Chunked || !res[1].Chunked {
		t.Fatalf("chunked: plain %v, object %v", res[0].Chunked, res[1].Chunked)
	}
	for i := range log.count() {
		log.mu.Lock()
		r := log.reqs[i]
		log.mu.Unlock()
		if r.URL.Path == "/plain" && r.Header.Get("Range") != "" {
			t.Errorf("the plain file was asked for a range: %s", r.Header.Get("Range"))
		}
	}
	checkFile(t, filepath.Join(dir, "plain"), data)
	checkFile(t, filepath.Join(dir, "object"), data)
}

func TestValidatorOfAnotherVersionIsPermanent(t *testing.T) {
	data := genData(100_000, 45)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveBytes(w, r, data, `"v2"`) }))
	defer ts.Close()
	for _, chunks := range []int{0, 4} {
		d, _ := testDownloader(t, Options{ChunkSize: 16 << 10}, newFakeClock())
		dest := filepath.Join(t.TempDir(), "o")
		_, err := d.Download(context.Background(), []File{{URL: ts.URL + "/o", Path: dest, Validator: `"v1"`, ChunkConcurrency: chunks}})
		if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), `expected "v1"`) {
			t.Fatalf("chunks %d: err = %v, want a permanent version mismatch", chunks, err)
		}
		noTemp(t, filepath.Dir(dest))
	}
}

// A part file kept by a failed run is resumed by the next one only with
// the object's validator: the first request asks If-Range with it.
func TestKeptPartResumesWithTheCallersValidator(t *testing.T) {
	m := newMember(512, 600_000, 512, 46)
	var log reqLog
	var broken atomic.Bool
	broken.Store(true)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		if broken.Load() {
			first, _ := rangeOf(t, r)
			if first == m.offset {
				serveBytes(&dropWriter{ResponseWriter: w, left: 250_000}, r, m.object, `"v1"`)
				return
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		serveBytes(w, r, m.object, `"v1"`)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "disk")
	file := File{URL: ts.URL + "/o", Path: dest, Offset: m.offset, Size: m.length, KeepPartial: true, Validator: `"v1"`,
		Digests: []Digest{m.wholeDigest(t, "crc32c", func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) })}}
	d, _ := testDownloader(t, Options{MaxRetries: 1}, newFakeClock())
	if _, err := d.Download(context.Background(), []File{file}); err == nil {
		t.Fatal("the first run succeeded against a broken server")
	}
	st, err := os.Stat(dest + ".part")
	if err != nil || st.Size() != 250_000 {
		t.Fatalf("kept part: %v, %v bytes; want 250000", err, st)
	}
	broken.Store(false)
	before := log.count()
	d2, _ := testDownloader(t, Options{}, newFakeClock())
	res, err := d2.Download(context.Background(), []File{file})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, m.bytes())
	if res[0].ReusedBytes != 250_000 || res[0].BytesTransferred != m.length-250_000 {
		t.Errorf("reused %d, transferred %d", res[0].ReusedBytes, res[0].BytesTransferred)
	}
	if got, want := log.header(before, "Range"), fmt.Sprintf("bytes=%d-%d", m.offset+250_000, m.offset+m.length-1); got != want || log.header(before, "If-Range") != `"v1"` {
		t.Errorf("resume request: Range %q If-Range %q; want %q and the validator", got, log.header(before, "If-Range"), want)
	}
}

func TestSparseFileKeepsZerosAsHoles(t *testing.T) {
	// 8 MiB: random data at both ends, zeros between.
	data := make([]byte, 8<<20)
	copy(data, genData(200_000, 47))
	copy(data[len(data)-70_000:], genData(70_000, 48))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveBytes(w, r, data, `"z"`) }))
	defer ts.Close()
	for _, chunks := range []int{0, 4} {
		t.Run(fmt.Sprintf("chunks-%d", chunks), func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "disk.raw")
			d, _ := testDownloader(t, Options{ChunkSize: 1 << 20}, newFakeClock())
			res, err := d.Download(context.Background(), []File{{URL: ts.URL + "/o", Path: dest, Sparse: true, ChunkConcurrency: chunks}})
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, dest, data)
			if res[0].SHA256 != sha(data) || res[0].Size != int64(len(data)) {
				t.Errorf("result %d bytes %s", res[0].Size, res[0].SHA256)
			}
			st, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used > 2<<20 {
				t.Errorf("%d bytes allocated for %d bytes of data in an 8 MiB file: the zeros were written", used, 270_000)
			}
		})
	}
}

// A part file kept while the object was one version is discarded, not
// continued, once the caller describes another version.
func TestKeptPartOfAnotherVersionIsDiscarded(t *testing.T) {
	type version struct {
		data []byte
		etag string
	}
	v1, v2 := version{genData(400_000, 50), `"v1"`}, version{genData(400_000, 51), `"v2"`}
	var current atomic.Pointer[version]
	current.Store(&v1)
	var broken atomic.Bool
	broken.Store(true)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, etag := current.Load().data, current.Load().etag
		if broken.Load() {
			serveBytes(&dropWriter{ResponseWriter: w, left: 150_000}, r, data, etag)
			return
		}
		serveBytes(w, r, data, etag)
	}))
	defer ts.Close()
	dest := filepath.Join(t.TempDir(), "disk")
	d, _ := testDownloader(t, Options{MaxRetries: -1}, newFakeClock())
	if _, err := d.Download(context.Background(), []File{{URL: ts.URL + "/o", Path: dest, KeepPartial: true, Validator: `"v1"`}}); err == nil {
		t.Fatal("the first run succeeded against a broken server")
	}
	if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != 150_000 {
		t.Fatalf("kept part: %v", err)
	}
	current.Store(&v2)
	broken.Store(false)
	res, err := d.Download(context.Background(), []File{{URL: ts.URL + "/o", Path: dest, KeepPartial: true, Validator: `"v2"`}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, v2.data)
	if res[0].ReusedBytes != 0 || exists(dest+".part.version") {
		t.Errorf("reused %d bytes of another version; version record left: %v", res[0].ReusedBytes, exists(dest+".part.version"))
	}
}
