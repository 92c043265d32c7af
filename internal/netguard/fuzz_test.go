package netguard_test

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/internal/netguard"
)

// FuzzURLGuard checks the guard's promise: whatever URL it accepts, the
// host net/url parses from it has no zone id, and no IP address any
// resolver could read in that host is blocked (unless private targets are
// allowed).
func FuzzURLGuard(f *testing.F) {
	for _, tc := range urlCases {
		f.Add(tc.url)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, guard := range []netguard.Guard{strict, lenient} {
			u, err := guard.CheckURL(raw)
			if err != nil {
				continue
			}
			again, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("accepted %q, which net/url does not parse: %v", raw, err)
			}
			host := again.Hostname()
			if host != u.Hostname() || host == "" {
				t.Fatalf("accepted %q: host %q, guard saw %q", raw, host, u.Hostname())
			}
			if strings.Contains(host, "%") {
				t.Fatalf("accepted %q with a zone id", raw)
			}
			if a, err := netip.ParseAddr(host); err == nil {
				if a.Zone() != "" || (!guard.AllowPrivate && netguard.Blocked(a)) {
					t.Fatalf("accepted %q: %s is blocked", raw, a)
				}
			}
			// A host a lax resolver reads as IPv4 must be in the one
			// checked spelling.
			if v4, ok := laxIPv4(host); ok {
				if host != v4.String() {
					t.Fatalf("accepted %q: %q reads as %s", raw, host, v4)
				}
				if !guard.AllowPrivate && netguard.Blocked(v4) {
					t.Fatalf("accepted %q: %s is blocked", raw, v4)
				}
			}
		}
	})
}

// laxIPv4 parses like inet_aton (and the WHATWG URL host parser): one to
// four parts, each decimal, octal (leading 0) or hex (0x), the last filling
// the remaining bytes; a trailing dot is ignored.
func laxIPv4(host string) (netip.Addr, bool) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var nums []uint64
	for _, p := range parts {
		base := 10
		switch {
		case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		n, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		nums = append(nums, n)
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}
