package webhooks

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/hypersdk/hypersdk/transfer"
)

// blocked are the ranges a webhook may not reach unless private targets are
// allowed: loopback, link-local (cloud metadata services live there),
// private, shared, unique-local, multicast and unspecified addresses.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

func isBlocked(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range blocked {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkURL validates a target URL when an endpoint is added or changed.
func checkURL(raw string, allowPrivate bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: url must be an absolute http:// or https:// URL, got %q", ErrInvalid, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: url must not contain credentials; send them as a header", ErrInvalid)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%w: url must not have a fragment", ErrInvalid)
	}
	if !allowPrivate {
		host := u.Hostname()
		if a, err := netip.ParseAddr(host); err == nil && isBlocked(a) {
			return nil, fmt.Errorf("%w: %s is a loopback, link-local or private address (set webhook_delivery.allow_private_targets to allow it)", ErrInvalid, host)
		}
		if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
			return nil, fmt.Errorf("%w: %s is loopback (set webhook_delivery.allow_private_targets to allow it)", ErrInvalid, host)
		}
	}
	return u, nil
}

// errBlockedTarget marks a connection refused by the SSRF guard.
type errBlockedTarget struct{ addr string }

func (e *errBlockedTarget) Error() string {
	return fmt.Sprintf("refusing to connect to %s: loopback, link-local or private address (webhook_delivery.allow_private_targets)", e.addr)
}

// newHTTPClient is the delivery client: the project's TLS policy, the SSRF
// guard applied to the address actually dialled (after DNS), no redirects,
// no proxies for private targets.
func newHTTPClient(allowPrivate bool) (*http.Client, error) {
	tlsConf, err := transfer.TLSConfig(transfer.ClientOptions{})
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			if allowPrivate {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &errBlockedTarget{addr: address}
			}
			if isBlocked(ap.Addr()) {
				return &errBlockedTarget{addr: address}
			}
			return nil
		},
	}
	t := &http.Transport{
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
