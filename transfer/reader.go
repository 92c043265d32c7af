package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hypersdk/hypersdk/internal/backoff"
)

// Reader defaults.
const (
	defaultReadChunk       = 8 << 20
	defaultReadConcurrency = 4
)

// ReaderOptions configures NewReader.
type ReaderOptions struct {
	// URL is the object's http(s) URL. It is never logged or quoted with
	// its query string (RedactURL).
	URL string
	// Header is sent with every request; never logged.
	Header http.Header
	// Client makes the requests (an authenticated client for a cloud
	// store); nil means NewHTTPClient's default.
	Client *http.Client
	// Size is the object's length in bytes, known in advance (from the
	// store's metadata); a server that reports another fails the read.
	// With Offset it is the length of the part read.
	Size int64
	// Offset > 0 reads bytes [Offset, Offset+Size) of the object (a member
	// of an uncompressed archive), in ranges only: a server that answers
	// with the whole object fails the read.
	Offset int64
	// Validator is the object's strong ETag or Last-Modified as the store
	// reported it: every answer must carry it (another version fails the
	// read rather than splicing two), and an ETag is sent as If-Match.
	// Empty: the first answer's validator is the one every later answer
	// must carry.
	Validator string
	// ChunkSize is the length of one ranged GET (default 8 MiB) and
	// Concurrency how many are in flight at once (default 4). Memory is
	// bounded by Concurrency × ChunkSize whatever the object's size.
	ChunkSize   int64
	Concurrency int
	// Retry spaces the attempts of a broken range (zero: backoff.Default);
	// MaxRetries bounds consecutive attempts without new bytes (default 8,
	// negative: none).
	Retry      backoff.Policy
	MaxRetries int
	// StallTimeout abandons (and retries) a request whose body delivers
	// nothing for this long. Default 1m; negative disables it.
	StallTimeout time.Duration
	// BandwidthLimit caps the bytes per second received; 0: unlimited.
	BandwidthLimit int64
	// Digest, when set, hashes the object's bytes in order as they are
	// read; when the last byte is read the sum must equal WantDigest, or
	// that Read returns no bytes and ErrDigestMismatch (DigestName names
	// the algorithm in the error, "CRC32C").
	Digest     hash.Hash
	WantDigest []byte
	DigestName string
	// Logger receives retries and restarts; nil logs nothing.
	Logger *slog.Logger
}

// ReaderStats counts what a Reader did.
type ReaderStats struct {
	// BytesTransferred is every body byte received, retried and skipped
	// ones included.
	BytesTransferred int64
	// Retries counts requests repeated after a failure; Restarts counts
	// re-reads from the object's first byte (a server ignoring Range).
	Retries, Restarts int64
}

// Reader reads one object of known size over HTTP as an ordered stream,
// with Concurrency ranged GETs of ChunkSize in flight ahead of the reader
// (see the package doc). It is not safe for concurrent Reads.
type Reader struct {
	opts   ReaderOptions
	url    string // redacted
	client *http.Client
	limit  *throttle
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	bufs   chan []byte // free chunk buffers, Concurrency of them
	queue  []*readChunk
	next   int64 // offset of the next chunk to launch
	pos    int64 // bytes handed to the caller
	cur    *readChunk
	stream *streamState // non-nil once the server ignored Range
	err    error        // sticky

	// validator is the ETag or Last-Modified of the first answer; the
	// probe and the chunk workers answer concurrently.
	validatorMu sync.Mutex
	validator   string

	transferred, retries, restarts atomic.Int64
	once                           sync.Once
}

// readChunk is one ranged GET's bytes [off, end), filled by a worker.
type readChunk struct {
	off, end int64
	buf      []byte
	done     chan struct{}
	err      error
	read     int // bytes of buf handed out
}

// streamState is the single stream a server that ignores Range serves.
type streamState struct {
	body io.ReadCloser
	at   int64 // offset of the body's next byte
	cc   *call
}

// NewReader starts reading the object: the first ranged GET is made now
// and decides how the rest is read. When it is answered 206 the object is
// read as ordered parallel ranges; when it is answered 200 (the server
// ignores Range) the answer is read as one stream, and a break restarts it
// from the first byte, skipping what was already read. It returns an error
// only when that request fails for good (4xx, certificate, no retries
// left) or ctx ends.
func NewReader(ctx context.Context, opts ReaderOptions) (*Reader, error) {
	if opts.Size < 0 || opts.Offset < 0 {
		return nil, permanent(fmt.Errorf("transfer: read %s: negative size %d or offset %d", RedactURL(opts.URL), opts.Size, opts.Offset))
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = defaultReadChunk
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = defaultReadConcurrency
	}
	if opts.Retry == (backoff.Policy{}) {
		opts.Retry = backoff.Default
	}
	switch {
	case opts.MaxRetries == 0:
		opts.MaxRetries = defaultMaxRetries
	case opts.MaxRetries < 0:
		opts.MaxRetries = 0
	}
	switch {
	case opts.StallTimeout == 0:
		opts.StallTimeout = time.Minute
	case opts.StallTimeout < 0:
		opts.StallTimeout = 0
	}
	r := &Reader{opts: opts, url: RedactURL(opts.URL), client: opts.Client, log: opts.Logger, validator: opts.Validator}
	if r.client == nil {
		r.client, _ = NewHTTPClient(ClientOptions{})
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("url", r.url)
	r.limit = newThrottle(opts.BandwidthLimit, realClock{})
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	if opts.Size == 0 {
		return r, nil
	}
	r.bufs = make(chan []byte, opts.Concurrency)
	for range opts.Concurrency {
		r.bufs <- nil // allocated on first use: a small object takes little
	}
	if err := r.probe(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// probe makes the first request, for the first chunk.
func (r *Reader) probe() error {
	first := &readChunk{off: 0, end: min(r.opts.ChunkSize, r.opts.Size), done: make(chan struct{})}
	first.buf = r.takeBuf(first.end)
	fails := 0
	for {
		c, err := r.get(0, first.end-1)
		if err == nil {
			switch c.resp.StatusCode {
			case http.StatusOK:
				if err = r.checkLength(c.resp); err == nil {
					err = r.checkVersion(c.resp)
				}
				if err == nil {
					r.log.Warn("the server ignores Range: reading the object as one stream")
					r.bufs <- first.buf
					r.stream = &streamState{body: c.resp.Body, cc: c}
					return nil
				}
			case http.StatusPartialContent:
				if err = r.checkVersion(c.resp); err != nil {
					break
				}
				r.queue = append(r.queue, first)
				r.next = first.end
				r.wg.Go(func() { r.fill(first, c) })
				r.launch()
				return nil
			default:
				err = r.statusErr(c.resp)
			}
			c.close()
		}
		if !retryable(err) || r.ctx.Err() != nil {
			return r.ctxErr(err)
		}
		fails++
		if fails > r.opts.MaxRetries {
			return noRetry(fmt.Errorf("read %s: giving up after %d attempts: %w", r.url, fails, err))
		}
		r.retries.Add(1)
		if werr := r.pause(fails, err); werr != nil {
			return r.ctxErr(werr)
		}
	}
}

// takeBuf takes a free buffer, sized n or more.
func (r *Reader) takeBuf(n int64) []byte {
	b := <-r.bufs
	if int64(cap(b)) < n {
		b = make([]byte, r.opts.ChunkSize)
	}
	return b[:n]
}

// launch starts chunks until Concurrency are queued or the object is
// covered. Buffers are always free for them: a chunk's buffer returns when
// the reader has consumed it, and at most Concurrency chunks are queued.
func (r *Reader) launch() {
	for len(r.queue) < r.opts.Concurrency && r.next < r.opts.Size {
		ch := &readChunk{off: r.next, end: min(r.next+r.opts.ChunkSize, r.opts.Size), done: make(chan struct{})}
		ch.buf = r.takeBuf(ch.end - ch.off)
		r.next = ch.end
		r.queue = append(r.queue, ch)
		r.wg.Go(func() { r.fill(ch, nil) })
	}
}

// fill fetches ch, resuming a broken range from its last byte received.
// c, when set, is an answer already carrying the chunk's first bytes.
func (r *Reader) fill(ch *readChunk, c *call) {
	defer close(ch.done)
	got := int64(0)
	fails := 0
	for got < ch.end-ch.off {
		var err error
		pos := ch.off + got
		if c == nil {
			c, err = r.get(pos, ch.end-1)
		}
		if err == nil {
			var n int64
			n, err = r.body(c, ch, pos)
			if n > 0 {
				got += n
				fails = 0
			}
		}
		if c != nil {
			c.close()
			c = nil
		}
		if err == nil {
			continue
		}
		if r.ctx.Err() != nil || !retryable(err) {
			ch.err = r.ctxErr(err)
			return
		}
		fails++
		if fails > r.opts.MaxRetries {
			ch.err = noRetry(fmt.Errorf("read %s bytes %d-%d: giving up after %d attempts without progress: %w", r.url, pos, ch.end-1, fails, err))
			return
		}
		r.retries.Add(1)
		r.log.Warn("range interrupted, retrying", "error", err, "attempt", fails, "offset", ch.off+got)
		if werr := r.pause(fails, err); werr != nil {
			ch.err = r.ctxErr(werr)
			return
		}
	}
}

// body copies an answer for bytes from pos on into ch's buffer and
// returns how many it copied. A 200 answer (the whole object) is skipped
// up to pos.
func (r *Reader) body(c *call, ch *readChunk, pos int64) (int64, error) {
	switch c.resp.StatusCode {
	case http.StatusPartialContent:
		first, _, total, ok := parseContentRange(c.resp.Header.Get("Content-Range"))
		if ok && total >= 0 && (r.opts.Offset == 0 && total != r.opts.Size || total < r.opts.Offset+r.opts.Size) {
			return 0, permanent(fmt.Errorf("read %s: %w: the server has %d bytes, expected %d", r.url, ErrSizeMismatch, total, r.opts.Offset+r.opts.Size))
		}
		if !ok || first != r.opts.Offset+pos {
			return 0, fmt.Errorf("read %s: %w (%q for byte %d)", r.url, errBadContentRange, c.resp.Header.Get("Content-Range"), pos)
		}
	case http.StatusOK:
		if err := r.checkLength(c.resp); err != nil {
			return 0, err
		}
		r.restarts.Add(1)
		r.log.Warn("a ranged GET was answered with the whole object: skipping to the range", "offset", pos)
		if _, err := r.discard(c, pos); err != nil {
			return 0, err
		}
	default:
		return 0, r.statusErr(c.resp)
	}
	if err := r.checkVersion(c.resp); err != nil {
		return 0, err
	}
	dst := ch.buf[pos-ch.off:]
	n, err := r.readBody(c, dst)
	if err == io.EOF && n < len(dst) {
		err = fmt.Errorf("read %s: %w (range ended at byte %d, expected %d)", r.url, errShortBody, pos+int64(n), ch.end)
	} else if err == io.EOF {
		err = nil
	}
	return int64(n), err
}

// readBody fills dst from c's body, paced by the bandwidth limit.
func (r *Reader) readBody(c *call, dst []byte) (int, error) {
	n := 0
	for n < len(dst) {
		step := dst[n:]
		step = step[:r.limit.readSize(len(step))]
		m, err := readSome(c.resp.Body, step, c.wd)
		n += m
		r.transferred.Add(int64(m))
		if m > 0 {
			c.wd.pause(true)
			werr := r.limit.wait(c.ctx, m)
			c.wd.pause(false)
			if werr != nil {
				return n, r.netErr(c, werr)
			}
		}
		if err == io.EOF {
			return n, io.EOF
		}
		if err != nil {
			return n, r.netErr(c, err)
		}
	}
	return n, nil
}

// discard reads and drops n bytes of c's body.
func (r *Reader) discard(c *call, n int64) (int64, error) {
	m, err := io.CopyN(io.Discard, &kickReader{r: c.resp.Body, wd: c.wd}, n)
	r.transferred.Add(m)
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("read %s: %w", r.url, errShortBody)
		}
		return m, r.netErr(c, err)
	}
	return m, nil
}

type kickReader struct {
	r  io.Reader
	wd *watchdog
}

func (k *kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		k.wd.kick()
	}
	return n, err
}

// Read implements io.Reader: the object's bytes in order.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.pos >= r.opts.Size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	if r.stream != nil {
		n, err = r.readStream(p)
	} else {
		n, err = r.readChunks(p)
	}
	if n > 0 {
		if r.opts.Digest != nil {
			r.opts.Digest.Write(p[:n])
		}
		r.pos += int64(n)
		if r.pos == r.opts.Size && err == nil {
			// The last bytes are not handed out with a mismatch: a
			// caller filling its buffer (io.ReadFull) drops an error
			// that comes with enough bytes.
			if err = r.verify(); err != nil {
				n = 0
			}
		}
	}
	if err != nil {
		r.err = err
		r.cancel(err)
	}
	return n, err
}

// verify compares the digest of every byte read with the one published.
func (r *Reader) verify() error {
	if r.opts.Digest == nil {
		return nil
	}
	got := r.opts.Digest.Sum(nil)
	if !bytes.Equal(got, r.opts.WantDigest) {
		name := r.opts.DigestName
		if name == "" {
			name = "digest"
		}
		return fmt.Errorf("read %s: %s of the %d bytes read is %x, the store says %x: %w",
			r.url, name, r.opts.Size, got, r.opts.WantDigest, ErrDigestMismatch)
	}
	return nil
}

func (r *Reader) readChunks(p []byte) (int, error) {
	if r.cur == nil {
		ch := r.queue[0]
		select {
		case <-ch.done:
		case <-r.ctx.Done():
			return 0, r.ctxErr(context.Cause(r.ctx))
		}
		if ch.err != nil {
			return 0, ch.err
		}
		r.cur = ch
	}
	ch := r.cur
	n := copy(p, ch.buf[ch.read:])
	ch.read += n
	if ch.read == len(ch.buf) {
		r.queue = r.queue[1:]
		r.bufs <- ch.buf
		ch.buf = nil
		r.cur = nil
		r.launch()
	}
	return n, nil
}

// readStream reads the single stream of a server that ignores Range; a
// break makes a new request and skips to where the reader is.
func (r *Reader) readStream(p []byte) (int, error) {
	fails := 0
	for {
		s := r.stream
		if s.body != nil {
			p = p[:min(int64(len(p)), r.opts.Size-s.at)]
			n, err := s.body.Read(p)
			s.cc.wd.kick()
			s.at += int64(n)
			r.transferred.Add(int64(n))
			if n > 0 {
				if werr := r.limit.wait(r.ctx, n); werr != nil {
					return n, r.ctxErr(werr)
				}
				return n, nil
			}
			if err == io.EOF {
				err = fmt.Errorf("read %s: %w (stream ended at byte %d of %d)", r.url, errShortBody, s.at, r.opts.Size)
			}
			if err == nil {
				continue
			}
			err = r.netErr(s.cc, err)
			s.cc.close()
			s.body, s.cc = nil, nil
			if r.ctx.Err() != nil || !retryable(err) {
				return 0, r.ctxErr(err)
			}
			fails++
			if fails > r.opts.MaxRetries {
				return 0, noRetry(fmt.Errorf("read %s: giving up after %d attempts without progress: %w", r.url, fails, err))
			}
			r.retries.Add(1)
			r.log.Warn("stream interrupted, restarting", "error", err, "attempt", fails, "offset", r.pos)
			if werr := r.pause(fails, err); werr != nil {
				return 0, r.ctxErr(werr)
			}
		}
		c, err := r.get(r.pos, -1)
		if err == nil {
			switch c.resp.StatusCode {
			case http.StatusOK:
				r.restarts.Add(1)
				if err = r.checkLength(c.resp); err == nil {
					_, err = r.discard(c, r.pos)
				}
			case http.StatusPartialContent:
				if first, _, _, ok := parseContentRange(c.resp.Header.Get("Content-Range")); !ok || first != r.pos {
					err = fmt.Errorf("read %s: %w", r.url, errBadContentRange)
				}
			default:
				err = r.statusErr(c.resp)
			}
			if err == nil {
				err = r.checkVersion(c.resp)
			}
			if err == nil {
				r.stream.body, r.stream.cc, r.stream.at = c.resp.Body, c, r.pos
				continue
			}
			c.close()
		}
		if r.ctx.Err() != nil || !retryable(err) {
			return 0, r.ctxErr(err)
		}
		fails++
		if fails > r.opts.MaxRetries {
			return 0, noRetry(fmt.Errorf("read %s: giving up after %d attempts: %w", r.url, fails, err))
		}
		r.retries.Add(1)
		if werr := r.pause(fails, err); werr != nil {
			return 0, r.ctxErr(werr)
		}
	}
}

// Close stops every request in flight and waits for them.
func (r *Reader) Close() error {
	r.once.Do(func() {
		r.cancel(errReaderClosed)
		r.wg.Wait()
		if r.stream != nil && r.stream.cc != nil {
			r.stream.cc.close()
		}
	})
	return nil
}

var errReaderClosed = errors.New("reader closed")

// Stats reports what the reader did so far.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{BytesTransferred: r.transferred.Load(), Retries: r.retries.Load(), Restarts: r.restarts.Load()}
}

// get sends a GET for bytes [from, to] of what is read (to < 0: to the
// end), shifted by Offset into the object.
func (r *Reader) get(from, to int64) (*call, error) {
	if off := r.opts.Offset; off > 0 {
		if to < 0 {
			to = r.opts.Size - 1
		}
		from, to = from+off, to+off
	}
	cctx, cancel := context.WithCancelCause(r.ctx)
	c := &call{ctx: cctx, cancel: cancel}
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, r.opts.URL, nil)
	if err != nil {
		c.close()
		return nil, permanent(fmt.Errorf("request for %s: %w", r.url, redactErr(err)))
	}
	if r.opts.Header != nil {
		req.Header = r.opts.Header.Clone()
	}
	req.Header.Set("Accept-Encoding", "identity")
	rng := "bytes=" + strconv.FormatInt(from, 10) + "-"
	if to >= 0 {
		rng += strconv.FormatInt(to, 10)
	}
	req.Header.Set("Range", rng)
	if v := r.opts.Validator; strings.HasPrefix(v, `"`) {
		req.Header.Set("If-Match", v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		err = r.netErr(c, err)
		c.close()
		return nil, err
	}
	c.resp = resp
	c.wd = newWatchdog(r.opts.StallTimeout, cancel)
	return c, nil
}

// checkVersion refuses, for good, an answer of another version than the
// one read so far (or the one the caller named), and records the first.
func (r *Reader) checkVersion(resp *http.Response) error {
	v := validatorOf(resp)
	r.validatorMu.Lock()
	defer r.validatorMu.Unlock()
	if r.validator == "" {
		r.validator = v
		return nil
	}
	if v != "" && v != r.validator {
		return permanent(fmt.Errorf("read %s: %w: it carries %s, expected %s", r.url, errObjectChanged, v, r.validator))
	}
	return nil
}

// checkLength refuses a whole-object answer of another size, and any
// whole-object answer where a part of the object (Offset) is read.
func (r *Reader) checkLength(resp *http.Response) error {
	if r.opts.Offset > 0 {
		return permanent(fmt.Errorf("read %s: %w (HTTP %s): bytes %d-%d of the object cannot be read on their own",
			r.url, errSpanIgnored, resp.Status, r.opts.Offset, r.opts.Offset+r.opts.Size-1))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != r.opts.Size {
		return permanent(fmt.Errorf("read %s: %w: the server has %d bytes, expected %d", r.url, ErrSizeMismatch, resp.ContentLength, r.opts.Size))
	}
	return nil
}

func (r *Reader) statusErr(resp *http.Response) error {
	se := &StatusError{URL: r.url, StatusCode: resp.StatusCode, Status: resp.Status}
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	if resp.StatusCode == http.StatusPreconditionFailed {
		return permanent(fmt.Errorf("%w: %w (If-Match %s)", se, errObjectChanged, r.opts.Validator))
	}
	if retryableStatus(resp.StatusCode) {
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			se.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		return se
	}
	return permanent(se)
}

func (r *Reader) netErr(c *call, err error) error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	if errors.Is(context.Cause(c.ctx), errStalled) {
		return fmt.Errorf("read %s: %w (%v)", r.url, errStalled, r.opts.StallTimeout)
	}
	err = redactErr(err)
	if certificateError(err) {
		return permanent(err)
	}
	return err
}

// ctxErr prefers the reader's context's cause once it has ended.
func (r *Reader) ctxErr(err error) error {
	if r.ctx.Err() != nil {
		if cause := context.Cause(r.ctx); cause != nil && !errors.Is(cause, errReaderClosed) {
			return cause
		}
	}
	return err
}

// pause waits before retry number attempt: the backoff, or the server's
// Retry-After when longer.
func (r *Reader) pause(attempt int, cause error) error {
	delay := r.opts.Retry.Delay(attempt)
	var se *StatusError
	if errors.As(cause, &se) && se.RetryAfter > 0 {
		delay = max(delay, min(se.RetryAfter, 2*time.Minute))
	}
	return backoff.Wait(r.ctx, delay)
}
