package netguard

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// Guard is a target policy.
type Guard struct {
	// AllowPrivate permits the blocked address ranges (loopback,
	// link-local, private…). Zone ids and odd IPv4 spellings stay refused.
	AllowPrivate bool
	// Setting names the configuration key that sets AllowPrivate, for the
	// hint in errors (e.g. webhook_delivery.allow_private_targets).
	Setting string
}

// Error is a target the guard refused.
type Error struct {
	// Target is what was refused: a URL's host, a header; empty for a
	// dialled address, which the dialer's error already names.
	Target string
	Reason string
	// Hint says how to allow it, when a setting can.
	Hint string
}

func (e *Error) Error() string {
	s := e.Reason
	if e.Target != "" {
		s = e.Target + ": " + s
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func (g Guard) refuse(target, reason string, allowable bool) *Error {
	e := &Error{Target: target, Reason: reason}
	if allowable && g.Setting != "" {
		e.Hint = "set " + g.Setting + ": true to allow loopback, link-local and private targets"
	}
	return e
}

// rule is a blocked range with the reason given to the user.
type rule struct {
	p      netip.Prefix
	reason string
}

func rules(reason string, prefixes ...string) []rule {
	out := make([]rule, len(prefixes))
	for i, p := range prefixes {
		out[i] = rule{netip.MustParsePrefix(p), reason}
	}
	return out
}

// blocked4 and blocked6 are read-only after initialisation.
var (
	blocked4 = concat(
		rules("a \"this network\" address (0.0.0.0 reaches the local host)", "0.0.0.0/8"),
		rules("a private address", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
		rules("a shared (carrier-grade NAT) address", "100.64.0.0/10"),
		rules("a loopback address", "127.0.0.0/8"),
		rules("a link-local address (cloud metadata services live there)", "169.254.0.0/16"),
		rules("an IETF protocol assignment address", "192.0.0.0/24"),
		rules("a benchmarking address", "198.18.0.0/15"),
		rules("a multicast address", "224.0.0.0/4"),
		rules("a reserved or broadcast address", "240.0.0.0/4"),
	)
	blocked6 = concat(
		// The first match gives the reason: specific entries come first.
		rules("the unspecified address (reaches the local host)", "::/128"),
		rules("a loopback address", "::1/128"),
		rules("a local-use NAT64 address", "64:ff9b:1::/48"),
		rules("an IPv4-compatible or otherwise reserved address (deprecated)", "::/8"),
		rules("a discard-only address", "100::/64"),
		rules("a unique-local (private) address", "fc00::/7"),
		rules("a link-local address", "fe80::/10"),
		rules("a site-local address (deprecated)", "fec0::/10"),
		rules("a multicast address", "ff00::/8"),
	)
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	teredo    = netip.MustParsePrefix("2001::/32")
)

func concat(rs ...[]rule) []rule {
	var out []rule
	for _, r := range rs {
		out = append(out, r...)
	}
	return out
}

// blockReason says why a is blocked, or "" when it is not.
func blockReason(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "not an IP address"
	case a.Zone() != "":
		// Checked first: netip.Prefix.Contains is false for every zoned address.
		return "an address with an IPv6 zone id"
	}
	a = a.Unmap()
	if a.Is4() {
		return match(blocked4, a)
	}
	// The embedding prefixes come before the table, whose ::/8 holds
	// 64:ff9b::/96; none of them overlaps another entry.
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return embedded("NAT64", netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(a):
		return embedded("6to4", netip.AddrFrom4([4]byte(b[2:6])))
	case teredo.Contains(a):
		// Teredo embeds the server's IPv4 address and the client's, the
		// latter inverted (RFC 4380 section 4).
		if r := embedded("Teredo", netip.AddrFrom4([4]byte(b[4:8]))); r != "" {
			return r
		}
		return embedded("Teredo", netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
	}
	return match(blocked6, a)
}

func match(rs []rule, a netip.Addr) string {
	for _, r := range rs {
		if r.p.Contains(a) {
			return r.reason
		}
	}
	return ""
}

func embedded(kind string, v4 netip.Addr) string {
	if r := match(blocked4, v4); r != "" {
		return fmt.Sprintf("a %s address embedding %s, %s", kind, v4, r)
	}
	return ""
}

// CheckAddr applies the guard to one IP address.
func (g Guard) CheckAddr(a netip.Addr) error {
	return g.checkAddr(a.String(), a)
}

func (g Guard) checkAddr(target string, a netip.Addr) error {
	if a.Zone() != "" {
		return g.refuse(target, "IPv6 zone ids are never allowed (a zone id picks a network interface)", false)
	}
	if g.AllowPrivate && a.IsValid() {
		return nil
	}
	if r := blockReason(a); r != "" {
		return g.refuse(target, "refusing "+r, true)
	}
	return nil
}

// Control is a net.Dialer Control function: it applies the guard to the
// address about to be connected, after DNS resolution. Install it on every
// dialer that reaches user-supplied targets, and use no proxy there (the
// check would see the proxy, not the target).
func (g Guard) Control(network, address string, _ syscall.RawConn) error {
	const target = ""
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return g.refuse(target, "only TCP connections are allowed, not "+network, false)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return g.refuse(target, "not an IP address and port", false)
	}
	return g.checkAddr(target, ap.Addr())
}

// localNames are host names that resolve to loopback on every system
// (RFC 6761) or in common /etc/hosts files. Refusing them early is a
// courtesy; Control is what guarantees they are never reached.
var localNames = []string{"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

// CheckURL checks a target URL before it is stored: an absolute http(s)
// URL whose host is a well-formed name or IP address that the guard
// allows. The error does not name the field; the caller does.
func (g Guard) CheckURL(raw string) (*url.URL, error) {
	for _, c := range []byte(raw) {
		if c < 0x20 || c == 0x7f {
			return nil, &Error{Reason: "contains a control character (CR, LF, tab…)"}
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, &Error{Reason: fmt.Sprintf("must be an absolute http:// or https:// URL, got %q", raw)}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, &Error{Target: u.Host, Reason: "port must be between 1 and 65535"}
		}
	}
	host := u.Hostname()
	if strings.Contains(host, "%") {
		return nil, g.refuse(host, "IPv6 zone ids (%25 in a URL) are never allowed: a zone id picks a network interface", false)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return u, g.checkAddr(host, a)
	}
	if strings.HasPrefix(u.Host, "[") {
		return nil, &Error{Target: host, Reason: "not a valid IPv6 address"}
	}
	return u, g.checkName(host)
}

// checkName checks a host name that is not an IP address literal.
func (g Guard) checkName(host string) error {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "" || len(name) > 253 {
		return &Error{Target: host, Reason: "not a valid host name"}
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return &Error{Target: host, Reason: "not a valid host name (empty or over-long label)"}
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return &Error{Target: host, Reason: "host names may hold only letters, digits, '-', '_' and '.' (write international names in their xn-- form)"}
			}
		}
	}
	// A name whose last label is a number is an IPv4 address to most
	// resolvers (inet_aton reads 2130706433, 127.1 and 0x7f.0.0.1 as
	// 127.0.0.1); only the a.b.c.d form is checked, so only it is accepted.
	if numeric(labels[len(labels)-1]) {
		return &Error{Target: host, Reason: "an IPv4 address must be written as four decimal numbers a.b.c.d, without a trailing dot or leading zeros"}
	}
	if g.AllowPrivate {
		return nil
	}
	for _, l := range localNames {
		if name == l || strings.HasSuffix(name, "."+l) {
			return g.refuse(host, "refusing a loopback host name", true)
		}
	}
	return nil
}

// numeric reports whether a label reads as a number: decimal, octal or 0x hex.
func numeric(l string) bool {
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		l = l[2:]
		for _, c := range []byte(l) {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
		return true
	}
	for _, c := range []byte(l) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return l != ""
}

// CheckHeader checks an extra request header to be sent to a target: a
// token name, and a value without control characters (CR or LF would let
// it inject headers). The error never holds the value, which may be a
// secret.
func CheckHeader(name, value string) error {
	if name == "" {
		return &Error{Target: "header name", Reason: "must not be empty"}
	}
	for _, c := range []byte(name) {
		if !isTokenChar(c) {
			return &Error{Target: fmt.Sprintf("header name %q", name), Reason: "may hold only letters, digits and !#$%&'*+-.^_`|~"}
		}
	}
	for _, c := range []byte(value) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return &Error{Target: "value of header " + name, Reason: "contains a control character (CR, LF or another)"}
		}
	}
	return nil
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110 5.6.2).
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
