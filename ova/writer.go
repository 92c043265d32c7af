package ova

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/ovf"
	"github.com/hypersdk/hypersdk/progress"
)

// Options controls writing an OVA.
type Options struct {
	// Compression of the whole archive; the zero value writes a plain .ova.
	Compression Compression
	// Level is the compression level, 1-9 for gzip (1-22 for zstd); 0
	// picks the codec default (gzip 6, zstd 3). Gzip levels are on gzip's
	// scale: level N gives about the size `gzip -N` does (the parallel
	// compressor's own levels compress less at the same number and are
	// mapped accordingly); levels 1-3 are the fast ones.
	Level int
	// Concurrency is the number of compressor goroutines; 0 means
	// GOMAXPROCS.
	Concurrency int
	// ModTime is the modification time recorded for every member. Zero
	// means the time the Writer is created (Pack: the descriptor file's
	// modification time, so packing the same folder twice gives the same
	// bytes).
	ModTime time.Time
	// Manifest is the algorithm of the manifest the Writer generates when
	// none is added; "" means SHA256.
	Manifest ovf.Algorithm
	// NoManifest disables generating a manifest.
	NoManifest bool
	// FileMode is the permission of the archive file (CreateIn, Pack); 0
	// means 0644.
	FileMode fs.FileMode
	// CleanupOVF (Pack only) removes each file of the OVF folder as soon as
	// it is in the archive, and the descriptor, manifest and certificate
	// once the archive is committed. Peak disk use stays near one copy of
	// the VM, but if packing fails midway the removed files are gone and
	// the export must be run again.
	CleanupOVF bool
	// Progress, if set, is called as bytes go into the archive, from the
	// goroutine calling Add, with phase packaging: Item is the member,
	// ItemBytes and ItemSize its bytes so far and its size (Final on its
	// last bytes), BytesDone the uncompressed archive bytes written so far
	// (headers included) and BytesTotal 0, as the writer does not know what
	// is still to come.
	Progress progress.Func
}

// MemberKind classifies an archive member.
type MemberKind string

// Member kinds.
const (
	KindDescriptor  MemberKind = "descriptor"
	KindManifest    MemberKind = "manifest"
	KindCertificate MemberKind = "certificate"
	KindFile        MemberKind = "file"
)

// Member describes one file in an OVA.
type Member struct {
	Name string
	Kind MemberKind
	Size int64
	// Offset is where the member's data starts in the uncompressed tar
	// stream (a plain .ova can be read from there directly).
	Offset int64
	// Digests of the member's bytes, lowercase hex, computed while the
	// bytes streamed. Empty when not computed (Inspect).
	Digests map[ovf.Algorithm]string
}

// Result describes a finished archive.
type Result struct {
	// Path is the archive's final path.
	Path string
	// Size is the size of the archive as written (compressed, if so).
	Size int64
	// SHA256 is the hex SHA-256 of the archive as written.
	SHA256 string
	// TarSize is the size of the uncompressed tar stream.
	TarSize     int64
	Compression Compression
	Level       int
	// Ratio is TarSize/Size: 1 for a plain archive, 2.5 when compression
	// shrank it to 40%.
	Ratio    float64
	Duration time.Duration
	// Throughput is TarSize bytes per second of Duration.
	Throughput float64
	Members    []Member
	// Manifest is the manifest in the archive (added or generated), nil if
	// none.
	Manifest *ovf.Manifest
	// ManifestAtEnd is true when the manifest follows the files (generated
	// manifests are, as DSP0243 allows) rather than the descriptor.
	ManifestAtEnd bool
}

type writerState int

const (
	stateHead  writerState = iota // after the descriptor: manifest, certificate or first file
	stateFiles                    // some files written
	stateTail                     // all files written: manifest and certificate may follow
	stateDone
)

// Writer streams an OVA: a tar archive whose first member is the OVF
// descriptor, then the manifest and certificate if added at once, then the
// referenced files in References order (DSP0243 5.3), then a manifest and
// certificate if they were not placed after the descriptor.
//
// The Writer enforces that order: Add accepts only the next file the
// descriptor expects, with the size it declares. Each member is hashed as
// it streams; a manifest added before the files is checked against those
// digests, and when no manifest is added one is generated at the end.
//
// A Writer is not safe for concurrent use. After any error the Writer is
// failed: later calls return that error, and Close (or Abort) removes the
// temporary file.
type Writer struct {
	opts     Options
	start    time.Time
	modTime  time.Time
	descName string
	expected []ovf.PackageFile
	next     int
	state    writerState

	sink  *sink
	comp  io.WriteCloser
	count *countingWriter
	tw    *tar.Writer
	level int
	buf   []byte

	manifest       *ovf.Manifest
	manifestAtEnd  bool
	manifestClosed bool // no certificate may follow any more
	haveCert       bool
	members        []Member

	file    *os.File // the temporary file; nil once renamed or removed
	dir     *os.Root // the directory the archive is created in
	tmpName string   // in dir
	name    string   // in dir
	path    string   // for the Result

	err error
}

// CreateIn starts an OVA named name in dir with the given descriptor,
// written as is (its bytes are what the manifest covers). descriptorName is
// the descriptor's file name in the archive ("vm.ovf"); the descriptor must
// describe a self-contained package (ovf.Descriptor.ValidatePackage). The
// archive is written to a temporary file in dir and renamed to name only by
// a successful Close, after it has been synced; a failed or aborted archive
// leaves nothing under name. Both names are created and renamed inside dir
// without following links, so a link planted there cannot redirect the
// archive (internal/safepath). dir stays the caller's to close, after the
// writer is done.
func CreateIn(dir *os.Root, name, descriptorName string, descriptor []byte, opts Options) (*Writer, error) {
	path := filepath.Join(dir.Name(), name)
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return nil, fmt.Errorf("ova: create %s: %q is not a plain file name", path, name)
	}
	var f *os.File
	var tmp string
	var err error
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		tmp = "." + name + "." + hex.EncodeToString(b[:]) + ".partial"
		// O_EXCL: a name that exists (a planted link included) is never opened.
		f, err = safepath.OpenFile(dir, tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ova: create %s: %w", path, err)
	}
	mode := opts.FileMode
	if mode == 0 {
		mode = 0o644
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		dir.Remove(tmp)
		return nil, fmt.Errorf("ova: create %s: %w", path, err)
	}
	w := &Writer{opts: opts, start: time.Now(), descName: descriptorName, file: f, dir: dir,
		tmpName: tmp, name: name, path: path}
	if err := w.init(f, descriptor); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// NewWriter starts an OVA written to dst, as CreateIn does to a file.
// Close flushes every byte to dst; dst is the caller's to finish or
// discard.
func NewWriter(dst io.Writer, descriptorName string, descriptor []byte, opts Options) (*Writer, error) {
	w := &Writer{opts: opts, start: time.Now(), descName: descriptorName}
	if err := w.init(dst, descriptor); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

func (w *Writer) init(dst io.Writer, descriptor []byte) error {
	if err := ovf.CheckPath(w.descName); err != nil || strings.Contains(w.descName, "/") ||
		!strings.EqualFold(filepath.Ext(w.descName), ".ovf") {
		return fmt.Errorf("ova: descriptor name %q must be a plain file name ending in .ovf", w.descName)
	}
	desc, err := ovf.Parse(descriptor)
	if err != nil {
		return fmt.Errorf("ova: %s: %w", w.descName, err)
	}
	expected, err := desc.PackageFiles()
	if err != nil {
		return fmt.Errorf("ova: %s: %w", w.descName, err)
	}
	for _, pf := range expected {
		if strings.EqualFold(pf.Name, w.descName) || pf.Name == ovf.ManifestName(w.descName) || pf.Name == ovf.CertificateName(w.descName) {
			return fmt.Errorf("ova: %s references %q, a name reserved for the descriptor, manifest or certificate", w.descName, pf.Name)
		}
	}
	if w.opts.Manifest == "" {
		w.opts.Manifest = ovf.SHA256
	}
	if w.opts.Manifest.HexLen() == 0 {
		return fmt.Errorf("ova: unknown manifest algorithm %q", w.opts.Manifest)
	}
	w.expected = expected
	w.modTime = w.opts.ModTime
	if w.modTime.IsZero() {
		w.modTime = w.start
	}
	// USTAR stores whole seconds; a fractional time would force PAX headers.
	w.modTime = w.modTime.Truncate(time.Second)

	w.sink = newSink(dst)
	var under io.Writer = w.sink
	comp, level, err := newCompressor(w.sink, w.opts.Compression, w.opts.Level, w.opts.Concurrency)
	if err != nil {
		return err
	}
	if comp != nil {
		w.comp, under = comp, comp
	}
	w.level = level
	w.count = &countingWriter{w: under}
	w.tw = tar.NewWriter(w.count)
	w.buf = make([]byte, 1<<20)
	_, err = w.addBytes(w.descName, KindDescriptor, descriptor)
	return err
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// algorithms returns the digests to compute for a member: SHA-256 always
// (for the Result), the generated manifest's algorithm, and whatever an
// added manifest lists for the member.
func (w *Writer) algorithms(name string) []ovf.Algorithm {
	algs := []ovf.Algorithm{ovf.SHA256, w.opts.Manifest}
	if w.manifest != nil {
		algs = append(algs, w.manifest.Algorithms(name)...)
	}
	return algs
}

func (w *Writer) writeHeader(name string, size int64) (int64, error) {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  w.modTime,
		// Format left unset: archive/tar picks USTAR and falls back to PAX
		// only for what USTAR cannot hold (sizes of 8 GiB and more, long
		// or non-ASCII names).
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return 0, err
	}
	return w.count.n, nil
}

// addBytes writes a small in-memory member (descriptor, manifest,
// certificate).
func (w *Writer) addBytes(name string, kind MemberKind, data []byte) (Member, error) {
	off, err := w.writeHeader(name, int64(len(data)))
	if err != nil {
		return Member{}, w.fail(fmt.Errorf("ova: %s: %w", name, err))
	}
	d := ovf.NewDigester(ovf.SHA1, ovf.SHA256, ovf.SHA512) // tiny: all of them
	d.Write(data)
	if _, err := w.tw.Write(data); err != nil {
		return Member{}, w.fail(fmt.Errorf("ova: %s: %w", name, err))
	}
	m := Member{Name: name, Kind: kind, Size: int64(len(data)), Offset: off, Digests: d.Sums()}
	w.members = append(w.members, m)
	return m, nil
}

// Add writes the next referenced file: name must be the next one the
// descriptor expects (see Expected) and size its exact length, which must
// match ovf:size when the descriptor declares it. Exactly size bytes are
// read from r; r ending early or having more is an error. The member is
// hashed as it streams; if a manifest was added before the files, the
// digests must match it.
func (w *Writer) Add(ctx context.Context, name string, size int64, r io.Reader) error {
	if w.err != nil {
		return w.err
	}
	if w.state == stateTail || w.state == stateDone || w.next >= len(w.expected) {
		return w.fail(fmt.Errorf("ova: add %s: the descriptor references no more files", name))
	}
	pf := w.expected[w.next]
	if name != pf.Name {
		return w.fail(fmt.Errorf("ova: add %s: out of order: DSP0243 wants the files in References order, next is %q", name, pf.Name))
	}
	if size < 0 || (pf.Size >= 0 && size != pf.Size) {
		return w.fail(fmt.Errorf("ova: add %s: size %d, but the descriptor declares %d", name, size, pf.Size))
	}
	off, err := w.writeHeader(name, size)
	if err != nil {
		return w.fail(fmt.Errorf("ova: add %s: %w", name, err))
	}
	d := ovf.NewDigester(w.algorithms(name)...)
	var done int64
	for done < size {
		if err := ctx.Err(); err != nil {
			return w.fail(fmt.Errorf("ova: add %s: %w", name, err))
		}
		chunk := w.buf[:min(int64(len(w.buf)), size-done)]
		n, rerr := io.ReadFull(r, chunk)
		if n > 0 {
			d.Write(chunk[:n])
			if _, err := w.tw.Write(chunk[:n]); err != nil {
				return w.fail(fmt.Errorf("ova: add %s: %w", name, err))
			}
			done += int64(n)
			if w.opts.Progress != nil {
				w.opts.Progress(progress.Report{Phase: progress.PhasePackaging, Item: name, ItemBytes: done, ItemSize: size,
					BytesDone: w.count.n, Final: done == size})
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			if done < size {
				return w.fail(fmt.Errorf("ova: add %s: source ended after %d of %d bytes", name, done, size))
			}
		} else if rerr != nil {
			return w.fail(fmt.Errorf("ova: add %s: read: %w", name, rerr))
		}
	}
	// A source longer than declared means the size we recorded is wrong.
	var probe [1]byte
	if n, _ := r.Read(probe[:]); n > 0 {
		return w.fail(fmt.Errorf("ova: add %s: source is longer than the %d bytes declared", name, size))
	}
	m := Member{Name: name, Kind: KindFile, Size: size, Offset: off, Digests: d.Sums()}
	if w.manifest != nil {
		for _, e := range w.manifest.Lookup(name) {
			if got := m.Digests[e.Algorithm]; got != e.Digest {
				return w.fail(fmt.Errorf("ova: add %s: %s %s does not match the manifest's %s", name, e.Algorithm, got, e.Digest))
			}
		}
	}
	w.members = append(w.members, m)
	w.next++
	w.state = stateFiles
	if w.next == len(w.expected) {
		w.state = stateTail
	}
	return nil
}

// AddManifest writes the manifest. Added right after the descriptor (before
// any file), its digests are checked against each file as it streams;
// added after the last file, it is checked against the digests computed
// then, which must include every algorithm it uses (SHA-256 and
// Options.Manifest are always computed). Every name it lists must be the
// descriptor or a referenced file.
func (w *Writer) AddManifest(m *ovf.Manifest) error {
	if w.err != nil {
		return w.err
	}
	name := ovf.ManifestName(w.descName)
	if w.manifest != nil {
		return w.fail(fmt.Errorf("ova: %s added twice", name))
	}
	if w.state == stateFiles || w.state == stateDone {
		return w.fail(fmt.Errorf("ova: %s must come right after the descriptor or after the last file (DSP0243 5.3)", name))
	}
	atEnd := w.state == stateTail && w.next > 0
	for _, e := range m.Entries {
		if e.Name == w.descName {
			if got := w.members[0].Digests[e.Algorithm]; got != e.Digest {
				return w.fail(fmt.Errorf("ova: %s: %s(%s) does not match the descriptor being written", name, e.Algorithm, e.Name))
			}
			continue
		}
		idx := slices.IndexFunc(w.expected, func(pf ovf.PackageFile) bool { return pf.Name == e.Name })
		if idx < 0 {
			return w.fail(fmt.Errorf("ova: %s lists %q, which the descriptor does not reference", name, e.Name))
		}
		if atEnd {
			mem := w.members[slices.IndexFunc(w.members, func(x Member) bool { return x.Name == e.Name })]
			got, ok := mem.Digests[e.Algorithm]
			if !ok {
				return w.fail(fmt.Errorf("ova: %s: %s digests were not computed while streaming; add the manifest before the files", name, e.Algorithm))
			}
			if got != e.Digest {
				return w.fail(fmt.Errorf("ova: %s: %s(%s) is %s, the file streamed has %s", name, e.Algorithm, e.Name, e.Digest, got))
			}
		}
	}
	if _, err := w.addBytes(name, KindManifest, m.Marshal()); err != nil {
		return err
	}
	w.manifest, w.manifestAtEnd = m, atEnd
	return nil
}

// AddCertificate writes the certificate (.cert: the signature of the
// manifest and the signer's X.509 certificate). It must directly follow
// the manifest.
func (w *Writer) AddCertificate(data []byte) error {
	if w.err != nil {
		return w.err
	}
	name := ovf.CertificateName(w.descName)
	last := w.members[len(w.members)-1]
	if w.haveCert || last.Kind != KindManifest {
		return w.fail(fmt.Errorf("ova: %s must directly follow the manifest (DSP0243 5.3)", name))
	}
	if _, err := w.addBytes(name, KindCertificate, data); err != nil {
		return err
	}
	w.haveCert = true
	return nil
}

// Close writes a generated manifest if none was added (unless
// Options.NoManifest), finishes the tar stream, the compressor and the
// file, checking every close error, then syncs and renames the archive
// into place. Any failure removes the temporary file and returns the
// error: a truncated archive is never reported as success.
func (w *Writer) Close() (*Result, error) {
	if w.state == stateDone && w.err == nil {
		return nil, errors.New("ova: writer already closed")
	}
	if w.err == nil && w.next < len(w.expected) {
		var missing []string
		for _, pf := range w.expected[w.next:] {
			missing = append(missing, pf.Name)
		}
		w.fail(fmt.Errorf("ova: close: referenced files not added: %s", strings.Join(missing, ", ")))
	}
	if w.err == nil && w.manifest == nil && !w.opts.NoManifest {
		m := &ovf.Manifest{}
		for _, mem := range w.members {
			if err := m.Add(w.opts.Manifest, mem.Name, mem.Digests[w.opts.Manifest]); err != nil {
				w.fail(err)
				break
			}
		}
		if w.err == nil {
			w.AddManifest(m)
		}
	}
	if w.err != nil {
		w.Abort()
		return nil, w.err
	}
	w.state = stateDone
	// Close every layer top-down; each can fail with data still buffered.
	if err := w.tw.Close(); err != nil {
		w.fail(fmt.Errorf("ova: finish tar: %w", err))
	}
	if w.comp != nil && w.err == nil {
		if err := w.comp.Close(); err != nil {
			w.fail(fmt.Errorf("ova: finish %s stream: %w", w.opts.Compression, err))
		}
	}
	if err := w.sink.Close(); err != nil {
		w.fail(fmt.Errorf("ova: write: %w", err))
	}
	if w.err == nil && w.file != nil {
		if err := w.file.Sync(); err != nil {
			w.fail(fmt.Errorf("ova: sync %s: %w", w.tmpName, err))
		} else if err := w.file.Close(); err != nil {
			w.fail(fmt.Errorf("ova: close %s: %w", w.tmpName, err))
		} else if err := w.dir.Rename(w.tmpName, w.name); err != nil {
			w.fail(fmt.Errorf("ova: rename into place: %w", err))
		} else {
			w.file = nil
			syncDir(w.dir)
		}
	}
	if w.err != nil {
		w.Abort()
		return nil, w.err
	}
	elapsed := time.Since(w.start)
	res := &Result{
		Path: w.path, Size: w.sink.n, SHA256: w.sink.sum(), TarSize: w.count.n,
		Compression: w.opts.Compression.normalize(), Level: w.level,
		Duration: elapsed, Members: w.members, Manifest: w.manifest, ManifestAtEnd: w.manifestAtEnd,
	}
	if res.Size > 0 {
		res.Ratio = float64(res.TarSize) / float64(res.Size)
	}
	if elapsed > 0 {
		res.Throughput = float64(res.TarSize) / elapsed.Seconds()
	}
	return res, nil
}

// syncDir makes a rename durable. Errors are ignored: some file systems
// cannot sync directories, and the archive itself is already synced.
func syncDir(dir *os.Root) {
	if d, err := dir.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
}

// Abort stops writing and removes the temporary file. It is safe to
// call at any time, including after Close (then it does nothing), so
// `defer w.Abort()` is the idiom.
func (w *Writer) Abort() {
	if w.state == stateDone && w.file == nil {
		return
	}
	if w.err == nil {
		w.err = errors.New("ova: writer aborted")
	}
	w.state = stateDone
	w.abortPipeline()
	if w.file != nil {
		w.file.Close()
		w.dir.Remove(w.tmpName)
		w.file = nil
	}
}

// abortPipeline stops the compressor's and the sink's goroutines.
func (w *Writer) abortPipeline() {
	if w.comp != nil {
		w.comp.Close()
		w.comp = nil
	}
	if w.sink != nil {
		w.sink.Close()
	}
}
