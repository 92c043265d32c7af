package ovf

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// MaxManifestSize bounds the manifests ParseManifest accepts; a manifest has
// one short line per file.
const MaxManifestSize = 4 << 20

// ManifestEntry is one line of a manifest: Algorithm(Name)= Digest.
type ManifestEntry struct {
	Algorithm Algorithm
	Name      string
	Digest    string // lowercase hex
}

// Manifest is an OVF manifest (.mf): digests of the descriptor and of the
// files it references.
//
// DSP0243 writes each line as `SHA256(disk.vmdk)= 3f9a…`. GNU coreutils
// (8.x and later) read exactly this syntax as their "BSD tag" format, so
// from the package directory
//
//	sha256sum -c vm.mf   # SHA256 lines (what Marshal writes)
//	sha1sum -c vm.mf     # SHA1 lines of OVF 1.x packages
//	cksum -c vm.mf       # any mix of algorithms (coreutils 9.0 and later)
//
// verify a package with standard tools. A manifest with lines of other
// algorithms makes sha256sum warn about "improperly formatted" lines but
// still check the SHA256 ones.
type Manifest struct {
	Entries []ManifestEntry
}

// ManifestName returns the manifest file name for a descriptor name:
// DSP0243 gives the manifest the descriptor's base name and extension .mf.
func ManifestName(descriptorName string) string {
	return strings.TrimSuffix(descriptorName, path.Ext(descriptorName)) + ".mf"
}

// CertificateName returns the certificate file name (.cert) for a
// descriptor name.
func CertificateName(descriptorName string) string {
	return strings.TrimSuffix(descriptorName, path.Ext(descriptorName)) + ".cert"
}

// ParseManifest parses a manifest. It accepts the DSP0243 syntax
// `ALG(name)= hex` and the BSD-tag variant with spaces `ALG (name) = hex`
// some ovftool versions wrote, CRLF line ends and blank lines. Unknown
// algorithms, malformed digests, unsafe names (see CheckPath) and
// conflicting duplicate lines are errors.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("ovf: manifest larger than %d bytes", MaxManifestSize)
	}
	m := &Manifest{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSpace(string(bytes.TrimSuffix(line, []byte("\r"))))
		if s == "" {
			continue
		}
		e, err := parseManifestLine(s)
		if err != nil {
			return nil, fmt.Errorf("ovf: manifest line %d: %w", i+1, err)
		}
		if err := m.add(e); err != nil {
			return nil, fmt.Errorf("ovf: manifest line %d: %w", i+1, err)
		}
	}
	return m, nil
}

func parseManifestLine(s string) (ManifestEntry, error) {
	open := strings.IndexByte(s, '(')
	eq := strings.LastIndexByte(s, '=')
	if open < 0 || eq < open {
		return ManifestEntry{}, fmt.Errorf("not of the form ALG(name)= digest: %q", s)
	}
	before := strings.TrimRight(s[:eq], " \t")
	if !strings.HasSuffix(before, ")") || len(before) < open+2 {
		return ManifestEntry{}, fmt.Errorf("not of the form ALG(name)= digest: %q", s)
	}
	alg, err := ParseAlgorithm(strings.TrimSpace(s[:open]))
	if err != nil {
		return ManifestEntry{}, err
	}
	e := ManifestEntry{
		Algorithm: alg,
		Name:      before[open+1 : len(before)-1],
		Digest:    strings.ToLower(strings.TrimSpace(s[eq+1:])),
	}
	return e, nil
}

func (m *Manifest) add(e ManifestEntry) error {
	if err := CheckPath(e.Name); err != nil {
		return err
	}
	if e.Algorithm.HexLen() == 0 {
		return fmt.Errorf("unsupported digest algorithm %q", e.Algorithm)
	}
	if len(e.Digest) != e.Algorithm.HexLen() {
		return fmt.Errorf("%s(%s): digest has %d hex digits, want %d", e.Algorithm, e.Name, len(e.Digest), e.Algorithm.HexLen())
	}
	if _, err := hex.DecodeString(e.Digest); err != nil {
		return fmt.Errorf("%s(%s): digest is not hex", e.Algorithm, e.Name)
	}
	for _, x := range m.Entries {
		if x.Algorithm == e.Algorithm && x.Name == e.Name {
			if x.Digest != e.Digest {
				return fmt.Errorf("%s(%s) listed twice with different digests", e.Algorithm, e.Name)
			}
			return nil
		}
	}
	m.Entries = append(m.Entries, e)
	return nil
}

// Add appends a digest line. The digest is hex (any case); the name must be
// a safe package-relative path. Adding an identical line twice is a no-op.
func (m *Manifest) Add(alg Algorithm, name, digest string) error {
	if err := m.add(ManifestEntry{Algorithm: alg, Name: name, Digest: strings.ToLower(digest)}); err != nil {
		return fmt.Errorf("ovf: manifest: %w", err)
	}
	return nil
}

// Marshal writes the manifest in DSP0243 syntax, one `ALG(name)= hex` line
// per entry in order, LF line ends.
func (m *Manifest) Marshal() []byte {
	var b bytes.Buffer
	for _, e := range m.Entries {
		fmt.Fprintf(&b, "%s(%s)= %s\n", e.Algorithm, e.Name, e.Digest)
	}
	return b.Bytes()
}

// Lookup returns the entries for name.
func (m *Manifest) Lookup(name string) []ManifestEntry {
	var out []ManifestEntry
	for _, e := range m.Entries {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// Names lists the file names in order of first appearance.
func (m *Manifest) Names() []string {
	var out []string
	for _, e := range m.Entries {
		if !slices.Contains(out, e.Name) {
			out = append(out, e.Name)
		}
	}
	return out
}

// Algorithms lists the algorithms the manifest gives for name.
func (m *Manifest) Algorithms(name string) []Algorithm {
	var out []Algorithm
	for _, e := range m.Lookup(name) {
		out = append(out, e.Algorithm)
	}
	return out
}

// copyBufSize is the chunk size for hashing files: large enough that the
// parallel Digester pays off and syscalls are amortized.
const copyBufSize = 1 << 20

func copyContext(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, copyBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := dst.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func hashRootFile(ctx context.Context, root *os.Root, name string, algs []Algorithm) (map[Algorithm]string, error) {
	if err := CheckPath(name); err != nil {
		return nil, err
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	d := NewDigester(algs...)
	if _, err := copyContext(ctx, d, f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return d.Sums(), nil
}

// VerifyKind classifies a VerifyProblem.
type VerifyKind string

// Kinds of verification problems.
const (
	VerifyMismatch   VerifyKind = "mismatch"
	VerifyMissing    VerifyKind = "missing"
	VerifyUnreadable VerifyKind = "unreadable"
)

// VerifyProblem is one file that failed verification.
type VerifyProblem struct {
	Name      string
	Kind      VerifyKind
	Algorithm Algorithm // for mismatches
	Want, Got string    // for mismatches
	Err       error     // for unreadable files
}

func (p VerifyProblem) String() string {
	switch p.Kind {
	case VerifyMismatch:
		return fmt.Sprintf("%s: %s mismatch: manifest %s, file %s", p.Name, p.Algorithm, p.Want, p.Got)
	case VerifyMissing:
		return fmt.Sprintf("%s: missing", p.Name)
	default:
		return fmt.Sprintf("%s: unreadable: %v", p.Name, p.Err)
	}
}

// VerifyError lists every file of a directory that does not match its
// manifest.
type VerifyError struct {
	Dir      string
	Problems []VerifyProblem
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ovf: %s: %d file(s) fail manifest verification", e.Dir, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// VerifyDir checks every file the manifest lists against the files in dir,
// reading each file once and computing all its listed digests together. It
// returns a *VerifyError naming every mismatched, missing or unreadable
// file, or the context's error if ctx ends first. Files are opened through
// os.Root, so manifest names cannot reach outside dir.
func VerifyDir(ctx context.Context, dir string, m *Manifest) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("ovf: verify: %w", err)
	}
	defer root.Close()
	ve := &VerifyError{Dir: dir}
	for _, name := range m.Names() {
		entries := m.Lookup(name)
		sums, err := hashRootFile(ctx, root, name, m.Algorithms(name))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, fs.ErrNotExist):
			ve.Problems = append(ve.Problems, VerifyProblem{Name: name, Kind: VerifyMissing})
			continue
		case err != nil:
			ve.Problems = append(ve.Problems, VerifyProblem{Name: name, Kind: VerifyUnreadable, Err: err})
			continue
		}
		for _, e := range entries {
			if got := sums[e.Algorithm]; got != e.Digest {
				ve.Problems = append(ve.Problems, VerifyProblem{
					Name: name, Kind: VerifyMismatch, Algorithm: e.Algorithm, Want: e.Digest, Got: got,
				})
			}
		}
	}
	if len(ve.Problems) > 0 {
		return ve
	}
	return nil
}
