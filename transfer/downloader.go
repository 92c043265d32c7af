package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/progress"
)

// File is one download, from an HTTP(S) URL or from a Source: exactly one
// of URL and Source is set.
type File struct {
	// URL is the http(s) URL to GET.
	URL string
	// Source, when set instead of URL, is where the bytes come from (SFTP,
	// SMB…); Header and Client are then unused. See Source.
	Source Source
	// Path is the destination, relative to Root when Root is set. Parent
	// directories are created.
	Path string
	// Root, when set, is the directory Path lies beneath: Path must be a
	// local path and no link below Root is followed (see the package doc).
	// When nil, Path's directory is trusted as given and becomes the root.
	Root *os.Root
	// Size is the expected size in bytes; <= 0 means unknown. A server that
	// reports a different size fails the file (ErrSizeMismatch).
	Size int64
	// Header is sent with every request of this file (session cookie for
	// vSphere NFC, authorisation). It is never logged.
	Header http.Header
	// SHA256 is the expected hex digest, empty if unknown. A mismatch fails
	// the file (ErrChecksumMismatch) and it never gets its final name.
	SHA256 string
	// Client, when set, is used for this file's requests instead of
	// Options.Client: files served by different hosts with different
	// certificate pins (vSphere disks on several ESXi hosts) still share one
	// Downloader, its concurrency and its bandwidth limit.
	Client *http.Client
	// Offset > 0 makes the file bytes [Offset, Offset+Size) of the object
	// at URL or of the Source's file (a member of an uncompressed archive):
	// every request is a range within that span (a ranged GET, an
	// OpenRange), the answer is read relative to it, and an HTTP server
	// that ignores Range fails the file (ErrPermanent). Size is then
	// required.
	Offset int64
	// ChunkConcurrency, when > 0, replaces Options.ChunkConcurrency for
	// this file, so that objects known to be served with ranges (S3, Azure
	// Blob, a Source) are split into parallel ranges while other files of
	// the same Downloader (vSphere NFC streams) are not probed.
	ChunkConcurrency int
	// KeepPartial keeps and resumes this file's "<Path>.part" as
	// Options.KeepPartial does for every file.
	KeepPartial bool
	// Validator is the object's version as the caller knows it: for a URL
	// its strong ETag (or Last-Modified), sent as If-Range from the first
	// resumed request on (a kept part file included); for a Source its
	// SourceInfo.Version (a Source cannot condition a read, so only the
	// check applies). An answer of another version fails the file
	// (ErrPermanent) instead of splicing bytes of two versions, and a kept
	// part file records the version it holds ("<Path>.part.version") and
	// is discarded, not continued, for another one.
	Validator string
	// Digests are other digests the bytes must match (see Digest); each is
	// computed in the same pass as the SHA-256 and a mismatch fails the
	// file like a SHA256 mismatch (ErrDigestMismatch).
	Digests []Digest
	// Sparse leaves all-zero buffers of the body as holes instead of
	// writing them (a raw disk image); the file still ends up exactly as
	// long as the body and its hashes cover every byte.
	Sparse bool
}

// Digest is an expected digest of a file besides its SHA-256.
type Digest struct {
	// Name names it in messages ("md5", "crc64nvme").
	Name string
	// New returns a fresh hash. It is called at the start and again
	// whenever the file restarts from its first byte, so it may return a
	// hash already fed bytes that precede the file (a member of an
	// archive checked against the whole archive's digest).
	New func() hash.Hash
	// Sum is the expected New().Sum(nil) of the file's bytes.
	Sum []byte
}

// Result describes one file of a Download call.
type Result struct {
	Path string
	// Size is the file's length; SHA256 its hex digest (both set on success).
	Size   int64
	SHA256 string
	// BytesTransferred counts body bytes received over the network, including
	// bytes thrown away by restarts. Compare with Size to see what resume saved.
	BytesTransferred int64
	// ReusedBytes is the length of a "<Path>.part" left by an earlier run that
	// was kept and resumed (Options.KeepPartial).
	ReusedBytes int64
	// Retries counts requests repeated after a failure (resumes included);
	// Restarts counts returns to byte zero (server ignored Range, object
	// changed, inconsistent Content-Range).
	Retries  int
	Restarts int
	// Chunked is true when parallel ranged requests were used.
	Chunked  bool
	Duration time.Duration
	// Err is the file's failure, nil on success.
	Err error
}

// Options configures a Downloader. Zero values select the defaults.
type Options struct {
	// Client is used for every request; nil means NewHTTPClient with zero
	// ClientOptions. A custom client should bound the wait for response
	// headers (StallTimeout only watches bodies).
	Client *http.Client
	// Concurrency is how many files download at once. Default 3.
	Concurrency int
	// ChunkConcurrency > 1 splits a file into up to that many parallel ranged
	// GETs when the server answers a ranged GET with 206 and a known size and
	// the file spans more than one ChunkSize. Servers that ignore Range (NFC)
	// are streamed as usual. Default off.
	ChunkConcurrency int
	// ChunkSize is the length of one ranged GET. Default 32 MiB.
	ChunkSize int64
	// Retry is the backoff between attempts; zero means backoff.Default.
	Retry backoff.Policy
	// MaxRetries is how many consecutive failed attempts without new bytes a
	// file (or a chunk) survives. Attempts that get further than any before
	// reset the count, so a long download over a flaky link finishes while a
	// dead server is given up on. Default 8; negative means no retries.
	MaxRetries int
	// MaxRetryAfter caps a server's Retry-After (429/503). Default 2m.
	MaxRetryAfter time.Duration
	// StallTimeout abandons (and then resumes) a request whose body delivers
	// nothing for this long. Default 1m; negative disables it. The wait for
	// response headers is the client's to bound (ResponseHeaderTimeout).
	StallTimeout time.Duration
	// BandwidthLimit caps the total rate of all streams of this Downloader in
	// bytes per second; 0 means unlimited.
	BandwidthLimit int64
	// KeepPartial keeps "<Path>.part" when a file fails or is cancelled, and
	// resumes from an existing one: its bytes are hashed once and the rest is
	// requested with Range. Without it, partial files are removed.
	KeepPartial bool
	// Progress receives reports (see progress.go for what they hold).
	Progress progress.Func
	// ProgressInterval is the minimum time between two reports for one file
	// (the final report is always sent). Default 200ms.
	ProgressInterval time.Duration
	// Logger receives retries, restarts and completions; nil logs nothing.
	// Secrets (query strings, headers) are never logged.
	Logger *slog.Logger
}

const (
	defaultConcurrency = 3
	defaultChunkSize   = 32 << 20
	defaultMaxRetries  = 8
	bufferSize         = 64 << 10 // small enough to stay in cache between read, write and hash
	fileMode           = 0o640    // disk images hold customer data
	dirMode            = 0o755
)

// Downloader moves bytes. It is safe for concurrent use; all Download calls
// on one Downloader share its bandwidth limit.
type Downloader struct {
	client        *http.Client
	concurrency   int
	chunkConc     int
	chunkSize     int64
	retry         backoff.Policy
	maxRetries    int
	maxRetryAfter time.Duration
	stall         time.Duration
	keepPartial   bool
	progress      progress.Func
	interval      time.Duration
	log           *slog.Logger
	clock         clock
	limit         *throttle
	bufs          sync.Pool
	streams       atomic.Int64 // responses being streamed into files (see pipe)
	// busyAt is how many streams in flight keep every core busy, so that
	// a stream stops handing its blocks between goroutines (see pipe);
	// 0 means GOMAXPROCS. Tests set it to pin either way of working.
	busyAt int
}

// NewDownloader returns a Downloader for opts.
func NewDownloader(opts Options) *Downloader {
	d := &Downloader{
		client:        opts.Client,
		concurrency:   opts.Concurrency,
		chunkConc:     opts.ChunkConcurrency,
		chunkSize:     opts.ChunkSize,
		retry:         opts.Retry,
		maxRetries:    opts.MaxRetries,
		maxRetryAfter: orDefault(opts.MaxRetryAfter, 2*time.Minute),
		stall:         opts.StallTimeout,
		keepPartial:   opts.KeepPartial,
		progress:      opts.Progress,
		interval:      orDefault(opts.ProgressInterval, 200*time.Millisecond),
		log:           opts.Logger,
		clock:         realClock{},
	}
	if d.client == nil {
		// Zero ClientOptions carry no thumbprint, the only thing that can fail.
		d.client, _ = NewHTTPClient(ClientOptions{})
	}
	if d.concurrency <= 0 {
		d.concurrency = defaultConcurrency
	}
	if d.chunkSize <= 0 {
		d.chunkSize = defaultChunkSize
	}
	if d.retry == (backoff.Policy{}) {
		d.retry = backoff.Default
	}
	switch {
	case d.maxRetries == 0:
		d.maxRetries = defaultMaxRetries
	case d.maxRetries < 0:
		d.maxRetries = 0
	}
	switch {
	case d.stall == 0:
		d.stall = time.Minute
	case d.stall < 0:
		d.stall = 0
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.limit = newThrottle(opts.BandwidthLimit, d.clock)
	d.bufs.New = func() any { b := make([]byte, bufferSize); return &b }
	return d
}

// Download fetches files, Concurrency at a time, and returns one Result per
// file in the same order. The first file that fails stops the others; the
// error joins the failures (each naming its file). When ctx ends, every
// stream stops, partial files are cleaned up (see KeepPartial) and the error
// wraps ctx.Err(). A request that cannot work (bad URL, duplicate
// destination, malformed SHA256) is refused before any byte moves, with an
// error wrapping ErrPermanent and no results.
func (d *Downloader) Download(ctx context.Context, files []File) ([]Result, error) {
	if err := validate(files); err != nil {
		return nil, err
	}
	results := make([]Result, len(files))
	tr := newTracker(d.progress, d.clock, d.interval)
	progs := make([]*fileProgress, len(files))
	for i, f := range files {
		size := f.Size
		if size <= 0 {
			size = -1 // File.Size 0 means unknown
		}
		progs[i] = tr.file(f.Path, size)
	}

	gctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	sem := make(chan struct{}, d.concurrency)
	var wg sync.WaitGroup
	for i := range files {
		select {
		case sem <- struct{}{}:
		case <-gctx.Done():
		}
		if err := gctx.Err(); err != nil { // never started: a sibling failed or ctx ended
			if cause := context.Cause(gctx); cause != err {
				err = fmt.Errorf("%w: %w", err, cause)
			}
			results[i] = Result{Path: files[i].Path, Err: fmt.Errorf("download %s: %w", files[i].Path, err)}
			progs[i].final()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = d.downloadFile(gctx, files[i], progs[i])
			if results[i].Err != nil {
				abort(errSiblingFailed)
			}
		})
	}
	wg.Wait()

	if err := ctx.Err(); err != nil {
		if cause := context.Cause(ctx); cause != nil && cause != err {
			return results, fmt.Errorf("transfer: %w (%w)", err, cause)
		}
		return results, fmt.Errorf("transfer: %w", err)
	}
	var errs []error
	for _, r := range results {
		if r.Err != nil && !errors.Is(r.Err, errSiblingFailed) {
			errs = append(errs, r.Err)
		}
	}
	return results, errors.Join(errs...)
}

// validate refuses requests that can never succeed before any byte moves.
func validate(files []File) error {
	seen := make(map[string]int, len(files))
	for i, f := range files {
		name := ""
		switch {
		case f.Source != nil && f.URL != "":
			return permanent(fmt.Errorf("transfer: file %d (%s): both a URL and a Source", i, f.Source))
		case f.Source != nil:
			name = f.Source.String()
		default:
			u, err := url.Parse(f.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return permanent(fmt.Errorf("transfer: file %d: URL %s is not an absolute http(s) URL", i, RedactURL(f.URL)))
			}
			name = RedactURL(f.URL)
		}
		if f.Path == "" {
			return permanent(fmt.Errorf("transfer: file %d (%s): no destination path", i, name))
		}
		if f.SHA256 != "" {
			if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
				return permanent(fmt.Errorf("transfer: %s: expected SHA-256 %q is not 64 hex digits", f.Path, f.SHA256))
			}
		}
		switch {
		case f.Offset < 0:
			return permanent(fmt.Errorf("transfer: %s: negative offset %d", f.Path, f.Offset))
		case f.Offset > 0 && f.Size <= 0:
			return permanent(fmt.Errorf("transfer: %s: a part of an object (offset %d) needs its size", f.Path, f.Offset))
		}
		for _, dg := range f.Digests {
			if dg.New == nil || len(dg.Sum) == 0 || dg.Name == "" {
				return permanent(fmt.Errorf("transfer: %s: digest %q has no name, hash or expected sum", f.Path, dg.Name))
			}
		}
		key, err := filepath.Abs(f.Path)
		if err != nil {
			key = filepath.Clean(f.Path)
		}
		if j, dup := seen[key]; dup {
			return permanent(fmt.Errorf("transfer: files %d and %d both write %s", j, i, f.Path))
		}
		seen[key] = i
	}
	return nil
}

// pause waits before retry number attempt: the backoff delay, or longer if
// the server asked for it with Retry-After (capped at MaxRetryAfter).
func (d *Downloader) pause(ctx context.Context, attempt int, cause error) error {
	delay := d.retry.Delay(attempt)
	var se *StatusError
	if errors.As(cause, &se) && se.RetryAfter > 0 {
		delay = max(delay, min(se.RetryAfter, d.maxRetryAfter))
	}
	return d.clock.SleepUntil(ctx, d.clock.Now().Add(delay))
}

func (d *Downloader) getBuf() *[]byte  { return d.bufs.Get().(*[]byte) }
func (d *Downloader) putBuf(b *[]byte) { d.bufs.Put(b) }
