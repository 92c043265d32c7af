package transfer

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // the thumbprint format under test
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func tlsServer(t *testing.T, h2 bool) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%d", r.ProtoMajor)
	}))
	ts.EnableHTTP2 = h2
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b := make([]byte, 64)
	n, _ := resp.Body.Read(b)
	return string(b[:n]), nil
}

func colonHex(b []byte) string { return strings.ToLower(formatThumbprint(b)) }

func TestHTTPClientTLS(t *testing.T) {
	ts := tlsServer(t, false)
	raw := ts.Certificate().Raw
	s1, s256 := sha1.Sum(raw), sha256.Sum256(raw) //nolint:gosec
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())

	for _, tc := range []struct {
		name    string
		opts    ClientOptions
		wantErr error // nil: must succeed
	}{
		{"system roots reject a self-signed server", ClientOptions{}, errAnyCert},
		{"RootCAs", ClientOptions{RootCAs: pool}, nil},
		{"InsecureSkipVerify", ClientOptions{InsecureSkipVerify: true}, nil},
		{"SHA-256 thumbprint", ClientOptions{Thumbprint: colonHex(s256[:])}, nil},
		{"SHA-1 thumbprint, vSphere style", ClientOptions{Thumbprint: formatThumbprint(s1[:])}, nil},
		{"bare hex thumbprint", ClientOptions{Thumbprint: fmt.Sprintf("%x", s256)}, nil},
		{"wrong thumbprint", ClientOptions{Thumbprint: strings.Repeat("ab", 32)}, ErrThumbprintMismatch},
		{"wrong thumbprint wins over InsecureSkipVerify", ClientOptions{InsecureSkipVerify: true, Thumbprint: strings.Repeat("ab", 20)}, ErrThumbprintMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewHTTPClient(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			body, err := get(c, ts.URL)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatal(err)
			case tc.wantErr == nil && body != "proto=1":
				t.Fatalf("body %q", body)
			case tc.wantErr == errAnyCert && !certificateError(err):
				t.Fatalf("want a certificate error, got %v", err)
			case tc.wantErr != nil && tc.wantErr != errAnyCert && !errors.Is(err, tc.wantErr):
				t.Fatalf("want %v, got %v", tc.wantErr, err)
			}
			if errors.Is(tc.wantErr, ErrThumbprintMismatch) && !strings.Contains(err.Error(), formatThumbprint(s256[:])) &&
				!strings.Contains(err.Error(), formatThumbprint(s1[:])) {
				t.Errorf("mismatch error should show the presented thumbprint: %v", err)
			}
		})
	}
}

var errAnyCert = errors.New("any certificate error")

func TestHTTPClientRejectsMalformedThumbprint(t *testing.T) {
	for _, tp := range []string{"zz", "abcd", strings.Repeat("a", 63)} {
		if _, err := NewHTTPClient(ClientOptions{Thumbprint: tp}); err == nil {
			t.Errorf("thumbprint %q accepted", tp)
		}
	}
}

func TestHTTPClientSettings(t *testing.T) {
	c, err := NewHTTPClient(ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Transport.(*http.Transport)
	switch {
	case c.Timeout != 0:
		t.Error("an overall timeout would kill multi-GiB downloads")
	case tr.ResponseHeaderTimeout <= 0 || tr.TLSHandshakeTimeout <= 0:
		t.Error("connection set-up must be bounded")
	case tr.MaxConnsPerHost < 16:
		t.Errorf("MaxConnsPerHost %d is too small for parallel streams", tr.MaxConnsPerHost)
	case !tr.DisableCompression:
		t.Error("transparent gzip would hash and count other bytes than the server's")
	case tr.Proxy == nil:
		t.Error("proxy from environment not set")
	case tr.DisableKeepAlives:
		t.Error("keep-alives off")
	case tr.TLSClientConfig.InsecureSkipVerify:
		t.Error("verification off by default")
	}
}

// ReadBufferSize sizes what every connection holds for reading — the
// socket buffer below TLS and the HTTP layer's above it (at most 64 KiB) —
// and bodies far larger than it arrive whole, over TLS and HTTP/1.1 as the
// AWS clients use it.
func TestHTTPClientReadBufferSize(t *testing.T) {
	body := genData(mib+12345, 51)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	ts.StartTLS()
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	for _, tc := range []struct {
		opt            int
		socket, client int
	}{{0, 256 << 10, 64 << 10}, {16 << 10, 16 << 10, 16 << 10}, {128 << 10, 128 << 10, 64 << 10}} {
		c, err := NewHTTPClient(ClientOptions{RootCAs: pool, DisableHTTP2: true, ReadBufferSize: tc.opt})
		if err != nil {
			t.Fatal(err)
		}
		tr := c.Transport.(*http.Transport)
		if tr.ReadBufferSize != tc.client {
			t.Errorf("ReadBufferSize %d: the HTTP layer reads through %d bytes, want %d", tc.opt, tr.ReadBufferSize, tc.client)
		}
		conn, err := tr.DialContext(context.Background(), "tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if bc, ok := conn.(*bufferedConn); !ok || bc.r.Size() != tc.socket {
			t.Errorf("ReadBufferSize %d: connection %T, want a *bufferedConn reading through %d bytes", tc.opt, conn, tc.socket)
		}
		conn.Close()
		resp, err := c.Get(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("ReadBufferSize %d: read %d bytes (%v), want the %d served", tc.opt, len(got), err, len(body))
		}
		c.CloseIdleConnections()
	}
}

func TestHTTPClientSpeaksHTTP2(t *testing.T) {
	ts := tlsServer(t, true)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	for _, tc := range []struct {
		disable bool
		want    string
	}{{false, "proto=2"}, {true, "proto=1"}} {
		c, err := NewHTTPClient(ClientOptions{RootCAs: pool, DisableHTTP2: tc.disable})
		if err != nil {
			t.Fatal(err)
		}
		if body, err := get(c, ts.URL); err != nil || body != tc.want {
			t.Errorf("DisableHTTP2=%v: %q %v, want %q", tc.disable, body, err, tc.want)
		}
		c.CloseIdleConnections()
	}
}

func TestDownloadOverHTTPSWithThumbprint(t *testing.T) {
	data := genData(mib+1, 50)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, data, "")
	}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	s256 := sha256.Sum256(ts.Certificate().Raw)

	good, err := NewHTTPClient(ClientOptions{Thumbprint: formatThumbprint(s256[:])})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := testDownloader(t, Options{Client: good, ChunkConcurrency: 3, ChunkSize: 256 << 10}, newFakeClock())
	dest := filepath.Join(t.TempDir(), "f")
	res, err := d.Download(context.Background(), []File{{URL: ts.URL, Path: dest, SHA256: sha(data)}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, data)
	if !res[0].Chunked {
		t.Error("ranged download over HTTP/2 not chunked")
	}

	bad, err := NewHTTPClient(ClientOptions{Thumbprint: strings.Repeat("00", 32)})
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	d, _ = testDownloader(t, Options{Client: bad}, clk)
	_, err = d.Download(context.Background(), []File{{URL: ts.URL + "/x?sig=s3cr3t", Path: dest + "2"}})
	if !errors.Is(err, ErrThumbprintMismatch) || !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v: a wrong certificate is permanent", err)
	}
	if len(clk.recorded()) != 0 {
		t.Error("a certificate mismatch was retried")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error leaks the query: %v", err)
	}
}

func TestNetworkErrorsDoNotLeakQueryStrings(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens any more
	clk := newFakeClock()
	d, logs := testDownloader(t, Options{MaxRetries: 2}, clk)
	_, err := d.Download(context.Background(), []File{{URL: url + "/disk?X-Amz-Signature=s3cr3t", Path: filepath.Join(t.TempDir(), "f")}})
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v: connection refused is transient", err)
	}
	if len(clk.recorded()) != 2 {
		t.Errorf("%d retries, want 2", len(clk.recorded()))
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("signature leaked:\nerr: %v\nlog: %s", err, logs.String())
	}
	if !strings.Contains(err.Error(), url+"/disk") {
		t.Errorf("error should still name the URL: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://h/p/disk.vmdk?sv=1&sig=abc": "https://h/p/disk.vmdk",
		"https://user:pw@h:443/p?x#frag":     "https://h:443/p",
		"http://h/p":                         "http://h/p",
		"https://h/p?":                       "https://h/p",
		"::not a url?sig=abc":                "(invalid URL)",
		"https://bucket.s3.amazonaws.com/k?X-Amz-Signature=s": "https://bucket.s3.amazonaws.com/k",
		// vSphere NFC: the lease ticket is in the path.
		"https://esx1:443/nfc/52f5b1b4-6cd4-3e7b-2a58-0d43ed9c0b1c/disk-0.vmdk": "https://esx1:443/nfc/REDACTED/disk-0.vmdk",
		"https://h/nfc/7dc94c1e1591cee2d04f873a29bb4383/":                       "https://h/nfc/REDACTED/",
		"https://h/nfc/7dc94c1e1591cee2d04f873a29bb4383":                        "https://h/nfc/REDACTED",
		"https://h/data/nfc/x": "https://h/data/nfc/x",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// RedactURLs cleans every URL inside a message, wherever it came from.
func TestRedactURLs(t *testing.T) {
	in := `download disks of /DC0/vm/db: Get "https://esx1/nfc/52f5b1b4-6cd4/disk-0.vmdk?x=1": EOF; then https://b.s3/k?X-Amz-Signature=s and https://esx1/nfc/abcdef0123/disk-1.vmdk: HTTP 404`
	want := `download disks of /DC0/vm/db: Get "https://esx1/nfc/REDACTED/disk-0.vmdk": EOF; then https://b.s3/k and https://esx1/nfc/REDACTED/disk-1.vmdk: HTTP 404`
	if got := RedactURLs(in); got != want {
		t.Errorf("RedactURLs:\n got %s\nwant %s", got, want)
	}
	if got := RedactURLs("no urls here: /nfc/abc"); got != "no urls here: /nfc/abc" {
		t.Errorf("text without a URL changed: %s", got)
	}
}

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string][4]int64{ // first, last, total, ok
		"bytes 0-99/1000":   {0, 99, 1000, 1},
		"bytes 10-10/11":    {10, 10, 11, 1},
		"bytes 0-99/*":      {0, 99, -1, 1},
		"bytes */1000":      {-1, -1, 1000, 1},
		"bytes 0-1000/1000": {0, 0, 0, 0}, // last beyond the object
		"bytes 5-4/10":      {0, 0, 0, 0},
		"bytes */*":         {0, 0, 0, 0},
		"items 0-1/2":       {0, 0, 0, 0},
		"bytes -1-5/10":     {0, 0, 0, 0},
		"":                  {0, 0, 0, 0},
	} {
		f, l, tot, ok := parseContentRange(in)
		got := [4]int64{f, l, tot, 0}
		if ok {
			got[3] = 1
		} else {
			got = [4]int64{}
		}
		if got != want {
			t.Errorf("parseContentRange(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"7":                             7 * time.Second,
		"99999999999999":                24 * time.Hour,
		"Wed, 01 Jan 2025 00:00:30 GMT": 30 * time.Second,
		"Tue, 31 Dec 2024 00:00:00 GMT": 0,
		"soon":                          0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// Files served by different hosts (vSphere disks on several ESXi hosts)
// download together in one Download, each through its own client (here
// pinning the test servers' certificate, which the Downloader's client does
// not trust), and all of them at once: both servers hold their response
// until the other one has been asked.
func TestPerFileClientsDownloadTogether(t *testing.T) {
	data := [][]byte{genData(mib+3, 51), genData(2*mib+5, 52)}
	var asked atomic.Int32
	both := make(chan struct{})
	var files []File
	dir := t.TempDir()
	for i := range 2 {
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if asked.Add(1) == 2 {
				close(both)
			}
			select {
			case <-both:
			case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
				http.Error(w, "the other file was not requested meanwhile", http.StatusForbidden)
				return
			}
			serveNFC(w, data[i], -1)
		}))
		ts.StartTLS()
		defer ts.Close()
		pin := sha256.Sum256(ts.Certificate().Raw)
		c, err := NewHTTPClient(ClientOptions{Thumbprint: formatThumbprint(pin[:])})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseIdleConnections()
		files = append(files, File{URL: ts.URL, Path: filepath.Join(dir, strconv.Itoa(i)), SHA256: sha(data[i]), Client: c})
	}
	// The Downloader's own client trusts neither server.
	d, _ := testDownloader(t, Options{Concurrency: 2}, nil)
	if _, err := d.Download(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		checkFile(t, files[i].Path, data[i])
	}

	// A file's own client decides: with a pin its host does not match, the
	// file is refused and never written, whatever the Downloader's client.
	wrong, err := NewHTTPClient(ClientOptions{Thumbprint: strings.Repeat("00", 32)})
	if err != nil {
		t.Fatal(err)
	}
	files[0].Client, files[0].Path = wrong, filepath.Join(dir, "wrong")
	_, err = d.Download(context.Background(), files[:1])
	if !errors.Is(err, ErrThumbprintMismatch) {
		t.Fatalf("err %v, want ErrThumbprintMismatch", err)
	}
	if exists(files[0].Path) || exists(files[0].Path+".part") {
		t.Error("refused file was written")
	}
}
