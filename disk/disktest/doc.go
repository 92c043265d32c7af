// Package disktest holds what every disk format's tests share: qemu-img as
// the oracle (info, check, compare, convert — a missing qemu-img fails the
// test with how to install it); a reproducible test disk with the regions
// converters get wrong: holes, written zeros, incompressible noise, text,
// and a size that is a multiple of 512 but not of 64 KiB; the steps every
// format's tests take (convert a raw file with a writer, open an image for
// the test's duration, collect checked extents, SHA-256 of files and of
// virtual disks, an in-memory Target); and Exercise, the body of every
// reader's fuzz target, which holds an opened image to the disk.Image
// contract with bounded work.
//
// It imports the format packages it needs (vmdk for GenerateRaw), so a
// format package's tests that use it are external tests (package vmdk_test)
// where the format is imported here.
package disktest
