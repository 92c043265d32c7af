// Package netguard decides which network targets the daemon may connect to
// on a user's behalf (webhooks today; any future outbound feature such as
// object storage must use it too). It is the one SSRF guard of the project.
//
// A Guard is applied twice:
//
//   - CheckURL when a target is registered (API or configuration file), for
//     a clear error naming the problem before anything is stored;
//   - Control, installed as a net.Dialer's Control function, on the address
//     actually dialled: after DNS, for every connection the client opens
//     (redirect hops and retries included), so DNS rebinding and names that
//     resolve to private addresses cannot bypass the first check.
//
// Always refused, whatever the settings: IPv6 zone ids (a zone picks a
// network interface and netip.Prefix.Contains never matches a zoned
// address, which is how the guard was once bypassed), IPv4 addresses in
// anything but the a.b.c.d form (resolvers accept 2130706433, 0x7f.1 and
// 0177.0.0.1 as 127.0.0.1), and host names with characters outside
// letters, digits, '-', '_' and '.'.
//
// Refused unless private targets are allowed (Guard.AllowPrivate): the
// loopback, private, link-local, multicast and reserved ranges listed in
// blocked4 and blocked6. Addresses that embed an IPv4 address (IPv4-mapped, NAT64
// 64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32) are judged by the
// embedded IPv4 address: blocked when it is. The local-use NAT64 prefix
// 64:ff9b:1::/48 is blocked outright, since where it embeds the IPv4
// address is the operator's choice; IPv4-compatible ::a.b.c.d and the rest
// of ::/8 are deprecated or reserved and blocked too.
package netguard
