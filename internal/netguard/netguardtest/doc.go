// Package netguardtest helps test code that dials through the netguard
// guard: a resolver that answers from a fixed table, so a test can point a
// host name at a blocked address without DNS, /etc/hosts or global state.
package netguardtest
