package objstore

import (
	"net"
	"net/http"
	"time"

	"github.com/hypersdk/hypersdk/internal/netguard"
	"github.com/hypersdk/hypersdk/transfer"
)

// GuardedClient is the HTTP client of a target: the project's TLS policy,
// the SSRF guard on the address actually dialled (after DNS, on every
// connection), no proxy from the environment (the guard would see the
// proxy, not the store) and no redirects followed.
func GuardedClient(guard netguard.Guard) (*http.Client, error) {
	tlsConf, err := transfer.TLSConfig(transfer.ClientOptions{})
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: guard.Control}
	t := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
	}
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}
