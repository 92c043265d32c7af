package ova

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/hypersdk/hypersdk/ovf"
)

// DefaultMaxUndeclaredFileBytes caps a member whose size the descriptor does
// not declare (VirtualBox omits ovf:size) when ReadOptions leaves it 0.
const DefaultMaxUndeclaredFileBytes = 256 << 30

// ReadOptions controls reading an OVA.
type ReadOptions struct {
	// MaxUndeclaredFileBytes caps a referenced file without ovf:size; 0
	// means DefaultMaxUndeclaredFileBytes. A file backing disks of known
	// capacity is further capped at that capacity plus 1/16 and 64 MiB of
	// format overhead. Files with ovf:size must match it exactly.
	MaxUndeclaredFileBytes int64
	// MaxTotalBytes caps the bytes read from the (decompressed) tar stream,
	// skipped entries included. 0 derives the cap for compressed archives
	// from the sizes the descriptor declares; plain archives are bounded by
	// their file size.
	MaxTotalBytes int64
	// RequireManifest makes an archive without a manifest invalid.
	RequireManifest bool

	skipDigests bool // Inspect: list only
}

// Entry is an archive member returned by Reader.Next.
type Entry struct {
	Name string
	Kind MemberKind
	Size int64
}

// Reader reads an OVA member by member and checks it as it goes. The
// descriptor, which DSP0243 puts first, is read by Open; Next
// returns the manifest, certificate and referenced files that pass every
// check, skipping (and recording) entries that do not: unsafe names, links,
// devices, duplicates, unreferenced files, sizes other than declared.
// Reading an entry's data computes its digests; when Next returns io.EOF,
// Err reports every problem found, including manifest mismatches and
// missing files.
type Reader struct {
	ctx         context.Context
	opts        ReadOptions
	name        string // for messages
	file        *os.File
	dec         io.ReadCloser
	pos         *posReader
	tr          *tar.Reader
	compression Compression

	descName  string
	descBytes []byte
	desc      *ovf.Descriptor
	noDesc    bool
	files     []ovf.PackageFile
	capacity  map[string]int64  // file id → largest capacity of the disks it backs
	expected  map[string]int    // member name → index in files
	lowerRefs map[string]string // lowercased name → name, for hints
	seenFile  []bool
	mfName    string
	certName  string
	algHint   *ovf.Manifest // a tail manifest found by pre-scanning a plain file

	manifest      *ovf.Manifest
	manifestBad   bool
	manifestAtEnd bool
	haveCert      bool
	verified      bool

	entries     int
	seen        map[string]bool
	lastFileIdx int
	filesSeen   int
	metaAfter   bool // manifest or certificate came after files
	lastEnd     int64

	members  []Member
	problems []Problem
	warnings []Problem

	cur      *current
	finished bool
	fatal    bool
	err      error // non-structural (I/O, context), sticky
}

type current struct {
	entry     Entry
	member    Member
	r         io.Reader
	dig       *ovf.Digester
	remaining int64
	fileIdx   int // -1 for manifest and certificate
}

// Open opens the archive at path (plain, gzip or zstd, recognized by its
// first bytes) and reads its descriptor. Structural problems do not make
// Open fail: they are collected and reported by Err once the archive has
// been read. Open fails only when the file cannot be read.
func Open(ctx context.Context, path string, opts ReadOptions) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ova: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ova: %w", err)
	}
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, fmt.Errorf("ova: %s: %w", path, err)
	}
	r := &Reader{ctx: ctx, opts: opts, name: path, file: f}
	c, derr := detect(head[:n])
	src := &sourceReader{ctx: ctx, r: f}
	switch {
	case derr != nil:
		r.problem("", ProblemFormat, derr.Error())
		r.finished, r.fatal, r.noDesc = true, true, true
		return r, nil
	case c == CompressionNone:
		// Reading the file directly keeps it seekable, so skipped data is
		// seeked over rather than read.
		r.pos = &posReader{r: src, seeker: f}
		r.algHint = prescanManifest(f, fi.Size())
	default:
		r.dec, err = newDecompressor(bufio.NewReaderSize(src, 1<<20), c)
		if se := (*sourceError)(nil); errors.As(err, &se) {
			f.Close()
			return nil, fmt.Errorf("ova: read %s: %w", path, se.err)
		}
		if err != nil {
			r.problem("", ProblemCorrupt, fmt.Sprintf("%s stream: %v", c, err))
			r.finished, r.fatal, r.noDesc = true, true, true
			return r, nil
		}
		r.pos = &posReader{r: r.dec}
	}
	r.compression = c
	if err := r.start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) start() error {
	r.seen = map[string]bool{}
	r.lastFileIdx = -1
	r.tr = tar.NewReader(r.pos)
	r.pos.limit = r.opts.MaxTotalBytes
	if r.pos.limit <= 0 && r.compression != CompressionNone {
		// Enough to find the descriptor; raised once its sizes are known.
		r.pos.limit = ovf.MaxDescriptorSize + 1<<20
	}
	for {
		hdr, err := r.tr.Next()
		if errors.Is(err, io.EOF) {
			r.problem("", ProblemDescriptorNotFirst, "the archive is empty: no descriptor")
			r.noDesc = true
			r.finish()
			return nil
		}
		if err != nil {
			r.noDesc = true
			if e := r.streamFailure("", err); e != nil {
				return e
			}
			r.finish()
			return nil
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		_, err = r.accept(hdr) // the descriptor is consumed here, never returned by Next
		return err
	}
}

// Compression returns the archive's compression, detected from its bytes.
func (r *Reader) Compression() Compression { return r.compression }

// Descriptor returns the parsed descriptor, nil if the archive has none
// first or it is invalid.
func (r *Reader) Descriptor() *ovf.Descriptor { return r.desc }

// DescriptorName returns the descriptor's member name.
func (r *Reader) DescriptorName() string { return r.descName }

// Manifest returns the manifest read so far, nil if none.
func (r *Reader) Manifest() *ovf.Manifest { return r.manifest }

// Members returns the members read so far that passed the checks, in
// archive order, with their digests.
func (r *Reader) Members() []Member { return slices.Clone(r.members) }

// Warnings returns problems that do not make the archive invalid
// (ProblemOrder).
func (r *Reader) Warnings() []Problem { return slices.Clone(r.warnings) }

// Verified reports whether a manifest was present and every digest in it
// matched (valid once Next has returned io.EOF).
func (r *Reader) Verified() bool { return r.verified }

// Close releases the file and the decompressor.
func (r *Reader) Close() error {
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
	if r.file != nil {
		err := r.file.Close()
		r.file = nil
		return err
	}
	return nil
}

// Err returns nil if the archive read so far is valid, an *Error listing
// every structural problem, or the I/O or context error that stopped
// reading. Call it once Next has returned io.EOF.
func (r *Reader) Err() error {
	if r.err != nil {
		return r.err
	}
	if len(r.problems) > 0 {
		return &Error{Archive: r.name, Problems: slices.Clone(r.problems)}
	}
	return nil
}

func (r *Reader) problem(member string, k ProblemKind, detail string) {
	r.problems = append(r.problems, Problem{Member: member, Kind: k, Detail: detail})
}

func (r *Reader) warn(member string, k ProblemKind, detail string) {
	r.warnings = append(r.warnings, Problem{Member: member, Kind: k, Detail: detail})
}

// Next advances to the next member that passes the checks. It returns
// io.EOF at the end of the archive, or early when the stream is broken
// (then Err says how).
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.closeCurrent(); err != nil {
		return nil, err
	}
	for !r.finished {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			return nil, err
		}
		hdr, err := r.tr.Next()
		if errors.Is(err, io.EOF) {
			r.finish()
			break
		}
		if err != nil {
			if e := r.streamFailure("", err); e != nil {
				return nil, e
			}
			r.finish()
			break
		}
		e, err := r.accept(hdr)
		if err != nil {
			return nil, err
		}
		if e != nil {
			return e, nil
		}
	}
	return nil, io.EOF
}

// Read reads the current member's data, hashing it.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	c := r.cur
	if c == nil || c.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.remaining {
		p = p[:c.remaining]
	}
	n, err := c.r.Read(p)
	if n > 0 {
		if c.dig != nil {
			c.dig.Write(p[:n])
		}
		c.remaining -= int64(n)
	}
	if errors.Is(err, io.EOF) && c.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if e := r.streamFailure(c.entry.Name, err); e != nil {
			return n, e
		}
		r.cur = nil
		r.finish()
		return n, r.Err()
	}
	if c.remaining == 0 {
		return n, io.EOF
	}
	return n, nil
}

// closeCurrent drains what the caller left of the current member, so its
// digests cover all of it, and records the member.
func (r *Reader) closeCurrent() error {
	c := r.cur
	if c == nil {
		return nil
	}
	if c.remaining > 0 {
		if c.dig == nil && c.fileIdx >= 0 {
			// Not hashing (Inspect): let the tar reader skip (seek) it.
			c.remaining = 0
		} else if _, err := io.Copy(io.Discard, onlyReader{r}); err != nil {
			if r.err != nil {
				return r.err
			}
			return nil // structural: recorded, reading has finished
		}
	}
	r.cur = nil
	if c.dig != nil {
		c.member.Digests = c.dig.Sums()
	}
	r.members = append(r.members, c.member)
	if c.fileIdx >= 0 {
		r.seenFile[c.fileIdx] = true
	}
	return nil
}

// onlyReader hides Reader's other methods from io.Copy.
type onlyReader struct{ r *Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// streamFailure records a broken stream as a problem, or returns the error
// if it is not the archive's fault (I/O, context).
func (r *Reader) streamFailure(member string, err error) error {
	var se *sourceError
	var le *limitError
	switch {
	case errors.As(err, &se):
		r.err = fmt.Errorf("ova: read %s: %w", r.name, se.err)
		return r.err
	case errors.As(err, &le) && r.noDesc:
		r.problem(member, ProblemTooLarge, fmt.Sprintf("stopped reading after %d bytes: without a valid descriptor first nothing bounds the archive", le.limit))
	case errors.As(err, &le):
		r.problem(member, ProblemTooLarge, fmt.Sprintf("archive expands beyond %d bytes, more than its descriptor accounts for (decompression bomb?)", le.limit))
	case errors.Is(err, io.ErrUnexpectedEOF):
		r.problem(member, ProblemTruncated, "archive ends in the middle of an entry")
	default:
		r.problem(member, ProblemCorrupt, err.Error())
	}
	r.fatal = true
	return nil
}

func roundUp512(n int64) int64 {
	if n > math.MaxInt64-511 {
		return math.MaxInt64
	}
	return (n + 511) &^ 511
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// accept checks one header. It returns the entry to hand to the caller, or
// nil to skip it (after recording why).
func (r *Reader) accept(hdr *tar.Header) (*Entry, error) {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil, nil // archive-wide PAX records, not a file
	}
	idx := r.entries
	r.entries++
	dataStart := r.pos.n
	stored := hdr.Size
	switch hdr.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		stored = 0 // header-only types carry no data whatever their size field says
	}
	r.lastEnd = satAdd(dataStart, roundUp512(stored))
	name := hdr.Name

	bad := false
	if err := ovf.CheckPath(name); err != nil {
		r.problem(name, ProblemUnsafePath, err.Error())
		bad = true
	}
	switch hdr.Typeflag {
	case tar.TypeReg, '\x00':
	case tar.TypeSymlink:
		r.problem(name, ProblemLink, fmt.Sprintf("symbolic link to %q", hdr.Linkname))
		bad = true
	case tar.TypeLink:
		r.problem(name, ProblemLink, fmt.Sprintf("hard link to %q", hdr.Linkname))
		bad = true
	case tar.TypeChar, tar.TypeBlock:
		r.problem(name, ProblemSpecialFile, fmt.Sprintf("device node %d,%d", hdr.Devmajor, hdr.Devminor))
		bad = true
	case tar.TypeFifo:
		r.problem(name, ProblemSpecialFile, "FIFO")
		bad = true
	case tar.TypeDir:
		r.problem(name, ProblemSpecialFile, "directory entry (an OVA holds files only)")
		bad = true
	default:
		r.problem(name, ProblemSpecialFile, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
		bad = true
	}
	if !bad && isSparse(hdr) {
		r.problem(name, ProblemSpecialFile, "sparse entry (an OVA is plain USTAR)")
		bad = true
	}
	if !bad {
		key := strings.ToLower(name)
		if r.seen[key] {
			r.problem(name, ProblemDuplicate, "name appears more than once (ignoring case)")
			bad = true
		}
		r.seen[key] = true
	}

	if idx == 0 {
		if bad || strings.Contains(name, "/") || !strings.EqualFold(path.Ext(name), ".ovf") {
			r.problem(name, ProblemDescriptorNotFirst, "the first entry must be the .ovf descriptor (DSP0243 5.3)")
			r.noDesc = true
			return nil, nil
		}
		return nil, r.readDescriptor(hdr, dataStart)
	}
	if bad || r.noDesc {
		return nil, nil
	}
	switch name {
	case r.mfName:
		return r.readMeta(hdr, KindManifest, ovf.MaxManifestSize, dataStart)
	case r.certName:
		return r.readMeta(hdr, KindCertificate, maxCertSize, dataStart)
	}
	i, ok := r.expected[name]
	if !ok {
		detail := "not referenced by the descriptor"
		if ref, ok := r.lowerRefs[strings.ToLower(name)]; ok {
			detail += fmt.Sprintf(" (it references %q)", ref)
		}
		r.problem(name, ProblemUnreferenced, detail)
		return nil, nil
	}
	pf := r.files[i]
	if pf.Size >= 0 && hdr.Size != pf.Size {
		r.problem(name, ProblemSizeMismatch, fmt.Sprintf("entry has %d bytes, the descriptor declares %d", hdr.Size, pf.Size))
		return nil, nil
	}
	if limit := r.undeclaredCap(pf); pf.Size < 0 && hdr.Size > limit {
		r.problem(name, ProblemTooLarge, fmt.Sprintf("entry has %d bytes, more than the %d allowed for a file without ovf:size", hdr.Size, limit))
		return nil, nil
	}
	if i < r.lastFileIdx {
		r.warn(name, ProblemOrder, fmt.Sprintf("comes after %q, unlike the References section", r.files[r.lastFileIdx].Name))
	}
	if r.metaAfter {
		r.warn(name, ProblemOrder, "follows the manifest or certificate, which belong right after the descriptor or at the end")
	}
	r.lastFileIdx = max(r.lastFileIdx, i)
	r.filesSeen++
	c := &current{
		entry:     Entry{Name: name, Kind: KindFile, Size: hdr.Size},
		member:    Member{Name: name, Kind: KindFile, Size: hdr.Size, Offset: dataStart},
		r:         r.tr,
		remaining: hdr.Size,
		fileIdx:   i,
	}
	if !r.opts.skipDigests {
		c.dig = ovf.NewDigester(r.algorithms(name)...)
	}
	r.cur = c
	e := c.entry
	return &e, nil
}

func (r *Reader) maxUndeclared() int64 {
	if r.opts.MaxUndeclaredFileBytes > 0 {
		return r.opts.MaxUndeclaredFileBytes
	}
	return DefaultMaxUndeclaredFileBytes
}

// undeclaredCap bounds a file without ovf:size. A disk's file holds at most
// its capacity plus format metadata, so a file backing disks of known
// capacity is capped near the largest of them; anything else gets
// maxUndeclared.
func (r *Reader) undeclaredCap(pf ovf.PackageFile) int64 {
	limit := r.maxUndeclared()
	if c, ok := r.capacity[pf.FileID]; ok {
		limit = min(limit, satAdd(satAdd(c, c/16), 64<<20))
	}
	return limit
}

// algorithms picks the digests to compute for a file: SHA-256 always, plus
// what the manifest lists for it. With no manifest seen yet (it may come at
// the end), every algorithm a manifest may use is computed, in parallel.
func (r *Reader) algorithms(name string) []ovf.Algorithm {
	algs := []ovf.Algorithm{ovf.SHA256}
	switch {
	case r.manifest != nil:
		algs = append(algs, r.manifest.Algorithms(name)...)
	case r.algHint != nil:
		algs = append(algs, r.algHint.Algorithms(name)...)
	default:
		algs = append(algs, ovf.SHA1, ovf.SHA512)
	}
	return algs
}

// readAll reads the current tar entry (known to be at most a few MiB).
func (r *Reader) readAll(name string, size int64) ([]byte, bool, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(r.tr, b); err != nil {
		if e := r.streamFailure(name, err); e != nil {
			return nil, false, e
		}
		r.finish()
		return nil, false, nil
	}
	return b, true, nil
}

func (r *Reader) readDescriptor(hdr *tar.Header, dataStart int64) error {
	name := hdr.Name
	if hdr.Size > ovf.MaxDescriptorSize {
		r.problem(name, ProblemTooLarge, fmt.Sprintf("descriptor of %d bytes (limit %d)", hdr.Size, ovf.MaxDescriptorSize))
		r.noDesc = true
		return nil
	}
	b, ok, err := r.readAll(name, hdr.Size)
	if !ok {
		r.noDesc = true
		return err
	}
	d := ovf.NewDigester(ovf.SHA1, ovf.SHA256, ovf.SHA512)
	d.Write(b)
	r.descName, r.descBytes = name, b
	r.members = append(r.members, Member{Name: name, Kind: KindDescriptor, Size: hdr.Size, Offset: dataStart, Digests: d.Sums()})
	desc, err := ovf.Parse(b)
	if err != nil {
		r.problem(name, ProblemDescriptor, err.Error())
		r.noDesc = true
		return nil
	}
	files, err := desc.PackageFiles()
	if err != nil {
		r.problem(name, ProblemDescriptor, err.Error())
		r.noDesc = true
		return nil
	}
	r.desc, r.files = desc, files
	r.capacity = map[string]int64{}
	for _, k := range desc.Disks() {
		if k.FileRef == "" {
			continue
		}
		if c, seen := r.capacity[k.FileRef]; k.Capacity < 0 || (seen && c < 0) {
			r.capacity[k.FileRef] = -1 // unknown for one disk: no capacity bound
		} else {
			r.capacity[k.FileRef] = max(c, k.Capacity)
		}
	}
	for id, c := range r.capacity {
		if c < 0 {
			delete(r.capacity, id)
		}
	}
	r.mfName, r.certName = ovf.ManifestName(name), ovf.CertificateName(name)
	r.expected = make(map[string]int, len(files))
	r.lowerRefs = make(map[string]string, len(files))
	r.seenFile = make([]bool, len(files))
	for i, pf := range files {
		if strings.EqualFold(pf.Name, name) || pf.Name == r.mfName || pf.Name == r.certName {
			r.problem(name, ProblemDescriptor, fmt.Sprintf("references %q, the name of the descriptor, manifest or certificate", pf.Name))
			r.noDesc = true
			return nil
		}
		r.expected[pf.Name] = i
		r.lowerRefs[strings.ToLower(pf.Name)] = pf.Name
	}
	if r.opts.MaxTotalBytes <= 0 && r.compression != CompressionNone {
		// Everything the descriptor accounts for, with room for headers
		// (PAX ones included), manifest, certificate and tar padding.
		limit := satAdd(r.pos.n, 1<<20+ovf.MaxManifestSize+maxCertSize)
		for _, pf := range files {
			s := pf.Size
			if s < 0 {
				s = r.undeclaredCap(pf)
			}
			limit = satAdd(limit, satAdd(roundUp512(s), 4*512))
		}
		r.pos.limit = limit
	}
	return nil
}

func (r *Reader) readMeta(hdr *tar.Header, kind MemberKind, limit, dataStart int64) (*Entry, error) {
	name := hdr.Name
	if hdr.Size > limit {
		r.problem(name, ProblemTooLarge, fmt.Sprintf("%s of %d bytes (limit %d)", kind, hdr.Size, limit))
		return nil, nil
	}
	b, ok, err := r.readAll(name, hdr.Size)
	if !ok {
		return nil, err
	}
	d := ovf.NewDigester(ovf.SHA1, ovf.SHA256, ovf.SHA512)
	d.Write(b)
	atEnd := r.filesSeen > 0
	if atEnd {
		r.metaAfter = true
	}
	switch kind {
	case KindManifest:
		m, err := ovf.ParseManifest(b)
		if err != nil {
			r.problem(name, ProblemManifest, err.Error())
			r.manifestBad = true
		} else {
			r.manifest, r.manifestAtEnd = m, atEnd
		}
	case KindCertificate:
		r.haveCert = true
		if last := r.members[len(r.members)-1]; last.Kind != KindManifest {
			r.warn(name, ProblemOrder, "the certificate belongs directly after the manifest")
		}
	}
	r.cur = &current{
		entry:     Entry{Name: name, Kind: kind, Size: hdr.Size},
		member:    Member{Name: name, Kind: kind, Size: hdr.Size, Offset: dataStart, Digests: d.Sums()},
		r:         bytes.NewReader(b),
		remaining: hdr.Size,
		fileIdx:   -1,
	}
	e := r.cur.entry
	return &e, nil
}

// finish runs the whole-archive checks once the tar stream has ended.
func (r *Reader) finish() {
	if r.finished {
		return
	}
	r.finished = true
	if !r.fatal {
		// archive/tar accepts an archive that just stops; DSP0243's USTAR
		// ends with two zero blocks, and their absence means truncation at
		// an entry boundary.
		if r.pos.n < satAdd(r.lastEnd, 1024) {
			r.problem("", ProblemTruncated, "archive ends without the end-of-archive marker")
			r.fatal = true
		} else if r.dec != nil {
			// Read the compressed stream to its end so its checksum is
			// verified; a tar end marker does not prove the stream intact.
			if _, err := io.Copy(io.Discard, io.LimitReader(r.dec, 1<<20)); err != nil {
				if e := r.streamFailure("", err); e != nil {
					return
				}
			}
		}
	}
	if r.noDesc {
		return
	}
	if !r.fatal {
		for i, pf := range r.files {
			if !r.seenFile[i] {
				r.problem(pf.Name, ProblemMissing, "referenced by the descriptor but not in the archive")
			}
		}
	}
	if r.manifest == nil {
		// After a broken stream the manifest may well have followed the
		// break: saying it is missing would be a guess.
		if r.opts.RequireManifest && !r.manifestBad && !r.fatal {
			r.problem(r.mfName, ProblemManifest, "no manifest in the archive")
		}
		if r.haveCert && !r.manifestBad && !r.fatal {
			r.warn(r.certName, ProblemOrder, "certificate without a manifest")
		}
		return
	}
	if r.opts.skipDigests || r.fatal {
		return
	}
	byName := map[string]Member{}
	for _, m := range r.members {
		byName[m.Name] = m
	}
	ok := true
	for _, e := range r.manifest.Entries {
		m, present := byName[e.Name]
		switch {
		case !present && (e.Name == r.mfName || e.Name == r.certName):
			r.problem(r.mfName, ProblemManifest, fmt.Sprintf("lists %q, which it cannot cover", e.Name))
			ok = false
		case !present:
			if _, ref := r.expected[e.Name]; !ref {
				r.problem(r.mfName, ProblemManifest, fmt.Sprintf("lists %q, which is not in the package", e.Name))
			}
			ok = false
		case m.Kind == KindManifest || m.Kind == KindCertificate:
			r.problem(r.mfName, ProblemManifest, fmt.Sprintf("lists %q, which it cannot cover", e.Name))
			ok = false
		default:
			got, computed := m.Digests[e.Algorithm]
			if !computed {
				r.problem(e.Name, ProblemDigestMismatch, fmt.Sprintf("%s digest was not computed while streaming", e.Algorithm))
				ok = false
			} else if got != e.Digest {
				r.problem(e.Name, ProblemDigestMismatch, fmt.Sprintf("%s is %s, the manifest says %s", e.Algorithm, got, e.Digest))
				ok = false
			}
		}
	}
	for _, m := range r.members {
		if (m.Kind == KindFile || m.Kind == KindDescriptor) && len(r.manifest.Lookup(m.Name)) == 0 {
			r.warn(m.Name, ProblemManifest, "no digest in the manifest")
		}
	}
	r.verified = ok
}

// prescanManifest looks for a manifest after the files of a plain archive
// by reading only headers (seeking over data), so the main pass knows which
// digests to compute instead of computing all of them. Any trouble here is
// ignored: the main pass finds and reports it.
func prescanManifest(f *os.File, size int64) *ovf.Manifest {
	tr := tar.NewReader(io.NewSectionReader(f, 0, size))
	var mfName string
	for i := 0; i < 1<<16; i++ {
		hdr, err := tr.Next()
		if err != nil {
			return nil
		}
		if i == 0 {
			mfName = ovf.ManifestName(hdr.Name)
			continue
		}
		if hdr.Name == mfName && hdr.Typeflag == tar.TypeReg && hdr.Size <= ovf.MaxManifestSize {
			b, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
			if err != nil {
				return nil
			}
			m, err := ovf.ParseManifest(b)
			if err != nil {
				return nil
			}
			return m
		}
	}
	return nil
}

// posReader tracks the position in the tar stream and enforces the total
// size limit. Over a plain file it also passes Seek through, which
// archive/tar uses to skip data.
type posReader struct {
	r      io.Reader
	seeker io.Seeker
	n      int64
	limit  int64 // 0: none
}

type limitError struct{ limit int64 }

func (e *limitError) Error() string { return fmt.Sprintf("archive exceeds %d bytes", e.limit) }

func (p *posReader) Read(b []byte) (int, error) {
	if p.limit > 0 {
		room := p.limit - p.n
		if room <= 0 {
			// Only a stream with more data is over the limit.
			var one [1]byte
			if n, err := p.r.Read(one[:]); n == 0 && err != nil {
				return 0, err
			}
			return 0, &limitError{p.limit}
		}
		if int64(len(b)) > room {
			b = b[:room]
		}
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

func (p *posReader) Seek(offset int64, whence int) (int64, error) {
	if p.seeker == nil {
		return 0, errors.New("not seekable")
	}
	if p.limit > 0 && whence == io.SeekCurrent && satAdd(p.n, offset) > p.limit {
		return 0, &limitError{p.limit}
	}
	n, err := p.seeker.Seek(offset, whence)
	if err == nil {
		p.n = n
	}
	return n, err
}

// sourceReader marks errors of the underlying file or stream, so they are
// reported as I/O errors rather than as problems of the archive, and stops
// reading when the context ends.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
}

type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

func (s *sourceReader) Read(b []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, &sourceError{err}
	}
	n, err := s.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &sourceError{err}
	}
	return n, err
}
