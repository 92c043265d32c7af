package transfer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Source is a remote file read by byte ranges: where a File's bytes come
// from when they are not behind an HTTP URL (SFTP, SMB). A Downloader gives
// a Source file everything it gives a URL: the part file, SHA-256 while
// streaming, resume from the part file, ChunkConcurrency parallel ranges,
// retries with backoff, the stall timeout, the bandwidth limit, progress.
//
// Implementations must be safe for concurrent use: with ChunkConcurrency
// several ranges of one file are open at once.
type Source interface {
	// OpenRange opens the file for reading n bytes from offset off (n < 0:
	// up to its end) and reports the file's size and version as of this
	// opening. The reader yields the file's bytes from off on, at most n of
	// them, then io.EOF; an off at or past the end yields io.EOF at once.
	// Once ctx ends, pending and later reads fail promptly (ctx is also how
	// a stalled read is abandoned) and Close must not wait for a server that
	// stopped answering.
	//
	// An error that another attempt cannot fix (authentication refused, no
	// such file, permission denied, a host key that is not trusted) wraps
	// ErrPermanent; any other error, from OpenRange or from a read, is
	// retried and the file resumed from its last byte received.
	OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, SourceInfo, error)
	// String names the file in errors and log lines (e.g.
	// "sftp://host:22/exports/disk.vhdx"). It must carry no secret.
	String() string
}

// SourceInfo describes a Source's file at one OpenRange.
type SourceInfo struct {
	// Size is the file's length in bytes.
	Size int64
	// Version changes whenever the file's content may have (modification
	// time, size, file ID…); "" when the source cannot tell. Ranges of two
	// versions are never spliced: the file restarts from byte zero.
	Version string
}

// segment is the answer to one request for bytes, whatever the origin: a
// body and what the origin says it covers. The engine (attempt, chunks)
// decides from these fields alone whether the bytes continue the file, so
// HTTP and Sources share every decision.
type segment struct {
	body io.ReadCloser
	// whole: the body is the entire object from byte 0, whatever was asked
	// (an HTTP server that ignores Range, or If-Range saw a new version).
	whole bool
	// start is the offset of the body's first byte; -1 when the origin's
	// framing is unusable (a malformed Content-Range).
	start int64
	// end is the offset after the body's last byte, -1 when unknown.
	end int64
	// total is the object's size, -1 when unknown.
	total int64
	// validator identifies this version of the object ("" if none).
	validator string
	// beyond: the request started at or past the object's end; there is
	// no body and total, when known, says where the object ends.
	beyond bool
	// desc is how the origin described the answer, for messages (an HTTP
	// status, a Content-Range).
	desc string
	// resp is the HTTP response, nil for a Source.
	resp *http.Response
}

// origin fetches byte ranges of one file: httpOrigin for File.URL,
// sourceOrigin for File.Source.
type origin interface {
	// fetch asks for bytes [from, to] (to < 0: to the end; from 0 and to < 0:
	// the whole object without a range). validator, when not empty, is the
	// version the bytes must belong to (HTTP If-Range); an origin that cannot
	// condition a request reports its version in the segment instead.
	// Errors are not yet classified by the engine (netErr does that).
	fetch(ctx context.Context, from, to int64, validator string) (segment, error)
}

// httpOrigin is a File's URL: ranged GETs with If-Range.
type httpOrigin struct {
	j *fileJob
}

func (o httpOrigin) fetch(ctx context.Context, from, to int64, ifRange string) (segment, error) {
	j := o.j
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.f.URL, nil)
	if err != nil {
		return segment{}, permanent(fmt.Errorf("request for %s: %w", j.url, redactErr(err)))
	}
	if j.f.Header != nil {
		req.Header = j.f.Header.Clone()
	}
	req.Header.Del("Range")
	req.Header.Del("If-Range")
	// Explicit identity: the transport must not gzip-decode behind our back,
	// or Range offsets and hashes would refer to different bytes.
	req.Header.Set("Accept-Encoding", "identity")
	if from > 0 || to >= 0 {
		r := "bytes=" + strconv.FormatInt(from, 10) + "-"
		if to >= 0 {
			r += strconv.FormatInt(to, 10)
		}
		req.Header.Set("Range", r)
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
	}
	client := j.d.client
	if j.f.Client != nil {
		client = j.f.Client
	}
	resp, err := client.Do(req)
	if err != nil {
		return segment{}, err
	}
	seg := segment{body: resp.Body, start: -1, end: -1, total: -1, validator: validatorOf(resp), desc: "HTTP " + resp.Status, resp: resp}
	switch resp.StatusCode {
	case http.StatusOK:
		seg.whole, seg.start = true, 0
		if resp.ContentLength >= 0 {
			seg.total, seg.end = resp.ContentLength, resp.ContentLength
		}
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		seg.desc = fmt.Sprintf("Content-Range %q", cr)
		if first, last, total, ok := parseContentRange(cr); ok {
			seg.start, seg.end, seg.total = first, last+1, total
		}
	case http.StatusRequestedRangeNotSatisfiable:
		seg.beyond = true
		if _, _, total, ok := parseContentRange(resp.Header.Get("Content-Range")); ok {
			seg.total = total
		}
	default:
		err := j.statusErr(resp)
		resp.Body.Close()
		return segment{}, err
	}
	return seg, nil
}

// statusErr turns a response that is not data into an error.
func (j *fileJob) statusErr(resp *http.Response) error {
	se := &StatusError{URL: j.url, StatusCode: resp.StatusCode, Status: resp.Status}
	// Drain a little so the connection can be reused for the retry.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	if retryableStatus(resp.StatusCode) {
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			se.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), j.d.clock.Now())
		}
		return se
	}
	return permanent(se)
}

// sourceOrigin is a File's Source. Every answer is exactly the range asked
// for, clipped to the size the Source reports; its version stands in for
// HTTP's validator.
type sourceOrigin struct {
	src Source
}

func (o sourceOrigin) fetch(ctx context.Context, from, to int64, _ string) (segment, error) {
	n := int64(-1)
	if to >= 0 {
		n = to - from + 1
	}
	body, info, err := o.src.OpenRange(ctx, from, n)
	if err != nil {
		return segment{}, err
	}
	if info.Size < 0 {
		body.Close()
		return segment{}, permanent(fmt.Errorf("%s: source reported a negative size %d", o.src, info.Size))
	}
	seg := segment{body: body, start: from, end: info.Size, total: info.Size, validator: info.Version,
		desc: fmt.Sprintf("%d bytes", info.Size)}
	if from >= info.Size {
		body.Close()
		seg.body, seg.beyond, seg.start, seg.end = nil, true, -1, -1
		return seg, nil
	}
	if n >= 0 {
		seg.end = min(from+n, info.Size)
	}
	return seg, nil
}
