package webhooks

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/hypersdk/hypersdk/internal/netguard"
	"github.com/hypersdk/hypersdk/transfer"
)

// AllowPrivateSetting is the configuration key that lets webhooks reach
// loopback, link-local and private addresses.
const AllowPrivateSetting = "webhook_delivery.allow_private_targets"

// FieldError names the request field a problem is in (a configured
// endpoint reports it as webhooks[N].<field>).
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// invalid is a request error in one field.
func invalid(field string, err error) error {
	return fmt.Errorf("%w: %w", ErrInvalid, &FieldError{Field: field, Err: err})
}

// checkURL validates a target URL when an endpoint is added or changed:
// the project's SSRF guard, then what webhooks add to it.
func checkURL(raw string, guard netguard.Guard) (*url.URL, error) {
	u, err := guard.CheckURL(raw)
	if err != nil {
		return nil, invalid("url", err)
	}
	if u.User != nil {
		return nil, invalid("url", errors.New("must not contain credentials; send them as a header"))
	}
	if u.Fragment != "" {
		return nil, invalid("url", errors.New("must not have a fragment"))
	}
	return u, nil
}

// newHTTPClient is the delivery client: the project's TLS policy, the SSRF
// guard applied to the address actually dialled (after DNS, on every
// connection whatever the redirect policy), no proxy (the guard would see
// the proxy, not the target), no redirects. resolver may be nil (the
// system's).
func newHTTPClient(guard netguard.Guard, resolver *net.Resolver) (*http.Client, error) {
	tlsConf, err := transfer.TLSConfig(transfer.ClientOptions{})
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Resolver:  resolver,
		Control:   guard.Control,
	}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is a failed delivery
		},
	}, nil
}
