package transfer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrPermanent marks a failure that retrying the same request cannot
	// fix: a 4xx answer such as 401, 403 or 404, a certificate that does not
	// verify, an object whose size differs from the expected one. Callers map
	// it to their own classification (e.g. providers.Permanent).
	ErrPermanent = errors.New("permanent error, not retried")
	// ErrChecksumMismatch: the downloaded bytes do not hash to File.SHA256.
	ErrChecksumMismatch = errors.New("SHA-256 mismatch")
	// ErrDigestMismatch: the bytes do not match a digest the object store
	// published: one of File.Digests (an S3 ETag's MD5, a full-object
	// CRC64NVME) or a Reader's ReaderOptions.Digest (GCS's CRC32C). A
	// Reader does not retry it: the object itself is bad.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch: the server's object size differs from File.Size.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrThumbprintMismatch: the server's TLS certificate is not the pinned
	// one (ClientOptions.Thumbprint).
	ErrThumbprintMismatch = errors.New("TLS certificate thumbprint mismatch")
)

// Internal conditions. They are values, not state: nothing mutates them.
var (
	errStalled         = errors.New("no data received within the stall timeout")
	errShortBody       = errors.New("body ended before the expected size")
	errLongBody        = errors.New("body is longer than the expected size")
	errBadContentRange = errors.New("206 response with a Content-Range that does not match the request")
	errObjectChanged   = errors.New("object changed on the server since the download started")
	// errWrongVersion: the origin answered with another version than the
	// caller described (File.Validator); the caller's cannot be had.
	errWrongVersion = fmt.Errorf("not the version of the object described: %w", errObjectChanged)
	// errSpanIgnored: a whole object came back for a part of it
	// (File.Offset), which cannot be taken out of the object on its own.
	errSpanIgnored   = errors.New("the server ignored the Range request")
	errSiblingFailed = errors.New("another file of the same download failed")
)

// StatusError is an HTTP answer that is not the data asked for. Errors
// returned for permanent statuses also wrap ErrPermanent; use errors.As to get
// the status code (e.g. 401/403 → authentication, 404 → expired lease URL).
type StatusError struct {
	// URL is the request URL without query string or user info.
	URL        string
	StatusCode int
	Status     string
	// RetryAfter is the delay the server asked for (429/503), zero if none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %s", e.URL, e.Status)
}

// retryableStatus reports whether a status is worth another request:
// timeouts, throttling and server-side failures.
func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func permanent(err error) error {
	return fmt.Errorf("%w: %w", err, ErrPermanent)
}

// noRetryError carries failures that are not the server's fault and that
// another request would not fix (disk full, a read-only directory, a retry
// budget already spent) without calling them ErrPermanent.
type noRetryError struct{ err error }

func (e *noRetryError) Error() string { return e.err.Error() }
func (e *noRetryError) Unwrap() error { return e.err }

func noRetry(err error) error { return &noRetryError{err} }

// retryable reports whether a failed attempt should be retried (or resumed).
func retryable(err error) bool {
	var nr *noRetryError
	return !errors.Is(err, ErrPermanent) && !errors.As(err, &nr) &&
		!errors.Is(err, ErrChecksumMismatch) &&
		!errors.Is(err, errSiblingFailed) &&
		!errors.Is(err, errRestartNeeded) // handled by the caller, never blindly repeated
}

// certificateError reports whether err is a TLS verification failure; those
// do not heal by retrying.
func certificateError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		ierr x509.CertificateInvalidError
	)
	return errors.Is(err, ErrThumbprintMismatch) || errors.As(err, &verr) ||
		errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &ierr)
}

// RedactURL returns raw without its query string, fragment and user info, so
// that it can appear in errors and logs: pre-signed URLs and SAS tokens carry
// their signatures in the query. vSphere NFC lease URLs carry theirs in the
// path (https://host/nfc/<ticket>/disk-0.vmdk): the ticket becomes
// "REDACTED". An unparseable URL is not echoed at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	const nfc = "/nfc/"
	if rest, ok := strings.CutPrefix(u.Path, nfc); ok && rest != "" {
		file := ""
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			file = rest[i:]
		}
		u.Path, u.RawPath = nfc+"REDACTED"+file, ""
	}
	return u.String()
}

// urlInText finds http(s) URLs in free text, up to a space or quote.
var urlInText = regexp.MustCompile(`(?i)https?://[^\s"'<>]+`)

// RedactURLs applies RedactURL to every http(s) URL in s: the guard for text
// whose origin is not known to be clean (error messages and log lines a job
// stores for its viewers).
func RedactURLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, RedactURL)
}

// redactErr removes query strings from the URL that net/http puts into its
// *url.Error messages ("Get \"https://…?sig=…\": connection reset").
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	return err
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Clamp before converting so a silly value cannot overflow.
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
