package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"

	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// Sources served with ranges (HTTPSource.Ranged: object storage) are
// fetched as rangedStreams parallel GETs of rangedChunkSize bytes each:
// enough streams to fill a fast link to S3, whose single streams top out
// at tens of MiB/s, in ranges of the size AWS recommends for parallel
// GETs (8–16 MiB).
const (
	rangedStreams   = 8
	rangedChunkSize = 8 << 20
)

// item is one output file made from one source.
type item struct {
	disk *providers.DiskSource // nil for other files
	file *providers.FileSource
	name string // final name in the output root
	kind string // ExportedFile kind
	// passthrough: the source bytes are the output bytes (a VMDK kept as
	// VMDK, a file as it is); otherwise they are decoded and encoded.
	passthrough bool

	size   int64
	sha256 string
	// srcEnd, when set, reads the source on to its end, where its digests
	// are checked: a decoder may stop at the disk's last byte (a VMDK's
	// end-of-stream marker), and nothing may be committed before the
	// check. Called once the output is written, before it is committed.
	srcEnd func() error
}

// endSource runs srcEnd, if any.
func (it *item) endSource() error {
	if it.srcEnd == nil {
		return nil
	}
	return it.srcEnd()
}

func (it *item) source() (*providers.HTTPSource, func(context.Context) (io.ReadCloser, error), int64) {
	if it.disk != nil {
		return it.disk.HTTP, it.disk.Open, it.disk.Size
	}
	return it.file.HTTP, it.file.Open, it.file.Size
}

// items lists the files the export produces, in descriptor order: disks,
// then other files.
func (r *run) items() ([]*item, error) {
	var out []*item
	filled := false
	seen := map[string]bool{}
	add := func(it *item) error {
		if seen[it.name] {
			return fmt.Errorf("export %s: two sources are named %s", r.exp.VM.Name, it.name)
		}
		seen[it.name] = true
		out = append(out, it)
		return nil
	}
	for i := range r.exp.Disks {
		d := &r.exp.Disks[i]
		switch d.Format {
		case providers.SourceVMDKStream, providers.SourceRaw:
		case providers.SourceImage:
			if d.HTTP == nil {
				return nil, providers.Permanent(fmt.Errorf("%w: disk %s: an image source is read with random access: it must be an HTTP source, which the pipeline stages", providers.ErrUnsupported, d.Name))
			}
		default:
			return nil, providers.Permanent(fmt.Errorf("%w: disk %s: source format %q", providers.ErrUnsupported, d.Name, d.Format))
		}
		if n := countSet(d.HTTP != nil, d.Open != nil, d.Blocks != nil, d.Filled); n != 1 {
			return nil, fmt.Errorf("export %s: disk %s needs exactly one of an HTTP source, a reader, a block source and Filled (has %d)", r.exp.VM.Name, d.Name, n)
		}
		if h := d.HTTP; h != nil {
			if err := checkHTTPSource(h, d.Size); err != nil {
				return nil, providers.Permanent(fmt.Errorf("export %s: disk %s: %w", r.exp.VM.Name, d.Name, err))
			}
		}
		if d.Blocks != nil {
			if err := checkBlockSource(d); err != nil {
				return nil, providers.Permanent(fmt.Errorf("export %s: %w", r.exp.VM.Name, err))
			}
		}
		if d.Filled {
			filled = true
			if err := checkFilled(r.exp, d); err != nil {
				return nil, providers.Permanent(fmt.Errorf("export %s: %w", r.exp.VM.Name, err))
			}
		}
		it := &item{disk: d, kind: "disk", name: r.base + "-" + d.Name + "." + string(r.opts.DiskFormat)}
		it.passthrough = d.Format == providers.SourceVMDKStream && r.opts.DiskFormat == providers.DiskVMDK ||
			d.Format == providers.SourceRaw && r.opts.DiskFormat == providers.DiskRaw && d.HTTP != nil
		if err := add(it); err != nil {
			return nil, err
		}
	}
	if r.exp.Fill != nil && !filled {
		return nil, fmt.Errorf("export %s: the export has a Fill but no disk is Filled", r.exp.VM.Name)
	}
	for i := range r.exp.Files {
		f := &r.exp.Files[i]
		if (f.HTTP == nil) == (f.Open == nil) {
			return nil, fmt.Errorf("export %s: file %s needs exactly one of an HTTP source and a reader", r.exp.VM.Name, f.Name)
		}
		if f.HTTP != nil {
			if err := checkHTTPSource(f.HTTP, f.Size); err != nil {
				return nil, providers.Permanent(fmt.Errorf("export %s: file %s: %w", r.exp.VM.Name, f.Name, err))
			}
		}
		kind := f.Kind
		if kind == "" {
			kind = "other"
		}
		if err := add(&item{file: f, kind: kind, name: r.base + "-" + f.Name, passthrough: true}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkHTTPSource refuses an HTTP source the download could not honour.
func checkHTTPSource(h *providers.HTTPSource, size int64) error {
	switch {
	case h.Offset < 0:
		return fmt.Errorf("negative offset %d", h.Offset)
	case h.Offset > 0 && size <= 0:
		return errors.New("a part of an object (an offset) needs its size")
	case h.Ranged && h.Validator == "":
		return errors.New("a ranged source needs the object's validator (ETag), so that a resumed download never splices two versions")
	}
	for _, d := range h.Digests {
		if d.Name == "" || d.New == nil || len(d.Sum) == 0 {
			return fmt.Errorf("digest %q has no name, hash or expected sum", d.Name)
		}
	}
	return nil
}

// countSet counts the true values: how many sources a disk names.
func countSet(set ...bool) (n int) {
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

// fetch produces every item: HTTP sources through transfer (one
// Downloader, each file with its own TLS client) or, into object storage,
// streamed like readers (streamsHTTP), readers streamed, block sources by
// the block engine, Filled disks by the provider's Fill, all concurrently
// (into an OVA object, members take turns: see archive).
func (r *run) fetch(ctx context.Context, items []*item) ([]*item, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	prog := newSizes(items, r)
	r.opts.Report(progress.Report{Phase: progress.PhaseDownloading})

	var downloads, filled, readers []int // readers: reader and block sources
	for i, it := range items {
		if h, _, _ := it.source(); h != nil && !r.streamsHTTP(it) {
			downloads = append(downloads, i)
		} else if it.disk != nil && it.disk.Filled {
			filled = append(filled, i)
		} else {
			readers = append(readers, i)
		}
	}
	par := max(1, r.opts.ParallelDownloads)
	if r.sink != nil && r.opts.BandwidthLimit > 0 {
		// One limit for every streamed HTTP source, as the Downloader
		// shares one between its files.
		r.httpLimit = rate.NewLimiter(rate.Limit(r.opts.BandwidthLimit), int(min(max(r.opts.BandwidthLimit/10, 32<<10), 1<<20)))
	}
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel(err) })
	}
	if len(downloads) > 0 {
		wg.Go(func() {
			if err := r.download(ctx, items, downloads, prog, par); err != nil {
				fail(err)
			}
		})
	}
	if len(filled) > 0 {
		wg.Go(func() {
			if err := r.fill(ctx, items, filled, prog, par); err != nil {
				fail(err)
			}
		})
	}
	sem := make(chan struct{}, par)
	for _, i := range readers {
		wg.Go(func() {
			if r.waitTurn(ctx, items[i]) != nil {
				return // failed or cancelled: fail was called
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			var err error
			if it := items[i]; it.disk != nil && it.disk.Blocks != nil {
				err = r.fetchBlocks(ctx, it, prog.blockCounter(i, it.name))
			} else {
				err = r.stream(ctx, it, prog.counter(i, it.name))
			}
			if err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	// Items report from their own goroutines, so the last report sent may
	// have been computed before another item's final one; repeating it now
	// says where the download ended (every size known by now).
	r.opts.Report(prog.repeatLast())
	return items, nil
}

// download fetches the HTTP items idx through one Downloader (so they share
// its concurrency and bandwidth limit), each with its source's own client
// (vSphere: one certificate pin per ESXi host), then converts those that are
// not passed through. Into object storage only image sources come here
// (streamsHTTP): staged, then decoded into the object.
func (r *run) download(ctx context.Context, items []*item, idx []int, prog *sizes, par int) error {
	var tf []transfer.File
	var kept []string // part files a failure that may heal leaves for the next attempt
	byPath := map[string]int{}
	for _, i := range idx {
		it := items[i]
		h, _, size := it.source()
		path := it.name
		if !it.passthrough {
			// Decoded into it.name once complete: the parallel ranged
			// download writes out of order.
			path = it.name + ".src"
		}
		byPath[path] = i
		f := transfer.File{URL: h.URL, Root: r.root, Path: path, Header: h.Header, Size: max(size, 0), Client: h.Client,
			Offset: h.Offset, Validator: h.Validator,
			// A raw disk passed through stays sparse: runs of zeros are
			// holes, as when the pipeline decodes one.
			Sparse: it.passthrough && it.disk != nil && it.disk.Format == providers.SourceRaw}
		for _, dg := range h.Digests {
			f.Digests = append(f.Digests, transfer.Digest{Name: dg.Name, New: dg.New, Sum: dg.Sum})
		}
		if h.Ranged {
			f.ChunkConcurrency, f.KeepPartial = rangedStreams, true
			// transfer records beside the part file which version of
			// the object it holds (.part.version).
			kept = append(kept, path+".part", path+".part.version")
		}
		tf = append(tf, f)
	}
	// The part files of ranged sources stay when the failure may heal (see
	// removeWritten), like the block sources' journals.
	r.notePartial(kept...)
	d := transfer.NewDownloader(transfer.Options{
		Concurrency: par, BandwidthLimit: r.opts.BandwidthLimit, Logger: r.log, ChunkSize: rangedChunkSize,
		Progress: func(pr progress.Report) {
			if i, ok := byPath[pr.Item]; ok {
				prog.update(i, pr)
				r.opts.Report(prog.report(filepath.Base(items[i].name), pr.ItemBytes, pr.ItemSize))
			}
		},
	})
	results, err := d.Download(ctx, tf)
	for k, res := range results {
		if res.Err == nil && res.SHA256 != "" {
			it := items[byPath[tf[k].Path]]
			r.track(tf[k].Path)
			r.dropPartial(tf[k].Path+".part", tf[k].Path+".part.version")
			if it.passthrough {
				it.size, it.sha256 = res.Size, res.SHA256
			}
		}
	}
	if err != nil {
		return transferErr(r.exp.VM.Name, err)
	}
	for _, i := range idx {
		it := items[i]
		if it.passthrough {
			continue
		}
		src := it.name + ".src"
		f, err := r.root.Open(src)
		if err != nil {
			return err
		}
		if it.disk.Format == providers.SourceImage {
			err = r.convertImage(ctx, it, f)
		} else {
			err = r.convert(ctx, it, f)
		}
		f.Close()
		if err != nil {
			return err
		}
		if err := r.root.Remove(src); err != nil {
			return err
		}
		r.untrack(src)
	}
	return nil
}

// streamsHTTP says whether the HTTP item it is read as a stream (into
// object storage, nothing is staged in the output root) rather than
// downloaded to a file. An image source stays staged: it is read with
// random access.
func (r *run) streamsHTTP(it *item) bool {
	return r.sink != nil && (it.disk == nil || it.disk.Format != providers.SourceImage)
}

// stream produces a reader item, or an HTTP item read as a stream.
func (r *run) stream(ctx context.Context, it *item, count func(int64)) error {
	h, open, size := it.source()
	var rc io.ReadCloser
	var err error
	if h != nil {
		rc, err = r.openHTTP(ctx, h, size)
		if err != nil {
			return transferErr(r.exp.VM.Name, err)
		}
	} else if rc, err = open(ctx); err != nil {
		return fmt.Errorf("export %s: open %s: %w", r.exp.VM.Name, it.name, err)
	}
	defer rc.Close()
	src := &countingReader{ctx: ctx, r: rc, count: count}
	if h != nil && len(h.Digests) > 0 {
		it.srcEnd = func() error {
			_, err := io.Copy(io.Discard, src)
			return err
		}
	}
	if it.passthrough {
		_, _, size := it.source()
		return r.writeCopy(ctx, it, src, max(size, 0))
	}
	return r.convert(ctx, it, src)
}

// openHTTP opens an HTTP source as a stream: a ranged source of known
// size through transfer.Reader (parallel ranged GETs ahead of the reader,
// each broken range retried, every answer of the version the platform
// named), any other in one GET (an NFC stream, which cannot be resumed).
// The source's digests are checked at its end, where a mismatch fails
// the read instead of ending it, so the object is never committed. A
// resumed attempt reads the source from its start again: only the
// object's upload resumes.
func (r *run) openHTTP(ctx context.Context, h *providers.HTTPSource, size int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	if h.Ranged && size > 0 {
		rd, err := transfer.NewReader(ctx, transfer.ReaderOptions{URL: h.URL, Header: h.Header, Client: h.Client,
			Size: size, Offset: h.Offset, Validator: h.Validator,
			ChunkSize: rangedChunkSize, Concurrency: rangedStreams, Logger: r.log})
		if err != nil {
			return nil, err
		}
		rc = rd
	} else {
		body, err := transfer.OpenStream(ctx, transfer.StreamOptions{URL: h.URL, Header: h.Header, Client: h.Client, Offset: h.Offset, Size: size})
		if err != nil {
			return nil, err
		}
		rc = body
	}
	var rd io.Reader = rc
	if r.httpLimit != nil {
		rd = &limitedReader{ctx: ctx, r: rd, lim: r.httpLimit}
	}
	if len(h.Digests) > 0 {
		dr := &digestReader{r: rd, url: transfer.RedactURL(h.URL)}
		for _, d := range h.Digests {
			dr.digests = append(dr.digests, d)
			dr.hashes = append(dr.hashes, d.New())
		}
		rd = dr
	}
	return struct {
		io.Reader
		io.Closer
	}{rd, rc}, nil
}

// limitedReader paces reads by a byte rate shared with other readers.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (l *limitedReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), l.lim.Burst())]
	n, err := l.r.Read(p)
	if n > 0 {
		if werr := l.lim.WaitN(l.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// digestReader hashes what it reads and, at the end, returns a mismatch
// instead of io.EOF.
type digestReader struct {
	r       io.Reader
	url     string
	digests []providers.Digest
	hashes  []hash.Hash
	n       int64
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	for _, h := range d.hashes {
		h.Write(p[:n])
	}
	d.n += int64(n)
	if err == io.EOF {
		for i, h := range d.hashes {
			if got := h.Sum(nil); !bytes.Equal(got, d.digests[i].Sum) {
				return n, fmt.Errorf("read %s: %s of the %d bytes read is %x, the platform says %x: %w",
					d.url, d.digests[i].Name, d.n, got, d.digests[i].Sum, transfer.ErrDigestMismatch)
			}
		}
	}
	return n, err
}

// countingReader reports what it reads and stops when ctx ends.
type countingReader struct {
	ctx   context.Context
	r     io.Reader
	count func(int64)
	n     int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.count(c.n)
	}
	return n, err
}

// sizes tracks what every item has moved and how big its source is, to
// report progress in bytes that will actually move: the total is unknown
// (0) until every source's size is known (NFC disks are chunked streams
// whose length shows at their last byte), and exact from then on.
type sizes struct {
	r     *run
	files []fileSize

	mu   sync.Mutex
	last progress.Report // the last report sent
}

type fileSize struct {
	done atomic.Int64
	size atomic.Int64 // -1 while unknown
}

func newSizes(items []*item, r *run) *sizes {
	s := &sizes{r: r, files: make([]fileSize, len(items))}
	for i, it := range items {
		_, _, n := it.source()
		switch {
		case it.disk != nil && it.disk.Filled:
			n = it.disk.Capacity // what the stream covers of it
		case n < 0 || it.disk != nil && it.disk.Blocks != nil:
			n = -1 // a block source's size is known once its listing ends
		}
		s.files[i].size.Store(n)
	}
	return s
}

// update records a transfer report about item i. A size of 0 is unknown
// until the item's final report, which knows it (an empty stream).
func (s *sizes) update(i int, pr progress.Report) {
	s.files[i].done.Store(pr.ItemBytes)
	switch {
	case pr.ItemSize > 0:
		s.files[i].size.Store(pr.ItemSize)
	case pr.Final:
		s.files[i].size.Store(pr.ItemBytes)
	}
}

// counter returns the byte counter of reader item i, named name.
func (s *sizes) counter(i int, name string) func(int64) {
	return func(n int64) {
		s.files[i].done.Store(n)
		s.r.opts.Report(s.report(name, n, max(s.files[i].size.Load(), 0)))
	}
}

// blockCounter returns the progress callback of block item i, named
// name: the bytes of its finished blocks and, from the end of its
// listing, of all its listed blocks (total < 0 until then).
func (s *sizes) blockCounter(i int, name string) func(done, total int64) {
	return func(done, total int64) {
		if total >= 0 {
			s.files[i].size.Store(total)
		}
		s.files[i].done.Store(done)
		s.r.opts.Report(s.report(name, done, max(s.files[i].size.Load(), 0)))
	}
}

// sums returns the bytes moved and the total, 0 while any size is unknown.
func (s *sizes) sums() (done, total int64) {
	unknown := false
	for i := range s.files {
		done += s.files[i].done.Load()
		if n := s.files[i].size.Load(); n >= 0 {
			total += n
		} else {
			unknown = true
		}
	}
	if unknown {
		return done, 0
	}
	return done, max(total, done)
}

// report builds a download progress report and tells the platform.
func (s *sizes) report(name string, itemBytes, itemSize int64) progress.Report {
	done, total := s.sums()
	p := progress.Report{Phase: progress.PhaseDownloading, BytesDone: done, BytesTotal: total, Item: name, ItemBytes: itemBytes, ItemSize: itemSize}
	s.mu.Lock()
	s.last = p
	s.mu.Unlock()
	s.r.exp.Progress.Send(p)
	return p
}

// repeatLast reports the last item report again with the sums as they
// are now.
func (s *sizes) repeatLast() progress.Report {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	return s.report(last.Item, last.ItemBytes, last.ItemSize)
}
