package pipeline

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/formats"
	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/vmdk"
)

// blockSize is the unit of sparse writing and of copies: small enough to
// stay in cache between the read, the zero check, the hash and the write.
const blockSize = 64 << 10

// convert decodes item it's source bytes from src and writes them in the
// requested disk format. Each source is both a disk.Source (its data
// extents: a VMDK stream's grains, holes skipped) for the image writers and
// the whole virtual disk as bytes for the raw and VMDK writers, which find
// the zeros themselves; only one of the two is read.
func (r *run) convert(ctx context.Context, it *item, in io.Reader) error {
	d := it.disk
	in = &stickyReader{r: in}
	var data io.Reader
	var src disk.Source
	switch d.Format {
	case providers.SourceVMDKStream:
		s, err := vmdk.NewStreamReader(in, d.Name)
		if err != nil {
			return fmt.Errorf("disk %s: %w", d.Name, err)
		}
		if d.Capacity > 0 && s.Size() != d.Capacity {
			return fmt.Errorf("disk %s: the VMDK holds %d bytes, the platform says %d", d.Name, s.Size(), d.Capacity)
		}
		data, src = s.Raw(), s
	case providers.SourceRaw:
		if d.Capacity <= 0 {
			return fmt.Errorf("disk %s: a raw source needs its capacity", d.Name)
		}
		data = &exactReader{r: in, size: d.Capacity, left: d.Capacity, name: d.Name}
		src = disk.FromReader(data, d.Capacity)
	}
	return r.encode(ctx, it, data, src)
}

// convertImage decodes a staged image source (providers.SourceImage) in
// whatever format disk/formats recognises from its bytes, and writes it
// in the requested disk format.
func (r *run) convertImage(ctx context.Context, it *item, f *os.File) error {
	d := it.disk
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// Files an image names (a VMDK extent, a VHDX parent) are not looked
	// up: a platform's image is whole, and a name in it is not trusted.
	df := &disk.File{Name: d.Name, R: f, Size: st.Size()}
	spec, err := formats.Detect(df)
	if err != nil {
		return fmt.Errorf("disk %s: %w", d.Name, err)
	}
	img, err := spec.Open(df)
	if err != nil {
		return providers.Permanent(fmt.Errorf("disk %s: open the %s image: %w", d.Name, spec.Format, err))
	}
	defer img.Close()
	size := img.Info().VirtualSize
	if d.Capacity > 0 && size != d.Capacity {
		return providers.Permanent(fmt.Errorf("disk %s: the %s image holds %d bytes, the platform says %d", d.Name, spec.Format, size, d.Capacity))
	}
	r.log.Debug("decoding a staged image", "disk", d.Name, "format", string(spec.Format), "subformat", img.Info().Subformat, "virtual_size", size)
	return r.encode(ctx, it, io.NewSectionReader(img, 0, size), disk.FromImage(img))
}

// encode writes the decoded disk in the requested disk format: data is
// the whole virtual disk as bytes and src the same disk as data extents;
// each writer reads only one of them.
func (r *run) encode(ctx context.Context, it *item, data io.Reader, src disk.Source) error {
	switch r.opts.DiskFormat {
	case providers.DiskRaw:
		return r.writeRaw(ctx, it, data, src.Size())
	case providers.DiskVMDK:
		return r.produce(ctx, it, src.Size(), func(w io.Writer) error {
			_, err := vmdk.WriteStreamOptimized(w, data, src.Size(), vmdk.WriteOptions{FileName: it.name})
			return err
		})
	default:
		spec, err := formats.Lookup(string(r.opts.DiskFormat))
		if err != nil {
			return providers.Permanent(err)
		}
		return r.writeImage(ctx, it, spec, src)
	}
}

// writeImage writes src in a format whose tables precede its data (qcow2,
// VHD, VHDX): the writer appends the data, then writes its tables back at
// the front, so the file is hashed once complete, by reading it back
// (from the page cache it was just written through). For an
// object-storage output it streams into the object (streamImage).
func (r *run) writeImage(ctx context.Context, it *item, spec formats.Spec, src disk.Source) error {
	if r.sink != nil {
		return r.streamImage(ctx, it, spec, src)
	}
	f, tmp, err := r.create(it.name)
	if err != nil {
		return err
	}
	h := sha256.New()
	var n int64
	err = spec.Write(ctx, f, src, disk.WriteOptions{Name: it.name, Subformat: r.opts.VHDType})
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err == nil {
		n, err = io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 1<<20))
	}
	return r.commit(it, f, tmp, h, n, err)
}

// stickyReader returns the error its reader returned on every later Read
// too. A source may report a failure (a checksum that does not match)
// together with its last bytes, and io.ReadFull drops an error that comes
// with the bytes filling its buffer: the next Read must see it again.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.err = err
	return n, err
}

// exactReader reads exactly left bytes of a raw source and then its end:
// a short source is an error, not a disk with a zero tail, and a long one
// is an error, not a disk cut short. Reading on to the source's end also
// lets a source that verifies its bytes at the end (a whole-object
// checksum) report a mismatch.
type exactReader struct {
	r    io.Reader
	size int64 // the disk's capacity
	left int64
	name string
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		var probe [1]byte
		n, err := io.ReadFull(e.r, probe[:])
		switch {
		case n > 0:
			return 0, fmt.Errorf("disk %s: the source holds more than the disk's %d bytes", e.name, e.size)
		case errors.Is(err, io.EOF):
			return 0, io.EOF
		default:
			return 0, err
		}
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		return n, fmt.Errorf("disk %s: source ended %d bytes early: %w", e.name, e.left, io.ErrUnexpectedEOF)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// writeCopy writes src as it is; size is its size (an upper bound), or 0
// when unknown.
func (r *run) writeCopy(ctx context.Context, it *item, src io.Reader, size int64) error {
	return r.produce(ctx, it, size, func(w io.Writer) error {
		buf := make([]byte, blockSize)
		_, err := io.CopyBuffer(w, struct{ io.Reader }{src}, buf)
		return err
	})
}

// produce creates it.name through "<name>.part" (never through a planted
// link), lets write fill it through a hash, then syncs and renames it; or,
// for an object-storage output, streams it into the object it.name.
// sizeHint bounds the size (0: small or unknown), to size upload parts.
func (r *run) produce(ctx context.Context, it *item, sizeHint int64, write func(io.Writer) error) error {
	if r.sink != nil {
		return r.upload(ctx, it, sizeHint, write)
	}
	f, tmp, err := r.create(it.name)
	if err != nil {
		return err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), blockSize)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	var n int64
	if err == nil {
		n, err = f.Seek(0, io.SeekCurrent)
	}
	return r.commit(it, f, tmp, h, n, err)
}

// writeRaw writes the disk bytes of src as a sparse raw image: all-zero
// blocks are seeked over (holes), the file is capacity bytes long, and
// every byte — holes included — is hashed as it passes.
func (r *run) writeRaw(ctx context.Context, it *item, src io.Reader, capacity int64) error {
	if r.sink != nil {
		// Objects have no holes: every byte is sent.
		return r.writeCopy(ctx, it, &exactReader{r: src, size: capacity, left: capacity, name: it.name}, capacity)
	}
	f, tmp, err := r.create(it.name)
	if err != nil {
		return err
	}
	h := sha256.New()
	buf := make([]byte, blockSize)
	var off int64
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			h.Write(buf[:n])
			if !vmdk.IsZero(buf[:n]) {
				if _, err = f.WriteAt(buf[:n], off); err != nil {
					break
				}
			}
			off += int64(n)
		}
		// io.ReadFull's own end markers, compared by identity: a decoder's
		// wrapped io.ErrUnexpectedEOF is a truncated source, an error.
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF { //nolint:errorlint
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
		if err = ctx.Err(); err != nil {
			break
		}
	}
	if err == nil && off != capacity {
		err = fmt.Errorf("disk %s: decoded %d bytes, capacity %d", it.disk.Name, off, capacity)
	}
	if err == nil {
		err = f.Truncate(capacity) // a trailing hole
	}
	return r.commit(it, f, tmp, h, capacity, err)
}

func (r *run) create(name string) (*os.File, string, error) {
	tmp := name + ".part"
	f, err := safepath.OpenFile(r.root, tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, "", providers.Permanent(fmt.Errorf("output %w", err))
	}
	return f, tmp, nil
}

// commit finishes a file created by create: on success synced, closed and
// renamed, with its size and digest recorded; on failure removed.
func (r *run) commit(it *item, f *os.File, tmp string, h hash.Hash, size int64, err error) error {
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.root.Rename(tmp, it.name)
	}
	if err != nil {
		_ = r.root.Remove(tmp)
		return fmt.Errorf("write %s: %w", it.name, err)
	}
	r.track(it.name)
	it.size, it.sha256 = size, hex.EncodeToString(h.Sum(nil))
	return nil
}

// upload streams it into the object it.name through a hash, or into its
// member of the OVA object.
func (r *run) upload(ctx context.Context, it *item, sizeHint int64, write func(io.Writer) error) error {
	if r.arch != nil {
		return r.member(ctx, it, write)
	}
	w, err := r.sink.Create(ctx, it.name, sizeHint)
	if err != nil {
		return fmt.Errorf("write %s: %w", it.name, err)
	}
	r.noteObject(it.name)
	defer w.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	bw := bufio.NewWriterSize(cw, blockSize)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = it.endSource()
	}
	if err == nil {
		err = w.Commit(ctx)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", it.name, err)
	}
	it.size, it.sha256 = cw.n, hex.EncodeToString(h.Sum(nil))
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// keepRaw makes the complete sparse raw file f (named name in the output
// root) the raw disk of it: renamed into place, its data hashed, or, for
// an object-storage output, uploaded and removed. f is closed.
func (r *run) keepRaw(ctx context.Context, it *item, f *os.File, name string, capacity int64) error {
	if r.sink == nil {
		h := sha256.New()
		err := hashSparse(ctx, h, f, name, capacity)
		return r.commit(it, f, name, h, capacity, err)
	}
	err := r.writeCopy(ctx, it, io.NewSectionReader(f, 0, capacity), capacity)
	f.Close()
	if err != nil {
		return err
	}
	return r.root.Remove(name)
}
