package transfer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// StreamOptions configures OpenStream.
type StreamOptions struct {
	// URL is never logged or quoted with its query string.
	URL string
	// Header is sent with the request; never logged.
	Header http.Header
	// Client makes the request; nil means NewHTTPClient's default.
	Client *http.Client
	// Offset > 0 asks for bytes [Offset, Offset+Size) of the object, which
	// needs Size. Size is the length expected, -1 when unknown.
	Offset, Size int64
}

// OpenStream makes one GET and returns its body: for a source that is
// read once, front to back, and cannot be resumed (a vSphere NFC disk
// stream, whose length shows at its last byte). A 4xx answer, a
// certificate error and an answer of another length fail for good; the
// body is not retried.
func OpenStream(ctx context.Context, opts StreamOptions) (io.ReadCloser, error) {
	url := RedactURL(opts.URL)
	if opts.Offset < 0 || opts.Offset > 0 && opts.Size <= 0 {
		return nil, permanent(fmt.Errorf("transfer: read %s: offset %d needs a size (has %d)", url, opts.Offset, opts.Size))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, opts.URL, nil)
	if err != nil {
		return nil, permanent(fmt.Errorf("request for %s: %w", url, redactErr(err)))
	}
	if opts.Header != nil {
		req.Header = opts.Header.Clone()
	}
	// Identity: the transport must not decode behind our back, or the
	// digests would be of other bytes.
	req.Header.Set("Accept-Encoding", "identity")
	if opts.Offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(opts.Offset, 10)+"-"+strconv.FormatInt(opts.Offset+opts.Size-1, 10))
	}
	client := opts.Client
	if client == nil {
		if client, err = NewHTTPClient(ClientOptions{}); err != nil {
			return nil, err
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		err = redactErr(err)
		if certificateError(err) {
			return nil, permanent(err)
		}
		return nil, err
	}
	want := http.StatusOK
	if opts.Offset > 0 {
		want = http.StatusPartialContent
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		se := &StatusError{URL: url, StatusCode: resp.StatusCode, Status: resp.Status}
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil, permanent(fmt.Errorf("read %s: %w (HTTP %s): bytes %d-%d of the object cannot be read on their own",
				url, errSpanIgnored, resp.Status, opts.Offset, opts.Offset+opts.Size-1))
		case retryableStatus(resp.StatusCode):
			return nil, se
		}
		return nil, permanent(se)
	}
	if opts.Offset > 0 {
		first, last, _, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != opts.Offset || last != opts.Offset+opts.Size-1 {
			resp.Body.Close()
			return nil, permanent(fmt.Errorf("read %s: %w (%q for bytes %d-%d)", url, errBadContentRange,
				resp.Header.Get("Content-Range"), opts.Offset, opts.Offset+opts.Size-1))
		}
	}
	if opts.Size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != opts.Size {
		resp.Body.Close()
		return nil, permanent(fmt.Errorf("read %s: %w: the server sends %d bytes, expected %d", url, ErrSizeMismatch, resp.ContentLength, opts.Size))
	}
	return &streamBody{ReadCloser: resp.Body, url: url}, nil
}

// streamBody redacts the URL from the errors of a body's reads.
type streamBody struct {
	io.ReadCloser
	url string
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read %s: %w", b.url, redactErr(err))
	}
	return n, err
}
