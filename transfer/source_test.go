package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/progress"
)

// memSource is a Source over bytes in memory, for the engine's own tests
// (the real SFTP and SMB Sources are tested against real servers in their
// packages). Faults are injected per OpenRange call.
type memSource struct {
	mu      sync.Mutex
	data    []byte
	version string
	calls   []string // "off:n" of every OpenRange
	// fault, when set, may fail call number i (from 0) at OpenRange (the
	// error) or after some bytes of its body (the count, >= 0).
	fault func(i int, off, n int64) (error, int64)

	open, peak atomic.Int64
	read       atomic.Int64
}

func (s *memSource) String() string { return "mem://disk.raw" }

func (s *memSource) set(data []byte, version string) {
	s.mu.Lock()
	s.data, s.version = data, version
	s.mu.Unlock()
}

func (s *memSource) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, SourceInfo, error) {
	s.mu.Lock()
	i := len(s.calls)
	s.calls = append(s.calls, fmt.Sprintf("%d:%d", off, n))
	data, info := s.data, SourceInfo{Size: int64(len(s.data)), Version: s.version}
	s.mu.Unlock()
	failAfter := int64(-1)
	if s.fault != nil {
		var err error
		if err, failAfter = s.fault(i, off, n); err != nil {
			return nil, info, err
		}
	}
	end := int64(len(data))
	if n >= 0 {
		end = min(end, off+n)
	}
	var body []byte
	if off < end {
		body = data[off:end]
	}
	now := s.open.Add(1)
	for p := s.peak.Load(); now > p && !s.peak.CompareAndSwap(p, now); p = s.peak.Load() {
	}
	return &memBody{s: s, ctx: ctx, r: bytes.NewReader(body), failAfter: failAfter}, info, nil
}

func (s *memSource) callLog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

var errLinkDown = errors.New("connection lost")

type memBody struct {
	s         *memSource
	ctx       context.Context
	r         *bytes.Reader
	failAfter int64 // -1: never
	n         int64
}

func (b *memBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if b.failAfter >= 0 {
		if b.n >= b.failAfter {
			return 0, errLinkDown
		}
		p = p[:min(int64(len(p)), b.failAfter-b.n)]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.s.read.Add(int64(n))
	return n, err
}

func (b *memBody) Close() error { b.s.open.Add(-1); return nil }

func TestSourceChunkedParallel(t *testing.T) {
	data := genData(mib+4321, 40)
	src := &memSource{data: data, version: "v1"}
	// The fourth range breaks half way once: it resumes, not restarts.
	src.fault = func(i int, off, n int64) (error, int64) {
		if off == 3*chunkTestSize && i < 5 {
			return nil, chunkTestSize / 2
		}
		return nil, -1
	}
	dest := filepath.Join(t.TempDir(), "disk.raw")
	d, logs := testDownloader(t, Options{ChunkConcurrency: 4, ChunkSize: chunkTestSize}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{Source: src, Path: dest, SHA256: sha(data)}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	r := res[0]
	if !r.Chunked || r.Retries != 1 || r.Restarts != 0 || r.BytesTransferred != int64(len(data)) {
		t.Fatalf("result %+v", r)
	}
	if p := src.peak.Load(); p < 2 || p > 4 {
		t.Errorf("at most %d ranges open at once, want 2..4", p)
	}
	calls := src.callLog()
	if calls[0] != fmt.Sprintf("0:%d", chunkTestSize) {
		t.Errorf("first range %s, want the probe of one chunk", calls[0])
	}
	if !strings.Contains(logs.String(), "source=mem://disk.raw") {
		t.Errorf("log lines do not name the source:\n%s", logs.String())
	}
}

func TestSourceResumeFromKeptPartFile(t *testing.T) {
	data := genData(2*mib+7, 41)
	src := &memSource{data: data, version: "v1"}
	half := int64(len(data) / 2)
	src.fault = func(i int, off, n int64) (error, int64) {
		if i == 0 {
			return nil, half
		}
		return fmt.Errorf("host unreachable: %w", ErrPermanent), -1
	}
	dest := filepath.Join(t.TempDir(), "disk.raw")
	d, _ := testDownloader(t, Options{KeepPartial: true}, newFakeClock())
	if _, err := d.Download(context.Background(), []File{{Source: src, Path: dest}}); !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v, want the permanent failure", err)
	}
	if part, _ := os.ReadFile(dest + ".part"); int64(len(part)) != half || sha(part) != sha(data[:half]) {
		t.Fatalf("kept %d bytes, want the %d received", len(part), half)
	}
	if n := len(src.callLog()); n != 2 {
		t.Fatalf("%d OpenRange calls, want 2 (a permanent error is not retried)", n)
	}

	src.fault = nil
	src.read.Store(0)
	res, err := d.Download(context.Background(), []File{{Source: src, Path: dest, SHA256: sha(data)}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].ReusedBytes != half || res[0].BytesTransferred != int64(len(data))-half || src.read.Load() != int64(len(data))-half {
		t.Errorf("reused %d, transferred %d, read %d; want %d reused and only the rest read",
			res[0].ReusedBytes, res[0].BytesTransferred, src.read.Load(), half)
	}
	if last := src.callLog()[2]; last != fmt.Sprintf("%d:-1", half) {
		t.Errorf("resume opened %s, want %d:-1", last, half)
	}
}

func TestSourceVersionChangeRestartsFromZero(t *testing.T) {
	old, cur := genData(mib, 42), genData(mib, 43)
	src := &memSource{data: old, version: "v1"}
	src.fault = func(i int, off, n int64) (error, int64) {
		if i == 0 {
			// The file is replaced while the first stream breaks.
			src.set(cur, "v2")
			return nil, 1000
		}
		return nil, -1
	}
	dest := filepath.Join(t.TempDir(), "disk.raw")
	d, _ := testDownloader(t, Options{}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{Source: src, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	// The first body was opened before the change and still serves the
	// old bytes; the resume sees v2 and must not splice.
	checkFile(t, dest, cur)
	if res[0].Restarts != 1 {
		t.Errorf("restarts %d, want 1", res[0].Restarts)
	}
}

func TestSourceErrorsAndSizes(t *testing.T) {
	data := genData(64<<10, 44)
	dir := t.TempDir()
	d, _ := testDownloader(t, Options{}, newFakeClock())

	src := &memSource{data: data}
	_, err := d.Download(context.Background(), []File{{Source: src, Path: filepath.Join(dir, "a"), Size: 5}})
	if !errors.Is(err, ErrSizeMismatch) || !errors.Is(err, ErrPermanent) || exists(filepath.Join(dir, "a")) {
		t.Errorf("size mismatch: %v", err)
	}

	src = &memSource{data: data}
	src.fault = func(int, int64, int64) (error, int64) { return fmt.Errorf("no such file: %w", ErrPermanent), -1 }
	_, err = d.Download(context.Background(), []File{{Source: src, Path: filepath.Join(dir, "b")}})
	if !errors.Is(err, ErrPermanent) || len(src.callLog()) != 1 {
		t.Errorf("permanent OpenRange error: %v after %d calls", err, len(src.callLog()))
	}

	src = &memSource{data: nil}
	res, err := d.Download(context.Background(), []File{{Source: src, Path: filepath.Join(dir, "empty")}})
	if err != nil || res[0].Size != 0 || res[0].SHA256 != sha(nil) {
		t.Errorf("empty file: %v %+v", err, res)
	}

	_, err = d.Download(context.Background(), []File{{Source: src, URL: "https://example.com/x", Path: filepath.Join(dir, "c")}})
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "both a URL and a Source") {
		t.Errorf("URL and Source: %v", err)
	}
}

func TestSourceCompletePartFileIsNotRead(t *testing.T) {
	data := genData(mib, 45)
	src := &memSource{data: data, version: "v"}
	dest := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(dest+".part", data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := testDownloader(t, Options{KeepPartial: true, ChunkConcurrency: 4, ChunkSize: chunkTestSize}, newFakeClock())
	res, err := d.Download(context.Background(), []File{{Source: src, Path: dest}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if res[0].BytesTransferred != 0 || src.read.Load() != 0 {
		t.Errorf("transferred %d, read %d; want nothing", res[0].BytesTransferred, src.read.Load())
	}
}

// TestSourceBandwidthLimitAndProgress: a Source file passes the same
// limiter and reports the same progress as an HTTP one.
func TestSourceBandwidthLimitAndProgress(t *testing.T) {
	const limit = 2 * mib
	data := genData(3*mib+5, 46)
	src := &memSource{data: data}
	clk := newFakeClock()
	var last atomic.Int64
	d, _ := testDownloader(t, Options{BandwidthLimit: limit, ChunkConcurrency: 3, ChunkSize: mib,
		Progress: func(r progress.Report) {
			if r.Final {
				last.Store(r.BytesDone)
			}
		}}, clk)
	cb := &countingBucket{tokenBucket: d.limit.bucket}
	d.limit.bucket = cb
	burst := d.limit.bucket.Burst()
	dest := filepath.Join(t.TempDir(), "f")
	start := clk.Now()
	if _, err := d.Download(context.Background(), []File{{Source: src, Path: dest}}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if cb.reserved != int64(len(data)) {
		t.Fatalf("limiter saw %d of %d bytes", cb.reserved, len(data))
	}
	want := time.Duration(float64(int64(len(data))-int64(burst)) / limit * float64(time.Second))
	if got := clk.Now().Sub(start); got < want-time.Millisecond || got > want+time.Millisecond {
		t.Errorf("%d bytes at %d B/s took %v of fake time, want %v", len(data), limit, got, want)
	}
	if last.Load() != int64(len(data)) {
		t.Errorf("final progress %d bytes, want %d", last.Load(), len(data))
	}
}

// A part of a Source's file (Offset), checked against the whole file's
// digest (Framed) and the caller's version, goes through the same
// decisions as an HTTP object's: every range inside the part, a broken
// one resumed there, a kept part file resumed only for its version.
func TestSourcePartOfFileWithDigestsAndVersion(t *testing.T) {
	m := newMember(5_000, mib+999, 2_000, 44)
	src := &memSource{data: m.object, version: "v1"}
	var broke atomic.Bool // chunks are fetched concurrently
	src.fault = func(i int, off, n int64) (error, int64) {
		if off < m.offset || n < 0 || off+n > m.offset+m.length {
			t.Errorf("range %d+%d outside the part [%d, %d)", off, n, m.offset, m.offset+m.length)
		}
		if off == m.offset+chunkTestSize && broke.CompareAndSwap(false, true) {
			return nil, chunkTestSize / 3
		}
		return nil, -1
	}
	file := File{Source: src, Offset: m.offset, Size: m.length, ChunkConcurrency: 3, Validator: "v1",
		SHA256: sha(m.bytes()), Digests: []Digest{m.wholeDigest(t, "crc32", func() hash.Hash { return crc32.NewIEEE() })}}
	dest := filepath.Join(t.TempDir(), "disk.raw")
	file.Path = dest
	d, _ := testDownloader(t, Options{ChunkSize: chunkTestSize}, newFakeClock())
	res, err := d.Download(context.Background(), []File{file})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, m.bytes())
	if r := res[0]; !r.Chunked || r.Retries != 1 || r.Restarts != 0 || r.BytesTransferred != m.length {
		t.Fatalf("result %+v", r)
	}

	// A wrong whole-file digest fails the part.
	bad := file.Digests[0]
	bad.Sum = bytes.Clone(bad.Sum)
	bad.Sum[0] ^= 1
	file.Digests, file.Path = []Digest{bad}, filepath.Join(t.TempDir(), "bad.raw")
	if _, err := d.Download(context.Background(), []File{file}); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong digest: %v, want ErrDigestMismatch", err)
	}
	noTemp(t, filepath.Dir(file.Path))
}

func TestSourceKeptPartOfAnotherVersionIsNotContinued(t *testing.T) {
	data := genData(mib+17, 45)
	src := &memSource{data: data, version: "v1"}
	half := int64(len(data) / 2)
	src.fault = func(i int, off, n int64) (error, int64) {
		if i == 0 {
			return nil, half
		}
		return fmt.Errorf("host unreachable: %w", ErrPermanent), -1
	}
	dest := filepath.Join(t.TempDir(), "disk.raw")
	d, _ := testDownloader(t, Options{}, newFakeClock())
	file := File{Source: src, Path: dest, KeepPartial: true, Validator: "v1"}
	if _, err := d.Download(context.Background(), []File{file}); !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v, want the permanent failure", err)
	}
	if v, _ := os.ReadFile(dest + ".part.version"); string(v) != "v1" {
		t.Fatalf("kept part's version record %q, want v1", v)
	}

	// The file changed and the caller says so: the kept bytes are dropped.
	cur := genData(mib+17, 46)
	src.set(cur, "v2")
	src.fault = nil
	file.Validator = "v2"
	res, err := d.Download(context.Background(), []File{file})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, cur)
	if res[0].ReusedBytes != 0 {
		t.Errorf("reused %d bytes of another version", res[0].ReusedBytes)
	}
	noTemp(t, filepath.Dir(dest))

	// The caller describes v2 but the file is v3: refused, not spliced.
	src.set(data, "v3")
	if _, err := d.Download(context.Background(), []File{{Source: src, Path: dest + "2", Validator: "v2"}}); !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "carries v3") {
		t.Fatalf("another version: %v, want a permanent refusal naming it", err)
	}
	noTemp(t, filepath.Dir(dest))
}
