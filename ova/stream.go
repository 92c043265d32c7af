package ova

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
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

// StreamWriter writes a plain (uncompressed) OVA in one pass into a
// Patchable destination, without knowing the size of any file before it
// has streamed: what depends on the sizes is reserved and filled later.
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
	opts     Options
	start    time.Time
	descName string
	expected []ovf.PackageFile
	next     int

	descHeader []byte
	descOff    int64 // where the reserved descriptor bytes start
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
	headerOff int64
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
// the same bytes.
func NewStreamWriter(dst Patchable, descriptorName string, bound []byte, opts Options) (*StreamWriter, error) {
	if opts.Compression.normalize() != CompressionNone {
		return nil, fmt.Errorf("ova: a streamed archive cannot be %s-compressed (its headers are filled after their members)", opts.Compression)
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
	w := &StreamWriter{dst: dst, opts: opts, start: time.Now(), descName: descriptorName, expected: expected}
	if w.opts.ModTime.IsZero() {
		w.opts.ModTime = w.start
	}
	w.opts.ModTime = w.opts.ModTime.Truncate(time.Second)
	w.descLen = roundBlock(int64(len(bound)))
	if w.descHeader, err = ustarHeader(descriptorName, w.descLen, w.opts.ModTime); err != nil {
		return nil, fmt.Errorf("ova: %s: %w", descriptorName, err)
	}
	if err := w.write(w.descHeader); err != nil {
		return nil, err
	}
	if err := w.reserve(w.descLen, &w.descOff); err != nil {
		return nil, err
	}
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

func (w *StreamWriter) write(p []byte) error {
	n, err := w.dst.Write(p)
	w.off += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return w.fail(fmt.Errorf("ova: write: %w", err))
	}
	return nil
}

// reserve appends n bytes to fill later and stores their offset in off.
func (w *StreamWriter) reserve(n int64, off *int64) error {
	got, err := w.dst.Reserve(n)
	if err != nil {
		return w.fail(fmt.Errorf("ova: reserve %d bytes: %w", n, err))
	}
	if got != w.off {
		return w.fail(fmt.Errorf("ova: the destination reserved at %d, the archive is at %d", got, w.off))
	}
	*off = got
	w.off += n
	return nil
}

func (w *StreamWriter) writeAt(p []byte, off int64) error {
	if _, err := w.dst.WriteAt(p, off); err != nil {
		return w.fail(fmt.Errorf("ova: fill %d bytes at %d: %w", len(p), off, err))
	}
	return nil
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
	if err := w.reserve(int64(len(hdr)), &f.headerOff); err != nil {
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
	before := w.off
	err := w.write(p)
	n := int(w.off - before)
	w.cur.d.Write(p[:n])
	w.cur.size += int64(n)
	if w.opts.Progress != nil && n > 0 {
		w.opts.Progress(progress.Report{Phase: progress.PhasePackaging, Item: w.cur.name, ItemBytes: w.cur.size, BytesDone: w.off})
	}
	return n, err
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
	if err := w.writeAt(hdr, f.headerOff); err != nil {
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
	if err := w.writeAt(padded, w.descOff); err != nil {
		return nil, err
	}
	d := ovf.NewDigester(ovf.SHA1, ovf.SHA256, ovf.SHA512)
	d.Write(padded)
	descMember := Member{Name: w.descName, Kind: KindDescriptor, Size: w.descLen, Offset: w.descOff, Digests: d.Sums()}
	w.members = append([]Member{descMember}, w.members...)

	res := &Result{Compression: CompressionNone, Members: w.members}
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
	w.closed = true
	res.Size, res.TarSize, res.Ratio = w.off, w.off, 1
	res.Duration = time.Since(w.start)
	if s := res.Duration.Seconds(); s > 0 {
		res.Throughput = float64(w.off) / s
	}
	return res, nil
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
