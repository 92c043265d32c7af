package netguard

import "net/netip"

// Blocked reports whether a may not be reached unless private targets are
// allowed (a zoned or invalid address always is): the address rules alone,
// for the tests.
func Blocked(a netip.Addr) bool { return blockReason(a) != "" }
