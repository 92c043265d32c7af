package ovf

import (
	"crypto/sha1" //nolint:gosec // OVF 1.x manifests use SHA-1; we must read them.
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
)

// Algorithm is a manifest digest algorithm, spelled as in .mf files.
type Algorithm string

// Digest algorithms DSP0243 manifests use. SHA1 is what OVF 1.x tools
// (older ovftool, VirtualBox) write; SHA256 is what we write.
const (
	SHA1   Algorithm = "SHA1"
	SHA256 Algorithm = "SHA256"
	SHA512 Algorithm = "SHA512"
)

// ParseAlgorithm accepts SHA1, SHA256, SHA512 in any case, with or without a
// dash ("sha-256").
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToUpper(strings.ReplaceAll(s, "-", "")) {
	case "SHA1":
		return SHA1, nil
	case "SHA256":
		return SHA256, nil
	case "SHA512":
		return SHA512, nil
	}
	return "", fmt.Errorf("unsupported digest algorithm %q", s)
}

// New returns a new hash for the algorithm; it panics for an unknown one
// (algorithms come from constants or ParseAlgorithm).
func (a Algorithm) New() hash.Hash {
	switch a {
	case SHA1:
		return sha1.New() //nolint:gosec // see import
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	panic("ovf: unknown digest algorithm " + string(a))
}

// HexLen is the length of the algorithm's hex digest.
func (a Algorithm) HexLen() int {
	switch a {
	case SHA1:
		return 40
	case SHA256:
		return 64
	case SHA512:
		return 128
	}
	return 0
}

// Digester computes several digests of one byte stream. Large writes are
// hashed by all algorithms in parallel, so verifying SHA-1 and SHA-256 costs
// the time of the slower one, not the sum.
type Digester struct {
	algs []Algorithm
	hs   []hash.Hash
}

// parallelThreshold is the write size above which hashing fans out; below it
// the goroutine handoff costs more than it saves.
const parallelThreshold = 128 << 10

// NewDigester returns a Digester for the given algorithms (duplicates are
// ignored).
func NewDigester(algs ...Algorithm) *Digester {
	d := &Digester{}
	for _, a := range algs {
		if !slices.Contains(d.algs, a) {
			d.algs = append(d.algs, a)
			d.hs = append(d.hs, a.New())
		}
	}
	return d
}

// Write hashes p with every algorithm. It never fails.
func (d *Digester) Write(p []byte) (int, error) {
	if len(d.hs) > 1 && len(p) >= parallelThreshold {
		var wg sync.WaitGroup
		for _, h := range d.hs[1:] {
			wg.Go(func() { h.Write(p) })
		}
		d.hs[0].Write(p)
		wg.Wait()
		return len(p), nil
	}
	for _, h := range d.hs {
		h.Write(p)
	}
	return len(p), nil
}

// Algorithms returns the algorithms in the order given to NewDigester.
func (d *Digester) Algorithms() []Algorithm { return slices.Clone(d.algs) }

// Sum returns the lowercase hex digest for a, "" if a is not computed.
func (d *Digester) Sum(a Algorithm) string {
	for i, x := range d.algs {
		if x == a {
			return hex.EncodeToString(d.hs[i].Sum(nil))
		}
	}
	return ""
}

// Sums returns every digest, keyed by algorithm.
func (d *Digester) Sums() map[Algorithm]string {
	m := make(map[Algorithm]string, len(d.algs))
	for i, a := range d.algs {
		m[a] = hex.EncodeToString(d.hs[i].Sum(nil))
	}
	return m
}
