package transfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/internal/backoff"
)

// genData returns n deterministic pseudo-random bytes.
func genData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pattern is a large deterministic "file" that costs no memory: block i of
// len(block) bytes is the random block rotated by an amount that depends on
// i, so ReadAt is a memcpy and no two neighbouring blocks are alike.
type pattern struct {
	block []byte
	size  int64
}

func newPattern(size int64) *pattern {
	return &pattern{block: genData(1<<20+7, 42), size: size}
}

func (p *pattern) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	bs := int64(len(p.block))
	want := int(min(int64(len(b)), p.size-off))
	n := 0
	for n < want {
		pos := off + int64(n)
		in := pos % bs
		src := (in + (pos/bs)*7919) % bs
		n += copy(b[n:want], p.block[src:min(bs, src+bs-in)])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (p *pattern) reader() io.ReadSeeker { return io.NewSectionReader(p, 0, p.size) }

func (p *pattern) sha() string {
	h := sha256.New()
	_, _ = io.Copy(h, io.NewSectionReader(p, 0, p.size))
	return hex.EncodeToString(h.Sum(nil))
}

// fakeClock never sleeps: SleepUntil moves time forward (never back) and
// records what was asked for.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	step   time.Duration // added by every Now, when set
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, t.Sub(c.now))
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

func (c *fakeClock) recorded() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testDownloader builds a Downloader with fast retries, a debug logger whose
// output is returned (and shown if the test fails) and, when clk is not nil,
// a fake clock.
func testDownloader(t *testing.T, opts Options, clk clock) (*Downloader, *syncBuffer) {
	t.Helper()
	if opts.Retry == (backoff.Policy{}) {
		opts.Retry = backoff.Policy{Base: time.Millisecond, Max: 4 * time.Millisecond}
	}
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Client == nil {
		c, err := NewHTTPClient(ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		opts.Client = c
	}
	d := NewDownloader(opts)
	if clk != nil {
		d.clock = clk
		d.limit = newThrottle(opts.BandwidthLimit, clk)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("downloader log:\n%s", logs.String())
		}
		opts.Client.CloseIdleConnections()
	})
	return d, logs
}

// serveBytes serves data with Range/If-Range support (as S3, Azure and GCS
// do) and a strong ETag.
func serveBytes(w http.ResponseWriter, r *http.Request, data []byte, etag string) {
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// dropWriter passes the first n body bytes through, then drops the
// connection as a dying network would.
type dropWriter struct {
	http.ResponseWriter
	left int
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if len(p) <= d.left {
		d.left -= len(p)
		return d.ResponseWriter.Write(p)
	}
	n, _ := d.ResponseWriter.Write(p[:d.left])
	d.left = 0
	hangUp(d.ResponseWriter)
	return n, io.ErrClosedPipe
}

// hangUp flushes what was written and closes the TCP connection under the
// response.
func hangUp(w http.ResponseWriter) {
	http.NewResponseController(w).Flush()
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	_ = buf.Flush()
	_ = conn.Close()
}

// serveNFC answers like vSphere NFC: always 200 with the whole body, chunked
// (no Content-Length), Range ignored. dropAt >= 0 hangs up after that many
// bytes.
func serveNFC(w http.ResponseWriter, data []byte, dropAt int) {
	w.Header().Set("Content-Type", "application/x-vnd.vmware-streamVmdk")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush() // headers out now: the body must be chunked
	if dropAt >= 0 {
		_, _ = w.Write(data[:dropAt])
		hangUp(w)
		return
	}
	_, _ = w.Write(data)
}

// rawResponse hijacks the connection and writes a hand-made response, for
// framings net/http would not produce (close-delimited bodies).
func rawResponse(w http.ResponseWriter, head string, body []byte) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	bw := bufio.NewWriter(conn)
	_, _ = bw.WriteString(head)
	_, _ = bw.Write(body)
	_ = bw.Flush()
	_ = buf.Flush()
	_ = conn.Close()
}

// reqLog records requests a handler saw.
type reqLog struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (l *reqLog) add(r *http.Request) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
	return len(l.reqs)
}

func (l *reqLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

func (l *reqLog) header(i int, name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reqs[i].Header.Get(name)
}

// checkFile asserts that path holds want and that no temporary files remain.
func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if sha(got) != sha(want) {
		t.Fatalf("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s", path, len(got), sha(got), len(want), sha(want))
	}
	noTemp(t, filepath.Dir(path))
}

// noTemp asserts that dir holds no .part, .part.version or .chunks file.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".part") || strings.HasSuffix(e.Name(), ".part.version") || strings.HasSuffix(e.Name(), ".chunks") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
