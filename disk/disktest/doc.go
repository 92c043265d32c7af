// Package disktest holds what every disk format's tests share: qemu-img as
// the oracle (info, check, compare, convert — a missing qemu-img fails the
// test with how to install it) and a reproducible test disk with the regions
// converters get wrong: holes, written zeros, incompressible noise, text,
// and a size that is a multiple of 512 but not of 64 KiB.
package disktest
