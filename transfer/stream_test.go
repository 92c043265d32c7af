package transfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// OpenStream makes one GET with the caller's header, asks for a part of
// the object as a range, and refuses for good what cannot be the bytes
// wanted; no error quotes the URL's query.
func TestOpenStream(t *testing.T) {
	obj := randomObject(1<<20 + 9)
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		if r.Header.Get("Cookie") != "s=1" {
			http.Error(w, "no session", http.StatusForbidden)
			return
		}
		if r.URL.Path == "/ignores-range" {
			r.Header.Del("Range")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(obj))
	}))
	defer srv.Close()
	hdr := http.Header{"Cookie": {"s=1"}}
	read := func(opts StreamOptions) ([]byte, error) {
		rc, err := OpenStream(context.Background(), opts)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	got, err := read(StreamOptions{URL: srv.URL + "/o?sig=secret", Header: hdr, Size: -1})
	if err != nil || !bytes.Equal(got, obj) || ranges[0] != "" {
		t.Fatalf("whole object: %d bytes, err %v, Range %q", len(got), err, ranges[0])
	}
	got, err = read(StreamOptions{URL: srv.URL + "/o?sig=secret", Header: hdr, Offset: 1000, Size: 5000})
	if err != nil || !bytes.Equal(got, obj[1000:6000]) || ranges[1] != "bytes=1000-5999" {
		t.Fatalf("part: %d bytes, err %v, Range %q", len(got), err, ranges[1])
	}
	for name, opts := range map[string]StreamOptions{
		"forbidden":     {URL: srv.URL + "/o?sig=secret", Size: -1},
		"ignores range": {URL: srv.URL + "/ignores-range?sig=secret", Header: hdr, Offset: 10, Size: 10},
		"other size":    {URL: srv.URL + "/o?sig=secret", Header: hdr, Size: 12},
	} {
		_, err := read(opts)
		if err == nil || !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err = %v, want a permanent failure", name, err)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the query is in the error: %v", name, err)
		}
	}
}
