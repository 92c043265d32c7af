package proxmox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// api is a client of the PVE REST API (/api2/json): the {"data": …}
// envelope, API-token or ticket authentication, form-encoded parameters
// as PVE's own clients send them. It is safe for concurrent use.
//
// It is written here rather than taken from github.com/luthermonson/
// go-proxmox (v0.10.0 resolves): the provider needs a dozen endpoints, and
// that client reads its session ticket without the lock under which a
// re-login replaces it (a data race when exports run concurrently, which
// the daemon does), retries a 401 by recursion, sends JSON bodies, and
// brings a websocket client, a terminal library and a struct copier into
// the daemon for nothing this provider uses.
type api struct {
	base *url.URL
	http *http.Client
	// token is "PVEAPIToken=USER@REALM!TOKENID=SECRET"; "" for ticket
	// auth. Never logged.
	token    string
	username string
	password config.Secret
	retry    backoff.Policy
	attempts int

	mu       sync.Mutex
	ticket   string // PVEAuthCookie value
	csrf     string // CSRFPreventionToken
	ticketAt time.Time
}

// ticketLife is how long a ticket is used before logging in again: PVE's
// tickets are valid for two hours.
const ticketLife = 90 * time.Minute

// apiError is an API call the server refused.
type apiError struct {
	Method, Path string
	Status       int
	// Message is PVE's reason (the status line's text, or the body's
	// "message"); Errors are a 400's per-parameter problems.
	Message string
	Errors  map[string]string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
	if len(e.Errors) > 0 {
		keys := make([]string, 0, len(e.Errors))
		for k := range e.Errors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+": "+strings.TrimSpace(e.Errors[k]))
		}
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	return s
}

// Unwrap classifies the refusal for the job engine.
func (e *apiError) Unwrap() error {
	switch {
	case e.Status == http.StatusUnauthorized:
		return providers.ErrAuth
	case e.Status == http.StatusForbidden:
		return providers.ErrAuth // authenticated, but the token or user lacks a privilege
	case e.Status == http.StatusBadRequest:
		return providers.ErrInvalidArgument
	case e.Status == http.StatusNotFound, e.Status == http.StatusInternalServerError && notFoundMessage(e.Message):
		return providers.ErrNotFound
	case e.Status == http.StatusTooManyRequests:
		return providers.ErrThrottled
	}
	return nil
}

// notFoundMessage recognises PVE's "does not exist" refusals, which it
// answers with status 500 ("Configuration file 'nodes/pve/qemu-server/
// 105.conf' does not exist").
func notFoundMessage(m string) bool {
	m = strings.ToLower(m)
	return strings.Contains(m, "does not exist") || strings.Contains(m, "no such")
}

// untrustedTLS reports whether err is a refused server certificate: not
// the pinned one, or not trusted.
func untrustedTLS(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		verify   *tls.CertificateVerificationError
	)
	return errors.Is(err, transfer.ErrThumbprintMismatch) || errors.As(err, &unknown) || errors.As(err, &invalid) ||
		errors.As(err, &hostname) || errors.As(err, &verify)
}

// transient reports whether another attempt of a failed call may succeed.
func transient(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status >= 500 && ae.Unwrap() == nil || ae.Status == http.StatusTooManyRequests
	}
	return !providers.IsPermanent(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// get calls GET path with query params and decodes the data into out.
// A transient failure is retried with backoff.
func (a *api) get(ctx context.Context, path string, params url.Values, out any) error {
	for attempt := 1; ; attempt++ {
		err := a.call(ctx, http.MethodGet, path, params, out)
		if err == nil || !transient(err) || attempt >= a.attempts || ctx.Err() != nil {
			return err
		}
		if a.retry.Sleep(ctx, attempt) != nil {
			return err
		}
	}
}

// post calls POST path with form params (once: a POST starts work).
func (a *api) post(ctx context.Context, path string, params url.Values, out any) error {
	return a.call(ctx, http.MethodPost, path, params, out)
}

// del calls DELETE path.
func (a *api) del(ctx context.Context, path string, params url.Values, out any) error {
	return a.call(ctx, http.MethodDelete, path, params, out)
}

// call makes one request, logging in first (and once more after a 401)
// with ticket auth.
func (a *api) call(ctx context.Context, method, path string, params url.Values, out any) error {
	for relogin := 0; ; relogin++ {
		auth, err := a.auth(ctx, relogin > 0)
		if err != nil {
			return err
		}
		err = a.do(ctx, method, path, params, auth, out)
		var ae *apiError
		if a.token == "" && relogin == 0 && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			continue // the ticket expired early (a restarted cluster): log in again
		}
		return err
	}
}

// credentials are the headers of one request.
type credentials struct {
	authorization, cookie, csrf string
}

// auth returns the request credentials, logging in for a ticket when
// none is valid (or force).
func (a *api) auth(ctx context.Context, force bool) (credentials, error) {
	if a.token != "" {
		return credentials{authorization: a.token}, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if force || a.ticket == "" || time.Since(a.ticketAt) > ticketLife {
		var t struct {
			Ticket string `json:"ticket"`
			CSRF   string `json:"CSRFPreventionToken"`
		}
		form := url.Values{"username": {a.username}, "password": {a.password.Reveal()}}
		if err := a.do(ctx, http.MethodPost, "/access/ticket", form, credentials{}, &t); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
				return credentials{}, fmt.Errorf("log in as %s: %w: %w", a.username, providers.ErrAuth, err)
			}
			return credentials{}, fmt.Errorf("log in as %s: %w", a.username, err)
		}
		if t.Ticket == "" || t.CSRF == "" {
			return credentials{}, fmt.Errorf("log in as %s: the answer holds no ticket", a.username)
		}
		a.ticket, a.csrf, a.ticketAt = t.Ticket, t.CSRF, time.Now()
	}
	return credentials{cookie: a.ticket, csrf: a.csrf}, nil
}

// maxBody bounds an API answer: inventories and task logs are small.
const maxBody = 64 << 20

func (a *api) do(ctx context.Context, method, path string, params url.Values, cred credentials, out any) error {
	// path is escaped by the caller (a volume id's "/" is %2F in it).
	target := strings.TrimSuffix(a.base.String(), "/") + path
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		target += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch {
	case cred.authorization != "":
		req.Header.Set("Authorization", cred.authorization)
	case cred.cookie != "":
		req.AddCookie(&http.Cookie{Name: "PVEAuthCookie", Value: cred.cookie})
		if method != http.MethodGet {
			req.Header.Set("CSRFPreventionToken", cred.csrf)
		}
	}
	resp, err := a.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		// The URL has no secret; the error names the API and the host.
		err = fmt.Errorf("%s %s: %w", method, path, err)
		if untrustedTLS(err) {
			// The same certificate will be presented again.
			return providers.Permanent(err)
		}
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("%s %s: the answer is over %d bytes", method, path, maxBody)
	}
	var env struct {
		Data    json.RawMessage   `json:"data"`
		Errors  map[string]string `json:"errors"`
		Message string            `json:"message"`
	}
	jerr := json.Unmarshal(data, &env)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
		if jerr == nil && strings.TrimSpace(env.Message) != "" {
			msg = strings.TrimSpace(env.Message)
		}
		return &apiError{Method: method, Path: path, Status: resp.StatusCode, Message: msg, Errors: env.Errors}
	}
	if jerr != nil {
		return fmt.Errorf("%s %s: not a PVE answer: %w", method, path, jerr)
	}
	if out == nil || len(env.Data) == 0 || bytes.Equal(env.Data, []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}
