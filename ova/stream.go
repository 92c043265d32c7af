package ova

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hypersdk/hypersdk/ovf"
	"github.com/hypersdk/hypersdk/progress"
)

// Patchable is a destination that appends bytes and fills regions it
// reserved later: an object-storage upload (providers.SinkWriter), whose
// reserved parts stay in memory until they are filled.
type Patchable interface {
	io.Writer
	// WriteAt overwrites bytes of a region returned by Reserve.
	WriteAt(p []byte, off int64) (int, error)
	// Reserve appends n zero bytes for WriteAt to fill and returns their
	// offset.
	Reserve(n int64) (off int64, err error)
}

// StreamWriter writes an OVA in one pass into a Patchable destination,
// without knowing the size of any file before it has streamed: what
// depends on the sizes is reserved and filled later.
//
//   - The descriptor comes first (DSP0243 5.3) in a region of fixed
//     length, reserved up front from an upper bound of its length (the
//     descriptor built with the largest sizes); Close writes the real
//     descriptor there padded with trailing whitespace, which XML allows
//     after the root element. Its member size, and the manifest's digest
//     of it, are those of the padded bytes.
//   - Each file's tar header is reserved when the file begins and filled
//     when it ends. Its length must not depend on the size, which USTAR
//     cannot promise (its size field holds less than 8 GiB), so every file
//     gets a PAX header whose size record is zero-padded to 19 digits
//     (any int64) — fileHeader asserts the length invariant — followed by
//     the USTAR header (its size field holds the size too when it fits).
//   - The manifest follows the last file, as Writer places a generated
//     manifest: its bytes are known only then, and DSP0243 allows it.
//
// A compressed archive (.ova.gz, .ova.zst) is a sequence of gzip members
// or zstd frames, which gzip -d, zstd -d and every reader of either format
// decode as one stream: each reserved region is a member (frame) of its
// own whose data is stored, not compressed (deflate stored blocks, zstd
// raw blocks), so that its length is known before its bytes; the bytes
// between two such regions form one compressed member (frame).
//
// Members are hashed as they stream. The archive's own SHA-256 is not
// computed (Result.SHA256 is empty): the descriptor and the headers are
// written after the bytes behind them, so a one-pass hash cannot cover
// them; whoever needs it reads the archive back.
//
// A StreamWriter is not safe for concurrent use. After any error it is
// failed: later calls return that error, and what the destination does
// with the partial archive is the caller's.
type StreamWriter struct {
	dst      Patchable
	out      *streamOut     // dst's appended bytes, compressed if so
	comp     io.WriteCloser // the compressed member (frame) being written; nil between
	level    int
	opts     Options
	start    time.Time
	descName string
	expected []ovf.PackageFile
	next     int

	descHeader []byte
	descOff    int64 // where the reserved descriptor bytes start in the tar stream
	descAt     int64 // where their region starts in dst
	descLen    int64 // the descriptor member's size (padded)
	off        int64 // tar bytes so far

	cur     *streamFile
	members []Member
	err     error
	closed  bool
}

// streamFile is the file member being written.
type streamFile struct {
	name      string
	headerAt  int64 // where its header's region starts in dst
	headerLen int
	dataOff   int64
	size      int64
	d         *ovf.Digester
}

// NewStreamWriter starts an OVA in dst. bound is the descriptor as it
// will be with the largest sizes (every ovf:size and capacity it may
// declare at its longest): its length, rounded up to a 512-byte block,
// is the descriptor's reserved length, and its References name the files
// to add, in order. Options.Compression must be none (a compressed
// stream cannot be patched); Options.ModTime is recorded for every member
// (zero: now) and must be the same in every attempt that should produce
// the same bytes. Options.Compression, Level and Concurrency compress the
// archive as Writer does (see StreamWriter for the form).
func NewStreamWriter(dst Patchable, descriptorName string, bound []byte, opts Options) (*StreamWriter, error) {
	opts.Compression = opts.Compression.normalize()
	comp, level, err := newCompressor(io.Discard, opts.Compression, opts.Level, opts.Concurrency)
	if err != nil {
		return nil, err
	}
	if comp != nil {
		comp.Close()
	}
	if err := ovf.CheckPath(descriptorName); err != nil || strings.Contains(descriptorName, "/") ||
		!strings.EqualFold(filepath.Ext(descriptorName), ".ovf") {
		return nil, fmt.Errorf("ova: descriptor name %q must be a plain file name ending in .ovf", descriptorName)
	}
	desc, err := ovf.Parse(bound)
	if err != nil {
		return nil, fmt.Errorf("ova: %s: %w", descriptorName, err)
	}
	expected, err := desc.PackageFiles()
	if err != nil {
		return nil, fmt.Errorf("ova: %s: %w", descriptorName, err)
	}
	for _, pf := range expected {
		if strings.EqualFold(pf.Name, descriptorName) || pf.Name == ovf.ManifestName(descriptorName) || pf.Name == ovf.CertificateName(descriptorName) {
			return nil, fmt.Errorf("ova: %s references %q, a name reserved for the descriptor, manifest or certificate", descriptorName, pf.Name)
		}
	}
	if opts.Manifest == "" {
		opts.Manifest = ovf.SHA256
	}
	if opts.Manifest.HexLen() == 0 {
		return nil, fmt.Errorf("ova: unknown manifest algorithm %q", opts.Manifest)
	}
	w := &StreamWriter{dst: dst, out: &streamOut{w: dst}, level: level, opts: opts, start: time.Now(), descName: descriptorName, expected: expected}
	if w.opts.ModTime.IsZero() {
		w.opts.ModTime = w.start
	}
	w.opts.ModTime = w.opts.ModTime.Truncate(time.Second)
	w.descLen = roundBlock(int64(len(bound)))
	if w.descHeader, err = ustarHeader(descriptorName, w.descLen, w.opts.ModTime); err != nil {
		return nil, fmt.Errorf("ova: %s: %w", descriptorName, err)
	}
	// The descriptor's header is reserved with its bytes: one stored
	// region for both when compressed.
	if err := w.reserve(int64(len(w.descHeader))+w.descLen, &w.descOff, &w.descAt); err != nil {
		return nil, err
	}
	w.descOff += int64(len(w.descHeader))
	return w, nil
}

func roundBlock(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

const blockSize = 512

func (w *StreamWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// write appends tar bytes, through the compressor if any (starting a
// compressed member when none is open).
func (w *StreamWriter) write(p []byte) error {
	var err error
	switch {
	case w.opts.Compression == CompressionNone:
		var n int
		n, err = w.out.Write(p)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
	default:
		if w.comp == nil {
			w.comp, _, err = newCompressor(w.out, w.opts.Compression, w.opts.Level, w.opts.Concurrency)
		}
		if err == nil {
			_, err = w.comp.Write(p)
		}
	}
	if err != nil {
		return w.fail(fmt.Errorf("ova: write: %w", err))
	}
	w.off += int64(len(p))
	return nil
}

// endCompressed ends the compressed member (frame) being written, if any.
func (w *StreamWriter) endCompressed() error {
	if w.comp == nil {
		return nil
	}
	err := w.comp.Close()
	w.comp = nil
	if err != nil {
		return w.fail(fmt.Errorf("ova: finish a %s member: %w", w.opts.Compression, err))
	}
	return nil
}

// reserve appends a region for n tar bytes to fill later (stored in a
// member or frame of its own when compressed), and stores where they
// start in the tar stream (off) and where the region starts in dst (at).
func (w *StreamWriter) reserve(n int64, off, at *int64) error {
	if err := w.endCompressed(); err != nil {
		return err
	}
	size := storedLen(w.opts.Compression, n)
	got, err := w.dst.Reserve(size)
	if err != nil {
		return w.fail(fmt.Errorf("ova: reserve %d bytes: %w", size, err))
	}
	if got != w.out.n {
		return w.fail(fmt.Errorf("ova: the destination reserved at %d, the archive is at %d", got, w.out.n))
	}
	*off, *at = w.off, got
	w.out.n += size
	w.off += n
	return nil
}

// fill writes the tar bytes p into the region reserved at at. The
// compressed member being written, if any, is ended first: its
// compressor writes to dst from goroutines of its own until then.
func (w *StreamWriter) fill(p []byte, at int64) error {
	if err := w.endCompressed(); err != nil {
		return err
	}
	if _, err := w.dst.WriteAt(stored(w.opts.Compression, p), at); err != nil {
		return w.fail(fmt.Errorf("ova: fill %d bytes at %d: %w", len(p), at, err))
	}
	return nil
}

// streamOut counts the bytes appended to dst and, once the writer is
// aborted, drops what a compressor still flushes (from its own
// goroutines), so that an abandoned archive gets no more bytes.
type streamOut struct {
	w       io.Writer
	n       int64
	dropped atomic.Bool
}

func (o *streamOut) Write(p []byte) (int, error) {
	if o.dropped.Load() {
		return 0, errors.New("ova: the archive was aborted")
	}
	n, err := o.w.Write(p)
	o.n += int64(n)
	return n, err
}

// Abort stops the writer after a failure: the compressor's goroutines, if
// any, end without writing to the destination, and later calls fail. The
// destination is the caller's to discard or keep for a resumed attempt.
// It is safe to call at any time, also after Close.
func (w *StreamWriter) Abort() {
	w.fail(errors.New("ova: the archive was aborted"))
	w.out.dropped.Store(true)
	if w.comp != nil {
		w.comp.Close()
		w.comp = nil
	}
}

// Expected returns the names of the files still to add, in order.
func (w *StreamWriter) Expected() []string {
	var out []string
	for _, pf := range w.expected[w.next:] {
		out = append(out, pf.Name)
	}
	return out
}

// Begin starts the next file, which must be the next the descriptor
// references; its bytes go through Write until End.
func (w *StreamWriter) Begin(name string) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case w.closed:
		return w.fail(fmt.Errorf("ova: begin %s: the archive is closed", name))
	case w.cur != nil:
		return w.fail(fmt.Errorf("ova: begin %s: %s has not ended", name, w.cur.name))
	case w.next >= len(w.expected):
		return w.fail(fmt.Errorf("ova: begin %s: the descriptor references no more files", name))
	case name != w.expected[w.next].Name:
		return w.fail(fmt.Errorf("ova: begin %s: out of order: DSP0243 wants the files in References order, next is %q", name, w.expected[w.next].Name))
	}
	hdr, err := fileHeader(name, 0, w.opts.ModTime)
	if err != nil {
		return w.fail(fmt.Errorf("ova: begin %s: %w", name, err))
	}
	f := &streamFile{name: name, headerLen: len(hdr), d: ovf.NewDigester(ovf.SHA256, w.opts.Manifest)}
	var headerOff int64
	if err := w.reserve(int64(len(hdr)), &headerOff, &f.headerAt); err != nil {
		return err
	}
	f.dataOff = w.off
	w.cur = f
	return nil
}

// Write appends bytes of the file begun last.
func (w *StreamWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.cur == nil {
		return 0, w.fail(errors.New("ova: write outside a file (Begin first)"))
	}
	if err := w.write(p); err != nil {
		return 0, err
	}
	n := len(p)
	w.cur.d.Write(p)
	w.cur.size += int64(n)
	if w.opts.Progress != nil && n > 0 {
		w.opts.Progress(progress.Report{Phase: progress.PhasePackaging, Item: w.cur.name, ItemBytes: w.cur.size, BytesDone: w.off})
	}
	return n, nil
}

// End finishes the file begun last: pads it to a block and fills its
// header with its size.
func (w *StreamWriter) End() (Member, error) {
	if w.err != nil {
		return Member{}, w.err
	}
	f := w.cur
	if f == nil {
		return Member{}, w.fail(errors.New("ova: end: no file begun"))
	}
	if pf := w.expected[w.next]; pf.Size >= 0 && pf.Size != f.size && pf.Size != maxDeclaredSize {
		return Member{}, w.fail(fmt.Errorf("ova: end %s: %d bytes, the descriptor declares %d", f.name, f.size, pf.Size))
	}
	if err := w.write(make([]byte, roundBlock(f.size)-f.size)); err != nil {
		return Member{}, err
	}
	hdr, err := fileHeader(f.name, f.size, w.opts.ModTime)
	if err != nil {
		return Member{}, w.fail(fmt.Errorf("ova: end %s: %w", f.name, err))
	}
	if len(hdr) != f.headerLen {
		// fileHeader's invariant: what Begin reserved fits exactly.
		return Member{}, w.fail(fmt.Errorf("ova: end %s: header of %d bytes for %d reserved", f.name, len(hdr), f.headerLen))
	}
	if err := w.fill(hdr, f.headerAt); err != nil {
		return Member{}, err
	}
	m := Member{Name: f.name, Kind: KindFile, Size: f.size, Offset: f.dataOff, Digests: f.d.Sums()}
	w.members = append(w.members, m)
	w.cur = nil
	w.next++
	if w.opts.Progress != nil {
		w.opts.Progress(progress.Report{Phase: progress.PhasePackaging, Item: f.name, ItemBytes: f.size, ItemSize: f.size, BytesDone: w.off, Final: true})
	}
	return m, nil
}

// maxDeclaredSize is the ovf:size a bound descriptor declares for a file
// whose size is not known yet (see MaxSize).
const maxDeclaredSize = MaxSize

// MaxSize is the size to declare for every file (and disk capacity not
// known) in the bound descriptor of NewStreamWriter: the longest decimal
// number an int64 holds.
const MaxSize int64 = 1<<63 - 1

// Close fills the descriptor's region with descriptor padded with
// whitespace, appends a generated manifest (unless Options.NoManifest)
// and the end-of-archive blocks. descriptor must reference the files
// added, in the same order, declaring their sizes; it must not be longer
// than the bound given to NewStreamWriter. The destination is not
// committed: that is the caller's.
func (w *StreamWriter) Close(descriptor []byte) (*Result, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.closed {
		return nil, errors.New("ova: stream writer already closed")
	}
	if w.cur != nil {
		return nil, w.fail(fmt.Errorf("ova: close: %s has not ended", w.cur.name))
	}
	if w.next < len(w.expected) {
		return nil, w.fail(fmt.Errorf("ova: close: referenced files not added: %s", strings.Join(w.Expected(), ", ")))
	}
	if int64(len(descriptor)) > w.descLen {
		return nil, w.fail(fmt.Errorf("ova: close: the descriptor has %d bytes, %d were reserved from its bound", len(descriptor), w.descLen))
	}
	desc, err := ovf.Parse(descriptor)
	if err != nil {
		return nil, w.fail(fmt.Errorf("ova: close: %s: %w", w.descName, err))
	}
	files, err := desc.PackageFiles()
	if err != nil {
		return nil, w.fail(fmt.Errorf("ova: close: %s: %w", w.descName, err))
	}
	if len(files) != len(w.members) {
		return nil, w.fail(fmt.Errorf("ova: close: %s references %d files, %d were added", w.descName, len(files), len(w.members)))
	}
	for i, pf := range files {
		m := w.members[i]
		if pf.Name != m.Name || (pf.Size != m.Size && !(pf.Size < 0 && m.Size == 0)) {
			return nil, w.fail(fmt.Errorf("ova: close: %s references %s of %d bytes where the archive holds %s of %d", w.descName, pf.Name, pf.Size, m.Name, m.Size))
		}
	}
	padded := make([]byte, w.descLen)
	copy(padded, descriptor)
	for i := len(descriptor); i < len(padded); i++ {
		padded[i] = ' '
	}
	if len(descriptor) < len(padded) {
		padded[len(padded)-1] = '\n'
	}
	if err := w.fill(append(slices.Clone(w.descHeader), padded...), w.descAt); err != nil {
		return nil, err
	}
	d := ovf.NewDigester(ovf.SHA1, ovf.SHA256, ovf.SHA512)
	d.Write(padded)
	descMember := Member{Name: w.descName, Kind: KindDescriptor, Size: w.descLen, Offset: w.descOff, Digests: d.Sums()}
	w.members = append([]Member{descMember}, w.members...)

	res := &Result{Members: w.members}
	if !w.opts.NoManifest {
		mf := &ovf.Manifest{}
		for _, m := range w.members {
			if err := mf.Add(w.opts.Manifest, m.Name, m.Digests[w.opts.Manifest]); err != nil {
				return nil, w.fail(err)
			}
		}
		name := ovf.ManifestName(w.descName)
		data := mf.Marshal()
		hdr, err := ustarHeader(name, int64(len(data)), w.opts.ModTime)
		if err != nil {
			return nil, w.fail(fmt.Errorf("ova: %s: %w", name, err))
		}
		if err := w.write(hdr); err != nil {
			return nil, err
		}
		md := ovf.NewDigester(ovf.SHA1, ovf.SHA256, ovf.SHA512)
		md.Write(data)
		res.Members = append(res.Members, Member{Name: name, Kind: KindManifest, Size: int64(len(data)), Offset: w.off, Digests: md.Sums()})
		if err := w.write(append(data, make([]byte, roundBlock(int64(len(data)))-int64(len(data)))...)); err != nil {
			return nil, err
		}
		res.Manifest, res.ManifestAtEnd = mf, true
	}
	// The end of the archive: two zero blocks, as archive/tar writes.
	if err := w.write(make([]byte, 2*blockSize)); err != nil {
		return nil, err
	}
	if err := w.endCompressed(); err != nil {
		return nil, err
	}
	w.closed = true
	res.Compression, res.Level = w.opts.Compression, w.level
	res.Size, res.TarSize = w.out.n, w.off
	res.Ratio = float64(res.TarSize) / float64(res.Size)
	res.Duration = time.Since(w.start)
	if s := res.Duration.Seconds(); s > 0 {
		res.Throughput = float64(w.off) / s
	}
	return res, nil
}

// storedLen is the length of the region holding n tar bytes: n itself
// in a plain archive; a gzip member of deflate stored blocks, or a zstd
// frame of raw blocks, when compressed.
func storedLen(c Compression, n int64) int64 {
	switch c {
	case CompressionGzip:
		blocks := max(1, (n+maxStored-1)/maxStored)
		return 10 + 5*blocks + n + 8
	case CompressionZstd:
		blocks := max(1, (n+maxRaw-1)/maxRaw)
		return 4 + 1 + 4 + 3*blocks + n
	}
	return n
}

const (
	maxStored = 65535     // bytes of one deflate stored block
	maxRaw    = 128 << 10 // bytes of one zstd block
)

// stored returns p as the region storedLen describes: as it is, or a
// gzip member (RFC 1952) of deflate stored blocks (RFC 1951 3.2.4), or a
// zstd frame (RFC 8878) declaring its content size, of raw blocks.
func stored(c Compression, p []byte) []byte {
	out := make([]byte, 0, storedLen(c, int64(len(p))))
	switch c {
	case CompressionGzip:
		// No name, no time, OS unknown: the same bytes in every attempt.
		out = append(out, 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255)
		rest := p
		for {
			k := min(len(rest), maxStored)
			final := byte(0)
			if k == len(rest) {
				final = 1
			}
			out = append(out, final, byte(k), byte(k>>8), ^byte(k), ^byte(k>>8))
			out = append(out, rest[:k]...)
			rest = rest[k:]
			if final == 1 {
				break
			}
		}
		out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(p))
		return binary.LittleEndian.AppendUint32(out, uint32(len(p)))
	case CompressionZstd:
		// Frame header descriptor 0xA0: a 4-byte content size, single
		// segment (no window descriptor), no checksum, no dictionary.
		out = append(out, 0x28, 0xb5, 0x2f, 0xfd, 0xa0)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p)))
		rest := p
		for {
			k := min(len(rest), maxRaw)
			last := uint32(0)
			if k == len(rest) {
				last = 1
			}
			h := last | uint32(k)<<3 // block type 0: raw
			out = append(out, byte(h), byte(h>>8), byte(h>>16))
			out = append(out, rest[:k]...)
			rest = rest[k:]
			if last == 1 {
				break
			}
		}
		return out
	}
	return append(out, p...)
}

// ustarHeader is the header archive/tar writes for a regular member of
// size bytes (USTAR, PAX only for a name USTAR cannot hold).
func ustarHeader(name string, size int64, mod time.Time) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: mod}); err != nil {
		return nil, err
	}
	// The header only: tw is dropped, not closed (no end blocks).
	return b.Bytes(), nil
}

// sizeDigits is the width of the size record of fileHeader: the digits
// of the largest int64.
const sizeDigits = 19

// fileHeader returns the tar header of a file member of size bytes: a
// PAX extended header holding the size zero-padded to sizeDigits (and the
// path when USTAR cannot hold the name), then the USTAR header. Its length
// depends on the name only, never on the size — the invariant that lets
// the header be reserved before the size is known.
func fileHeader(name string, size int64, mod time.Time) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	var recs []byte
	ustarName := name
	if !fitsUSTAR(name) {
		recs = append(recs, paxRecord("path", name)...)
		ustarName = asciiPrefix(name, 100)
	}
	recs = append(recs, paxRecord("size", fmt.Sprintf("%0*d", sizeDigits, size))...)

	out := make([]byte, 0, 2*blockSize+roundBlock(int64(len(recs))))
	out = append(out, ustarBlock(asciiPrefix("PaxHeaders.0/"+ustarName, 100), int64(len(recs)), mod, tar.TypeXHeader)...)
	out = append(out, recs...)
	out = append(out, make([]byte, roundBlock(int64(len(recs)))-int64(len(recs)))...)
	ustarSize := size
	if size >= 1<<33 {
		ustarSize = 0 // beyond USTAR's 11 octal digits: the PAX record holds it
	}
	out = append(out, ustarBlock(ustarName, ustarSize, mod, tar.TypeReg)...)
	return out, nil
}

// fitsUSTAR reports whether name fits the USTAR name field as it is.
func fitsUSTAR(name string) bool {
	if len(name) > 100 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 || name[i] >= 0x80 {
			return false
		}
	}
	return true
}

// asciiPrefix is name with non-ASCII bytes replaced by '_', cut to n bytes.
func asciiPrefix(name string, n int) string {
	b := []byte(name)
	for i, c := range b {
		if c == 0 || c >= 0x80 {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), n)])
}

// paxRecord formats one PAX record: "<length> <key>=<value>\n", where
// length counts the whole record, its own digits included.
func paxRecord(key, value string) string {
	body := " " + key + "=" + value + "\n"
	n := len(body) + 1
	for n != len(strconv.Itoa(n))+len(body) {
		n = len(strconv.Itoa(n)) + len(body)
	}
	return strconv.Itoa(n) + body
}

// ustarBlock is one USTAR header block (POSIX.1-1988 ustar: octal
// fields, each ending in NUL, and the header checksum).
func ustarBlock(name string, size int64, mod time.Time, typ byte) []byte {
	b := make([]byte, blockSize)
	copy(b[0:100], name)
	octal(b[100:108], 0o644)
	octal(b[108:116], 0)
	octal(b[116:124], 0)
	octal(b[124:136], size)
	octal(b[136:148], mod.Unix())
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	octal(b[329:337], 0)
	octal(b[337:345], 0)
	copy(b[148:156], "        ") // the checksum counts its own field as spaces
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// octal writes v as zero-padded octal filling field but its last byte,
// which is NUL.
func octal(field []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	w := len(field) - 1
	copy(field, strings.Repeat("0", max(0, w-len(s)))+s)
	field[w] = 0
}
