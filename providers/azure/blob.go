package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/vhd"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers"
)

// A managed disk's page blob is the disk's bytes followed by a 512-byte
// fixed-VHD footer; pages are 512 bytes. Azure returns an MD5 of a range
// of at most 4 MiB (x-ms-range-get-content-md5).
const (
	pageSize    = 512
	footerSize  = 512
	maxMD5Range = 4 << 20
)

var (
	// errShortBody: a ranged GET's body is not as long as the range.
	errShortBody = errors.New("the body is not as long as the range")
	// errNoMD5: the service sent no MD5 for a range it must send one for.
	errNoMD5 = errors.New("no Content-MD5 for the range")
)

// checkSAS checks a SAS URL a grant returned before anything uses it: it
// must parse, pass the SSRF guard and point where the configuration allows
// (endpoints.blob, or the cloud's blob hosts). Its errors never quote it.
func (p *Provider) checkSAS(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return nil, errors.New("the grant's SAS URL does not parse as an absolute URL")
	}
	if u.User != nil {
		return nil, errors.New("the grant's SAS URL carries credentials")
	}
	if _, err := endpointGuard.CheckURL(redactedURL(u)); err != nil {
		return nil, fmt.Errorf("the grant's SAS URL is refused: %w", err)
	}
	for _, pat := range p.sasPatterns {
		if pat.matches(u) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("the grant's SAS URL points to %s, which endpoints.blob (or the cloud's blob hosts) does not allow", redactedURL(u))
}

// sasExpiry is the SAS's signed expiry (se), zero when it has none.
func sasExpiry(u *url.URL) time.Time {
	t, _ := time.Parse(time.RFC3339, u.Query().Get("se"))
	return t
}

// pageBlob reads one grant's page blob. The SAS URL lives only in the
// client (and u), renewed by renew; it is never logged or put in an error.
type pageBlob struct {
	p    *Provider
	what string // "disk web-1-os (snapshot …)": for messages
	hc   *http.Client

	mu      sync.RWMutex
	client  *pageblob.Client
	expires time.Time
}

func (p *Provider) newPageBlob(hc *http.Client, what string, sas *url.URL) (*pageBlob, error) {
	b := &pageBlob{p: p, what: what, hc: hc}
	if err := b.setSAS(sas); err != nil {
		return nil, err
	}
	return b, nil
}

// setSAS points the blob client at a new SAS URL.
func (b *pageBlob) setSAS(sas *url.URL) error {
	c, err := pageblob.NewClientWithNoCredential(sas.String(), &pageblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: b.hc,
		// One attempt per call: the block engine retries, and must hear
		// the throttling it slows down for.
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Telemetry: policy.TelemetryOptions{ApplicationID: "hypersdk"},
	}})
	if err != nil {
		return fmt.Errorf("azure %s: %s: blob client: %s", b.p.name, b.what, redactURLs(err.Error()))
	}
	b.mu.Lock()
	b.client, b.expires = c, sasExpiry(sas)
	b.mu.Unlock()
	return nil
}

func (b *pageBlob) current() (*pageblob.Client, time.Time) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.client, b.expires
}

// blobError classifies a failed Blob call without quoting its URL:
// throttling (503 ServerBusy, 500 InternalError/OperationTimedOut, 429)
// as providers.ErrThrottled; a refused or withdrawn SAS (403, or 404 once
// a grant was revoked) as providers.ErrExpired, which a new grant cures;
// other refusals as permanent; no answer at all (a reset, a timeout) as
// retryable.
func (b *pageBlob) blobError(what string, err error, expires time.Time) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("azure %s: %s: %s: %w", b.p.name, b.what, what, err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// A transport error quotes the URL: only its text is kept, redacted.
		return fmt.Errorf("azure %s: %s: %s: %s", b.p.name, b.what, what, redactURLs(err.Error()))
	}
	f := &apiFailure{Status: re.StatusCode, Code: re.ErrorCode}
	switch {
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusServiceUnavailable ||
		re.StatusCode == http.StatusInternalServerError:
		f.class = providers.ErrThrottled
	case re.StatusCode == http.StatusForbidden, re.StatusCode == http.StatusNotFound:
		f.class = providers.ErrExpired
		if !expires.IsZero() && time.Now().After(expires) {
			f.Message = "the SAS expired at " + expires.UTC().Format(time.RFC3339)
		}
	case re.StatusCode >= 500:
		// Retryable as is.
	default:
		return providers.Permanent(fmt.Errorf("azure %s: %s: %s: %w", b.p.name, b.what, what, f))
	}
	return fmt.Errorf("azure %s: %s: %s: %w", b.p.name, b.what, what, f)
}

// geometry is readGeometry, tried again (a few times, spaced by retry)
// while it fails for a reason that may pass: throttling, a 5xx, a broken
// connection.
func (b *pageBlob) geometry(ctx context.Context, retry backoff.Policy) (capacity, size int64, err error) {
	for attempt := 1; ; attempt++ {
		capacity, size, err = b.readGeometry(ctx)
		if err == nil || providers.IsPermanent(err) || errors.Is(err, providers.ErrExpired) || ctx.Err() != nil || attempt >= listAttempts {
			return capacity, size, err
		}
		if serr := retry.Sleep(ctx, attempt); serr != nil {
			return 0, 0, err
		}
	}
}

// readGeometry reads the blob's properties and its last 512 bytes, the
// fixed VHD footer Azure ends every disk with, decoded and checked by
// disk/vhd; it returns the disk's virtual size and the blob's length.
func (b *pageBlob) readGeometry(ctx context.Context) (capacity, size int64, err error) {
	c, exp := b.current()
	props, err := c.GetProperties(ctx, nil)
	if err != nil {
		return 0, 0, b.blobError("read the blob's properties", err, exp)
	}
	if props.BlobType != nil && *props.BlobType != blob.BlobTypePageBlob {
		return 0, 0, providers.Permanent(fmt.Errorf("azure %s: %s: the grant's blob is a %s, not a page blob", b.p.name, b.what, *props.BlobType))
	}
	if props.ContentLength == nil {
		return 0, 0, fmt.Errorf("azure %s: %s: the blob's properties have no Content-Length", b.p.name, b.what)
	}
	size = *props.ContentLength
	if size < footerSize+pageSize || size%pageSize != 0 {
		return 0, 0, providers.Permanent(fmt.Errorf("azure %s: %s: a blob of %d bytes is no fixed VHD (whole 512-byte pages, a disk and its footer)", b.p.name, b.what, size))
	}
	tail := make([]byte, footerSize)
	if _, err := b.readRange(ctx, size-footerSize, tail, false); err != nil {
		return 0, 0, err
	}
	img, err := vhd.Open(&disk.File{Name: b.what, R: tailReader{tail: tail, at: size - footerSize}, Size: size})
	if err != nil {
		return 0, 0, providers.Permanent(fmt.Errorf("azure %s: %s: the blob's last 512 bytes are not a valid fixed VHD footer: %w", b.p.name, b.what, err))
	}
	info := img.Info()
	_ = img.Close()
	if info.Subformat != "fixed" {
		return 0, 0, providers.Permanent(fmt.Errorf("azure %s: %s: the blob is a %s VHD; a managed disk's blob is a fixed one", b.p.name, b.what, info.Subformat))
	}
	return info.VirtualSize, size, nil
}

// tailReader serves the blob's last 512 bytes to vhd.Open, and zeros in
// place of the rest, which is not read: a valid fixed VHD's footer makes
// vhd.Open read nothing else, and for anything else (a damaged footer, a
// dynamic VHD) the zeros make it report the footer's own problem.
type tailReader struct {
	tail []byte
	at   int64
}

func (t tailReader) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	for i := range p {
		if o := off + int64(i); o >= t.at && o < t.at+int64(len(t.tail)) {
			p[i] = t.tail[o-t.at]
		}
	}
	return len(p), nil
}

// readRange reads len(dst) bytes at off with one ranged GET, asking for
// the range's MD5 when withMD5 (ranges of at most 4 MiB), and returns it.
func (b *pageBlob) readRange(ctx context.Context, off int64, dst []byte, withMD5 bool) ([]byte, error) {
	c, exp := b.current()
	opts := &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: int64(len(dst))}}
	if withMD5 {
		opts.RangeGetContentMD5 = ptr(true)
	}
	what := fmt.Sprintf("read %d bytes at %d", len(dst), off)
	res, err := c.DownloadStream(ctx, opts)
	if err != nil {
		return nil, b.blobError(what, err, exp)
	}
	defer res.Body.Close()
	if res.ContentLength != nil && *res.ContentLength != int64(len(dst)) {
		return nil, fmt.Errorf("azure %s: %s: %s: Content-Length %d: %w", b.p.name, b.what, what, *res.ContentLength, errShortBody)
	}
	if _, err := io.ReadFull(res.Body, dst); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("azure %s: %s: %s: %w", b.p.name, b.what, what, context.Cause(ctx))
		}
		return nil, fmt.Errorf("azure %s: %s: %s: %w (%s)", b.p.name, b.what, what, errShortBody, redactURLs(err.Error()))
	}
	var extra [1]byte
	if n, _ := res.Body.Read(extra[:]); n != 0 {
		return nil, fmt.Errorf("azure %s: %s: %s: the body is longer than the range: %w", b.p.name, b.what, what, errShortBody)
	}
	if withMD5 && len(res.ContentMD5) != 16 {
		return nil, fmt.Errorf("azure %s: %s: %s: %w", b.p.name, b.what, what, errNoMD5)
	}
	return res.ContentMD5, nil
}

// pageRange is a run of written pages, [start, end).
type pageRange struct{ start, end int64 }

// pageRanges yields the blob's written page ranges, ascending, as Get Page
// Ranges pages through them (end exclusive).
func (b *pageBlob) pageRanges(ctx context.Context) iter.Seq2[pageRange, error] {
	return func(yield func(pageRange, error) bool) {
		c, exp := b.current()
		pages := c.NewGetPageRangesPager(nil)
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(pageRange{}, b.blobError("list page ranges", err, exp))
				return
			}
			for _, r := range page.PageRange {
				if r == nil || r.Start == nil || r.End == nil {
					continue
				}
				if !yield(pageRange{start: *r.Start, end: *r.End + 1}, nil) {
					return
				}
			}
		}
	}
}

// cellBlocks turns ascending page ranges into blocks on a grid of cell
// bytes, for a disk of capacity bytes: each cell a range touches is one
// block from the first written byte in it to the last (ranges sharing a
// cell merge, the gaps read as zeros); what lies past capacity (the VHD
// footer) is left out. When the ranges fail — Get Page Ranges can fail
// on a blob too fragmented to list in time — it falls back, as AzCopy
// does, to listing every cell the ranges had not reached (the cell being
// assembled whole): a full read, correct however the listing broke off.
// fallback is told the error; ranges that contradict themselves (out of
// order, overlapping, not whole pages) are an error, not a fallback.
func cellBlocks(ranges iter.Seq2[pageRange, error], cell, capacity int64, fallback func(error)) iter.Seq2[providers.Block, error] {
	return func(yield func(providers.Block, error) bool) {
		pending := providers.Block{Offset: -1}
		next := int64(0) // the first cell not yet yielded or pending
		flush := func() bool {
			if pending.Offset < 0 {
				return true
			}
			b := pending
			pending.Offset = -1
			return yield(b, nil)
		}
		var last int64 = -1
		for r, err := range ranges {
			if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				yield(providers.Block{}, err)
				return
			}
			if err != nil {
				fallback(err)
				if pending.Offset >= 0 {
					c := pending.Offset / cell
					pending = providers.Block{Offset: c * cell, Length: min(cell, capacity-c*cell)}
				}
				if !flush() {
					return
				}
				for c := next; c*cell < capacity; c++ {
					if !yield(providers.Block{Offset: c * cell, Length: min(cell, capacity-c*cell)}, nil) {
						return
					}
				}
				return
			}
			if r.start < 0 || r.end <= r.start || r.start%pageSize != 0 || r.end%pageSize != 0 || r.start < last {
				yield(providers.Block{}, providers.Permanent(fmt.Errorf("the page ranges are not ascending whole pages: [%d, %d) after %d", r.start, r.end, last)))
				return
			}
			last = r.end
			s, e := r.start, min(r.end, capacity)
			for s < e {
				c := s / cell
				pe := min(e, (c+1)*cell)
				if pending.Offset >= 0 && pending.Offset/cell == c {
					pending.Length = pe - pending.Offset
				} else {
					if !flush() {
						return
					}
					pending = providers.Block{Offset: s, Length: pe - s}
					next = c + 1
				}
				s = pe
			}
		}
		flush()
	}
}

// listAttempts is how often Get Page Ranges is tried before the listing
// falls back to every cell, and the blob's geometry before the grant is
// given up.
const listAttempts = 4
