package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/transfer"
)

// Options configure a Client. The zero value is usable for an
// unauthenticated client with default transport settings.
type Options struct {
	// Token is the API bearer token.
	Token string
	// Transport carries the requests; nil means NewTransport(TLS).
	Transport http.RoundTripper
	// TLS configures the default transport; ignored when Transport is set.
	TLS TLSOptions
	// Timeout bounds each request/response exchange (0 means none). It
	// does not bound a whole WatchJob or a followed log stream: for
	// streams it only bounds the wait for the response headers.
	Timeout time.Duration
	// UserAgent is sent with every request; default "hypersdk-client".
	UserAgent string
	// SubmitAttempts is how many times SubmitJob tries the POST when the
	// connection fails or the server answers 5xx (default 5).
	SubmitAttempts int
	// Backoff spaces retries of submissions, of polls in WatchJob and of
	// reconnections of followed logs. The zero value means
	// backoff.Policy{Base: 500ms, Max: 10s, Jitter: 0.5}.
	Backoff backoff.Policy
	// OnRetry, when set, is told about every retry before its delay.
	OnRetry func(op string, attempt int, err error, delay time.Duration)
}

// TLSOptions configure the default transport's TLS.
type TLSOptions struct {
	// CAFile is a PEM bundle of certificate authorities to trust in
	// addition to the system pool (for a daemon with its own CA).
	CAFile string
	// InsecureSkipVerify disables certificate verification. For tests and
	// emergencies only: the token is then sent to whoever answers.
	InsecureSkipVerify bool
}

// NewTransport returns an HTTP transport like http.DefaultTransport with
// the given TLS settings.
func NewTransport(o TLSOptions) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile == "" && !o.InsecureSkipVerify {
		return t, nil
	}
	opts := transfer.ClientOptions{InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates found", o.CAFile)
		}
		opts.RootCAs = pool
	}
	cfg, err := transfer.TLSConfig(opts)
	if err != nil {
		return nil, err
	}
	t.TLSClientConfig = cfg
	return t, nil
}

// Client calls one hypervisord. It is safe for concurrent use.
type Client struct {
	base     string // scheme://host[:port][/prefix], no trailing slash
	token    string
	hc       *http.Client
	ua       string
	timeout  time.Duration
	attempts int
	retry    backoff.Policy
	onRetry  func(op string, attempt int, err error, delay time.Duration)
}

// New returns a client for the daemon at baseURL (e.g.
// "http://127.0.0.1:8080"; a path prefix is kept for daemons behind a
// reverse proxy).
func New(baseURL string, o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://host:port or https://host:port", baseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: must not contain credentials, a query or a fragment", baseURL)
	}
	rt := o.Transport
	if rt == nil {
		t, err := NewTransport(o.TLS)
		if err != nil {
			return nil, err
		}
		rt = t
	}
	c := &Client{
		base:     strings.TrimRight(u.String(), "/"),
		token:    strings.TrimSpace(o.Token),
		hc:       &http.Client{Transport: rt, CheckRedirect: sameOriginRedirects},
		ua:       o.UserAgent,
		timeout:  o.Timeout,
		attempts: o.SubmitAttempts,
		retry:    o.Backoff,
		onRetry:  o.OnRetry,
	}
	if c.ua == "" {
		c.ua = "hypersdk-client"
	}
	if c.attempts <= 0 {
		c.attempts = 5
	}
	if c.retry == (backoff.Policy{}) {
		c.retry = backoff.Policy{Base: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.5}
	}
	return c, nil
}

// sameOriginRedirects refuses redirects to another host, which would carry
// the bearer token there.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
		return fmt.Errorf("%w (%s)", errCrossOrigin, req.URL.Redacted())
	}
	return nil
}

// BaseURL returns the server URL the client talks to.
func (c *Client) BaseURL() string { return c.base }

// request describes one API call.
type request struct {
	method string
	path   string // already escaped, starting with /
	query  url.Values
	body   []byte
	header http.Header
}

// send performs one exchange. On a 2xx status it returns the response with
// its body open; otherwise the body is consumed into a *Problem. release
// frees the request's context and must be called once the body is read.
func (c *Client) send(ctx context.Context, r request, stream bool) (resp *http.Response, release func(), err error) {
	var cancel context.CancelFunc
	var timer *time.Timer
	switch {
	case c.timeout > 0 && !stream:
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	case c.timeout > 0:
		// A stream may last as long as the job: only the wait for the
		// response headers is bounded.
		ctx, cancel = context.WithCancel(ctx)
		timer = time.AfterFunc(c.timeout, cancel)
	default:
		ctx, cancel = context.WithCancel(ctx)
	}
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Accept", "application/json, application/problem+json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err = c.hc.Do(req)
	fired := timer != nil && !timer.Stop()
	if err != nil {
		cancel()
		if fired {
			err = fmt.Errorf("%s %s: no response within %s: %w", r.method, u, c.timeout, context.DeadlineExceeded)
		}
		return nil, nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer cancel()
		defer resp.Body.Close()
		return nil, nil, decodeProblem(resp)
	}
	return resp, cancel, nil
}

// call performs a unary exchange and decodes a JSON answer into out (when
// out is non-nil).
func (c *Client) call(ctx context.Context, r request, out any) (*http.Response, error) {
	resp, cancel, err := c.send(ctx, r, false)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return resp, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp, fmt.Errorf("%s %s: decode response: %w", r.method, r.path, err)
	}
	return resp, nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	_, err := c.call(ctx, request{method: http.MethodGet, path: path, query: q}, out)
	return err
}

// apiPath joins escaped path segments under the API prefix.
func apiPath(segments ...string) string {
	var b strings.Builder
	b.WriteString(apitypes.APIPrefix)
	for _, s := range segments {
		b.WriteByte('/')
		if s == "." || s == ".." {
			// Dot segments would be resolved away, not sent as an ID.
			b.WriteString(strings.ReplaceAll(s, ".", "%2E"))
			continue
		}
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// errCrossOrigin refuses a redirect that would carry the token elsewhere.
var errCrossOrigin = errors.New("refusing a redirect to another origin")

// transient reports whether a failed exchange is worth repeating: the
// connection failed or broke, or the server (or a proxy) had a temporary
// problem. Answers the server meant (4xx), certificate errors and refused
// redirects are not.
func transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var p *Problem
	if errors.As(err, &p) {
		switch p.Status {
		case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) || errors.Is(err, errCrossOrigin) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded)
}

// sleep waits before retry number attempt, telling OnRetry first.
func (c *Client) sleep(ctx context.Context, op string, attempt int, err error) error {
	d := c.retry.Delay(attempt)
	if c.onRetry != nil {
		c.onRetry(op, attempt, err, d)
	}
	return backoff.Wait(ctx, d)
}
