package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/hypersdk/hypersdk/providers"
)

// apiFailure is a refused ARM or Blob call, in one line: the HTTP status,
// the service's error code and message. It replaces azcore's
// ResponseError, whose text spans many lines with the whole response body;
// it never holds a URL's query (a SAS).
type apiFailure struct {
	Status  int
	Code    string
	Message string
	// class is the provider error class it belongs to, if any
	// (ErrNotFound, ErrAuth, ErrThrottled, ErrExpired).
	class error
}

func (e *apiFailure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.class != nil {
		fmt.Fprintf(&b, " (%v)", e.class)
	}
	return b.String()
}

func (e *apiFailure) Unwrap() error { return e.class }

// statusOf returns the HTTP status of a refused call, 0 when none came.
func statusOf(err error) int {
	var f *apiFailure
	if errors.As(err, &f) {
		return f.Status
	}
	return 0
}

// codeOf returns the service's error code of a refused call.
func codeOf(err error) string {
	var f *apiFailure
	if errors.As(err, &f) {
		return f.Code
	}
	return ""
}

// armMessage reads the message of an ARM error body
// ({"error": {"code", "message"}}).
func armMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil || len(body) == 0 {
		return ""
	}
	var v struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return oneLine(v.Error.Message, 400)
}

// oneLine keeps the first line of s, at most n bytes.
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// armError wraps a failed ARM call with what was being done: refused
// credentials (401, 403, or a token the identity platform would not issue)
// with providers.ErrAuth, a missing resource with providers.ErrNotFound,
// throttling (429) with providers.ErrThrottled.
func (p *Provider) armError(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("azure %s: %s: %w", p.name, what, err)
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return fmt.Errorf("azure %s: %s: %w: sign-in refused: %s", p.name, what, providers.ErrAuth, oneLine(redactURLs(authErr.Error()), 600))
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// azidentity marks a credential that cannot even try (no managed
		// identity endpoint, no Azure CLI, an empty default chain) as not
		// worth retrying; the token request is the only call that fails
		// that way without an answer.
		var nr interface{ NonRetriable() }
		if errors.As(err, &nr) {
			return fmt.Errorf("azure %s: %s: %w: no usable credential: %s", p.name, what, providers.ErrAuth, oneLine(redactURLs(err.Error()), 600))
		}
		return fmt.Errorf("azure %s: %s: %s", p.name, what, redactURLs(err.Error()))
	}
	f := &apiFailure{Status: re.StatusCode, Code: re.ErrorCode, Message: armMessage(re)}
	switch {
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		f.class = providers.ErrAuth
	case re.StatusCode == http.StatusNotFound:
		f.class = providers.ErrNotFound
	case re.StatusCode == http.StatusTooManyRequests:
		f.class = providers.ErrThrottled
	}
	return fmt.Errorf("azure %s: %s: %w", p.name, what, f)
}

// redactURLs replaces the query of every URL in s with "REDACTED": a
// transport error (*url.Error) quotes the URL it failed on, and a SAS URL
// carries its signature in the query.
func redactURLs(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		// The URL runs to the next space or quote.
		end := i + 3 + strings.IndexAny(s[i+3:]+" ", " \"'\n\t")
		b.WriteString(s[:i])
		u := s[i:end]
		if q := strings.IndexByte(u, '?'); q >= 0 {
			u = u[:q] + "?REDACTED"
		}
		b.WriteString(u)
		s = s[end:]
	}
}

// redactedURL is u without its query, for log lines and errors.
func redactedURL(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.User = "", "", nil
	return c.String()
}
