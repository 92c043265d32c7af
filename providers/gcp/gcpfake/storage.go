package gcpfake

import (
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
)

// storageProxy forwards to the in-process fake-gcs-server and corrupts
// image downloads when CorruptObjects is on.
func (s *Server) storageProxy() http.Handler {
	target, _ := url.Parse(s.gcs.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		if !s.currentFaults().CorruptObjects || r.URL.Query().Get("alt") != "media" ||
			!strings.HasSuffix(r.URL.Path, ".tar.gz") {
			return nil
		}
		var start, size int64
		switch resp.StatusCode {
		case http.StatusOK:
			size = resp.ContentLength
		case http.StatusPartialContent:
			cr := strings.TrimPrefix(resp.Header.Get("Content-Range"), "bytes ")
			rng, total, _ := strings.Cut(cr, "/")
			first, _, _ := strings.Cut(rng, "-")
			start, _ = strconv.ParseInt(first, 10, 64)
			size, _ = strconv.ParseInt(total, 10, 64)
		default:
			return nil
		}
		if size > 0 {
			s.count("objects.corrupted")
			resp.Body = &flipper{ReadCloser: resp.Body, pos: start, at: size / 2}
		}
		return nil
	}
	return rp
}

// flipper flips the byte at offset at of the object whose bytes from pos
// on it passes.
type flipper struct {
	io.ReadCloser
	pos, at int64
}

func (f *flipper) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		p[f.at-f.pos] ^= 0x20
	}
	f.pos += int64(n)
	return n, err
}
