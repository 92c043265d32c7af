package transfer

import (
	"encoding"
	"fmt"
	"hash"
)

// Framed returns a hash constructor for Digest.New that checks a part of
// an object against the digest of the whole object: each hash it returns
// has already been fed prefix (the object's bytes before the part) and
// adds suffix (the bytes after it) when summed, leaving its own state as
// it was. newHash's hashes must implement encoding.BinaryMarshaler and
// BinaryUnmarshaler (every hash of the standard library does: MD5, SHA-*,
// CRC-32, CRC-64) so that Sum can work on a copy; Framed refuses one that
// does not. prefix and suffix are kept, not copied.
func Framed(newHash func() hash.Hash, prefix, suffix []byte) (func() hash.Hash, error) {
	probe := newHash()
	if _, ok := probe.(encoding.BinaryMarshaler); !ok {
		return nil, fmt.Errorf("transfer: framed digest: %T cannot copy its state", probe)
	}
	if _, ok := probe.(encoding.BinaryUnmarshaler); !ok {
		return nil, fmt.Errorf("transfer: framed digest: %T cannot restore its state", probe)
	}
	return func() hash.Hash {
		h := newHash()
		h.Write(prefix)
		return &framed{Hash: h, newHash: newHash, prefix: prefix, suffix: suffix}
	}, nil
}

// framed is a hash fed a prefix first that adds a suffix when summed.
type framed struct {
	hash.Hash
	newHash        func() hash.Hash
	prefix, suffix []byte
}

// Sum appends the suffix on a copy of the state, so that writing may go
// on after it.
func (f *framed) Sum(b []byte) []byte {
	state, err := f.Hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("transfer: framed digest: copy state: %v", err)) // Framed checked the type
	}
	c := f.newHash()
	if err := c.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		panic(fmt.Sprintf("transfer: framed digest: restore state: %v", err))
	}
	c.Write(f.suffix)
	return c.Sum(b)
}

// Reset starts again from the prefix.
func (f *framed) Reset() {
	f.Hash.Reset()
	f.Hash.Write(f.prefix)
}
