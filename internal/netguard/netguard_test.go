package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/internal/netguard"
	"github.com/hypersdk/hypersdk/internal/netguard/netguardtest"
)

const setting = "webhook_delivery.allow_private_targets"

var (
	strict  = netguard.Guard{Setting: setting}
	lenient = netguard.Guard{AllowPrivate: true, Setting: setting}
)

func TestBlocked(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		blocked bool
	}{
		// Zone ids: netip.Prefix.Contains is false for these, the old bypass.
		{"::1%lo", true}, {"::1%1", true}, {"fe80::1%lo", true}, {"fe80::1%eth0", true},
		{"2606:4700::1111%eth0", true},
		// IPv4
		{"0.0.0.0", true}, {"10.1.2.3", true}, {"100.64.0.1", true}, {"127.0.0.1", true}, {"127.255.255.254", true},
		{"169.254.169.254", true}, {"172.16.0.1", true}, {"172.31.255.255", true}, {"192.0.0.1", true},
		{"192.168.1.1", true}, {"198.18.0.1", true}, {"224.0.0.1", true}, {"255.255.255.255", true},
		{"8.8.8.8", false}, {"172.32.0.1", false}, {"1.1.1.1", false},
		// IPv6
		{"::", true}, {"::1", true}, {"fc00::1", true}, {"fd12:3456::1", true}, {"fe80::1", true},
		{"fec0::1", true}, {"ff02::1", true}, {"100::1", true},
		{"2606:4700:4700::1111", false}, {"2001:4860:4860::8888", false},
		// IPv4-mapped and IPv4-compatible
		{"::ffff:127.0.0.1", true}, {"::ffff:7f00:1", true}, {"::ffff:169.254.169.254", true}, {"::ffff:8.8.8.8", false},
		{"::127.0.0.1", true}, {"::8.8.8.8", true}, {"::ffff:0:127.0.0.1", true},
		// NAT64 well-known prefix: judged by the embedded IPv4
		{"64:ff9b::127.0.0.1", true}, {"64:ff9b::7f00:1", true}, {"64:ff9b::a9fe:a9fe", true}, {"64:ff9b::10.0.0.1", true},
		{"64:ff9b::8.8.8.8", false},
		// Local-use NAT64: blocked outright
		{"64:ff9b:1::8.8.8.8", true}, {"64:ff9b:1:ffff::1", true},
		// 6to4: 2002:AABB:CCDD::
		{"2002:7f00:1::1", true}, {"2002:a9fe:a9fe::", true}, {"2002:c0a8:101::1", true}, {"2002:0a00:0001::1", true},
		{"2002:808:808::1", false},
		// Teredo: server at bits 32-63, client inverted in the last 32
		{"2001:0:7f00:1::1", true},                   // server 127.0.0.1
		{"2001:0:808:808::80ff:fffe", true},          // client ^0x80fffffe = 127.0.0.1
		{"2001:0:808:808:0:0:f7f7:f7f7", false},      // server and client 8.8.8.8
		{"2001:0:808:808:8000:ffff:f5ff:fffe", true}, // client 10.0.0.1
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := netguard.Blocked(a); got != tc.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", tc.addr, got, tc.blocked)
		}
		err := strict.CheckAddr(a)
		if (err != nil) != tc.blocked {
			t.Errorf("strict CheckAddr(%s) = %v", tc.addr, err)
		}
		// Allowing private targets never lets a zone through.
		err = lenient.CheckAddr(a)
		if (err != nil) != (a.Zone() != "") {
			t.Errorf("lenient CheckAddr(%s) = %v", tc.addr, err)
		}
	}
	if !netguard.Blocked(netip.Addr{}) {
		t.Error("the zero Addr is not blocked")
	}
}

// urlCases are every variant the guard must refuse, with a word the error
// must contain; "" accepts.
var urlCases = []struct {
	url        string
	strictErr  string // "" when the strict guard accepts
	lenientErr string // "" when private targets are allowed and it passes
}{
	{"http://[::1%25lo]:9/x", "zone id", "zone id"},
	{"http://[::1%251]:9/x", "zone id", "zone id"},
	{"http://[fe80::1%25lo]/x", "zone id", "zone id"},
	{"http://[fe80::1%25eth0]/x", "zone id", "zone id"},
	{"https://[2606:4700::1%25eth0]/x", "zone id", "zone id"},
	{"http://[::1]/x", "loopback", ""},
	{"http://[::]/x", "unspecified", ""},
	{"http://127.0.0.1:8080/x", "loopback", ""},
	{"http://0.0.0.0/x", "this network", ""},
	{"http://169.254.169.254/latest", "link-local", ""},
	{"http://10.1.2.3/x", "private", ""},
	{"http://192.168.1.1/x", "private", ""},
	{"http://[::ffff:127.0.0.1]/x", "loopback", ""},
	{"http://[::ffff:a9fe:a9fe]/x", "link-local", ""},
	{"http://[::127.0.0.1]/x", "IPv4-compatible", ""},
	{"http://[64:ff9b::127.0.0.1]/x", "NAT64", ""},
	{"http://[64:ff9b::a9fe:a9fe]/x", "NAT64", ""},
	{"http://[64:ff9b:1::8.8.8.8]/x", "local-use NAT64", ""},
	{"http://[2002:7f00:1::1]/x", "6to4", ""},
	{"http://[2002:a9fe:a9fe::1]/x", "6to4", ""},
	{"http://[2001:0:7f00:1::1]/x", "Teredo", ""},
	{"http://[fd00::1]/x", "unique-local", ""},
	{"http://localhost/x", "loopback host name", ""},
	{"http://localhost./x", "loopback host name", ""},
	{"http://LOCALHOST:80/x", "loopback host name", ""},
	{"http://api.localhost/x", "loopback host name", ""},
	{"http://ip6-localhost/x", "loopback host name", ""},
	// IPv4 spellings resolvers accept and the a.b.c.d check would miss
	{"http://2130706433/x", "a.b.c.d", "a.b.c.d"},
	{"http://0x7f000001/x", "a.b.c.d", "a.b.c.d"},
	{"http://0x7f.0.0.1/x", "a.b.c.d", "a.b.c.d"},
	{"http://0177.0.0.1/x", "a.b.c.d", "a.b.c.d"},
	{"http://127.1/x", "a.b.c.d", "a.b.c.d"},
	{"http://127.0.0.1./x", "a.b.c.d", "a.b.c.d"},
	{"http://0/x", "a.b.c.d", "a.b.c.d"},
	{"http://8.8.8.8./x", "a.b.c.d", "a.b.c.d"},
	// malformed
	{"ftp://example.com/x", "absolute http", "absolute http"},
	{"/relative", "absolute http", "absolute http"},
	{"http://example.com\r\nX-Injected: 1/x", "control character", "control character"},
	{"http://example.com/\x00", "control character", "control character"},
	{"http://exa_mple..com/x", "host name", "host name"},
	{"http://example.com:0/x", "port", "port"},
	{"http://bücher.example/x", "xn--", "xn--"},
	// accepted
	{"https://hooks.example.com/x", "", ""},
	{"https://hooks.example.com./x", "", ""},
	{"http://8.8.8.8:8080/x", "", ""},
	{"http://[2606:4700:4700::1111]/x", "", ""},
	{"http://[64:ff9b::8.8.8.8]/x", "", ""},
	{"http://[2002:808:808::1]/x", "", ""},
	{"http://1password.com/x", "", ""},
	{"http://0x.example/x", "", ""},
}

func TestCheckURL(t *testing.T) {
	for _, tc := range urlCases {
		for _, g := range []struct {
			guard netguard.Guard
			want  string
		}{{strict, tc.strictErr}, {lenient, tc.lenientErr}} {
			_, err := g.guard.CheckURL(tc.url)
			switch {
			case g.want == "" && err != nil:
				t.Errorf("AllowPrivate=%v %q refused: %v", g.guard.AllowPrivate, tc.url, err)
			case g.want != "" && err == nil:
				t.Errorf("AllowPrivate=%v %q accepted", g.guard.AllowPrivate, tc.url)
			case g.want != "" && !strings.Contains(err.Error(), g.want):
				t.Errorf("AllowPrivate=%v %q: error %q does not say %q", g.guard.AllowPrivate, tc.url, err, g.want)
			}
			var ge *netguard.Error
			if err != nil && !errors.As(err, &ge) {
				t.Errorf("%q: error %T is not a *netguard.Error", tc.url, err)
			}
		}
	}
	// A refusal a setting can lift says which setting.
	_, err := strict.CheckURL("http://10.0.0.1/")
	if err == nil || !strings.Contains(err.Error(), setting) {
		t.Errorf("error %v does not name %s", err, setting)
	}
	// One that no setting lifts does not suggest it.
	_, err = strict.CheckURL("http://[::1%25lo]/")
	if err == nil || strings.Contains(err.Error(), setting) {
		t.Errorf("zone error %v suggests %s", err, setting)
	}
}

func TestCheckHeader(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"Authorization", "Bearer x", ""},
		{"X-Tab", "a\tb", ""},
		{"X-Bad", "v\r\nX-Injected: 1", "control character"},
		{"X-Bad", "v\n", "control character"},
		{"X-Bad", "v\x00", "control character"},
		{"X-Bad", "v\x7f", "control character"},
		{"X-Bad\r\nX-Injected", "v", "header name"},
		{"X Bad", "v", "header name"},
		{"X:Bad", "v", "header name"},
		{"", "v", "header name"},
	} {
		err := netguard.CheckHeader(tc.name, tc.value)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckHeader(%q, %q) = %v, want %q", tc.name, tc.value, err, tc.want)
		}
		if err != nil && tc.value != "" && strings.Contains(err.Error(), tc.value) {
			t.Errorf("error %q shows the header value", err)
		}
	}
}

// The guard on the dialer sees the address after DNS: a public-looking
// name that resolves to a blocked address is refused, and nothing connects.
func TestControlRefusesWhatANameResolvesTo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	res := netguardtest.Resolver(map[string][]netip.Addr{
		"rebind.example": {netip.MustParseAddr("127.0.0.1")},
		"nat64.example":  {netip.MustParseAddr("64:ff9b::7f00:1")},
		"public.example": {netip.MustParseAddr("127.0.0.1")},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, host := range []string{"rebind.example", "nat64.example"} {
		if _, err := strict.CheckURL("http://" + net.JoinHostPort(host, port) + "/"); err != nil {
			t.Fatalf("%s refused before resolution: %v", host, err)
		}
		d := &net.Dialer{Resolver: res, Control: strict.Control}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		var ge *netguard.Error
		if err == nil {
			c.Close()
			t.Fatalf("%s: dial succeeded", host)
		} else if !errors.As(err, &ge) || !strings.Contains(err.Error(), setting) {
			t.Fatalf("%s: dial error %v is not the guard's", host, err)
		}
	}
	// Zoned literals (which a hosts file can also yield) are refused at
	// dial even with private targets allowed.
	for _, addr := range []string{"[::1%lo]:" + port, "[::1%1]:" + port, "[fe80::1%lo]:" + port} {
		if c, err := (&net.Dialer{Control: lenient.Control}).DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
			t.Fatalf("%s: dial succeeded", addr)
		} else if !strings.Contains(err.Error(), "zone id") {
			t.Fatalf("%s: dial error %v", addr, err)
		}
	}
	// The same resolver with private targets allowed does connect: the
	// refusals above are the guard's, not the test resolver's.
	c, err := (&net.Dialer{Resolver: res, Control: lenient.Control}).DialContext(ctx, "tcp", net.JoinHostPort("public.example", port))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-accepted
	if n := len(accepted); n != 0 {
		t.Fatalf("%d refused connections reached the listener", n)
	}
}
