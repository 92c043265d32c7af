package objstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/hypersdk/hypersdk/providers"
)

// store is what a Sink needs of an object store: whole small objects and
// multipart uploads whose parts may be sent in any order and again.
type store interface {
	// location is the URL of key, without credentials.
	location(key string) string
	put(ctx context.Context, key string, data []byte, sum [32]byte) error
	begin(ctx context.Context, key string) (uploadID string, err error)
	uploadPart(ctx context.Context, key, uploadID string, n int, data []byte, sum [32]byte) (etag string, err error)
	// listParts returns the parts the store holds of an upload; a part's
	// Sum is nil when the store keeps no SHA-256 of it. ok is false when
	// the upload is gone (completed or aborted).
	listParts(ctx context.Context, key, uploadID string) (parts map[int]part, ok bool, err error)
	complete(ctx context.Context, key, uploadID string, parts []part) error
	abort(ctx context.Context, key, uploadID string) error
	// openUploads lists the ids of uploads of exactly key left open.
	openUploads(ctx context.Context, key string) ([]string, error)
	// size returns the size of the published object key, ok false when
	// there is none.
	size(ctx context.Context, key string) (n int64, ok bool, err error)
	// read reads n bytes of the published object key from off (n < 0:
	// to its end).
	read(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	remove(ctx context.Context, key string) error
}

// Part sizes: S3 takes at most 10,000 parts of 5 MiB to 5 GiB (the last
// may be smaller). Parts are at least minPartSize and grow with the size
// bound so that it fits in partsTarget parts, leaving room for a bound
// that falls a little short (a VMDK's grain tables).
const (
	minPartSize = 16 << 20
	maxPartSize = 5 << 30
	partsTarget = 9000
	// partsInFlight parts upload at once while the next one fills. The
	// memory an upload holds is (partsInFlight+1) parts, plus the first
	// part (held until Commit, for WriteAt) and the parts holding
	// reserved bytes not yet filled (Reserve).
	partsInFlight = 2
)

// PartSize is the part size of an object of at most sizeHint bytes:
// max(16 MiB, ceil(sizeHint/9000)) rounded up to a whole MiB.
func PartSize(sizeHint int64) int64 {
	n := max(int64(minPartSize), (sizeHint+partsTarget-1)/partsTarget)
	n = (n + 1<<20 - 1) &^ (1<<20 - 1)
	return min(n, maxPartSize)
}

// Sink is an export's destination in object storage: objects named
// prefix + file name, resume state in a local directory.
type Sink struct {
	st     store
	prefix string
	state  *os.Root
	log    *slog.Logger
}

var _ providers.Sink = (*Sink)(nil)

func newSink(st store, prefix string, state *os.Root, log *slog.Logger) *Sink {
	return &Sink{st: st, prefix: prefix, state: state, log: cmp.Or(log, slog.Default())}
}

// Location is the URL of the prefix.
func (s *Sink) Location() string { return s.st.location(s.prefix) }

func (s *Sink) key(name string) string { return s.prefix + name }

// Create starts (or resumes) the object name.
func (s *Sink) Create(ctx context.Context, name string, sizeHint int64) (providers.SinkWriter, error) {
	w := &writer{ctx: ctx, s: s, name: name, key: s.key(name), next: 1, slots: make(chan struct{}, partsInFlight)}
	st, err := loadState(s.state, name)
	if err != nil {
		return nil, err
	}
	switch {
	case st == nil || st.Key != w.key:
		st = &uploadState{Key: w.key, PartSize: PartSize(sizeHint)}
	case st.Completed:
		// A previous attempt published it: its recorded parts count as
		// sent if the object is there with their total size.
		n, ok, err := s.st.size(ctx, w.key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.st.location(w.key), err)
		}
		if !ok || n != partsSize(st.Parts) {
			st = &uploadState{Key: w.key, PartSize: st.PartSize}
		}
	case st.UploadID != "":
		held, ok, err := s.st.listParts(ctx, w.key, st.UploadID)
		if err != nil {
			return nil, fmt.Errorf("%s: list the parts of the upload: %w", s.st.location(w.key), err)
		}
		if !ok {
			st = &uploadState{Key: w.key, PartSize: st.PartSize}
			break
		}
		// Only what both the state and the store hold, alike, is kept.
		st.Parts = slices.DeleteFunc(st.Parts, func(p part) bool {
			h, found := held[p.N]
			return !found || h.Size != p.Size || h.Sum != nil && !bytes.Equal(h.Sum, p.Sum)
		})
	}
	w.st = st
	w.prev = map[int]part{}
	for _, p := range st.Parts {
		w.prev[p.N] = p
	}
	w.held = map[int][]byte{}
	return w, nil
}

func partsSize(parts []part) (n int64) {
	for _, p := range parts {
		n += p.Size
	}
	return n
}

// Remove deletes name, aborts its open uploads and forgets its state.
func (s *Sink) Remove(ctx context.Context, name string) error {
	key := s.key(name)
	var errs []error
	if ids, err := s.st.openUploads(ctx, key); err != nil {
		errs = append(errs, err)
	} else {
		for _, id := range ids {
			if err := s.st.abort(ctx, key, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := s.st.remove(ctx, key); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, removeState(s.state, name))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove %s: %w", s.st.location(key), err)
	}
	return nil
}

// Open reads n bytes of the published object name from off (n < 0: to
// its end).
func (s *Sink) Open(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	key := s.key(name)
	rc, err := s.st.read(ctx, key, off, n)
	if err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", s.st.location(key), off, err)
	}
	return rc, nil
}

// Release forgets the state of a committed object.
func (s *Sink) Release(name string) error { return removeState(s.state, name) }

// Started lists the objects that have a state file in the state root.
func (s *Sink) Started() ([]string, error) { return StartedUploads(s.state) }

// writer streams one object into parts.
type writer struct {
	// ctx is Create's: the export's, so that a cancelled export stops
	// its part uploads.
	ctx       context.Context //nolint:containedctx // io.Writer has no context
	s         *Sink
	name, key string
	prev      map[int]part // parts a previous attempt finished
	buf       []byte
	next      int   // the number of the part buf fills
	size      int64 // the bytes of the parts before it
	// first is part 1 once full, held until Commit so that WriteAt can
	// patch it (a disk image's header and tables); held are the later
	// full parts that hold reserved bytes not yet filled (gaps), kept
	// until WriteAt has filled them.
	first     []byte
	held      map[int][]byte
	gaps      []span
	slots     chan struct{}
	wg        sync.WaitGroup
	committed bool

	mu      sync.Mutex
	st      *uploadState
	err     error
	sent    int // parts uploaded by this attempt
	skipped int // parts a previous attempt finished
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, w.st.PartSize)
		}
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, written = p[k:], written+k
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(w.ctx); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// flush ends the full buffer's part: part 1 and parts holding gaps are
// held, the others handed to an uploader.
func (w *writer) flush(ctx context.Context) error {
	data, n, start := w.buf, w.next, w.size
	w.size += int64(len(data))
	w.next++
	// The next part fills a new buffer (allocated by the next Write): the
	// uploader or the hold owns data now.
	w.buf = nil
	switch {
	case n == 1:
		w.first = data
	case w.inGap(start, w.size):
		w.held[n] = data
	default:
		return w.send(ctx, n, data)
	}
	return w.failed()
}

// send hands part n to an uploader. At most partsInFlight parts are in
// flight (slots), so that memory stays bounded by the part size.
func (w *writer) send(ctx context.Context, n int, data []byte) error {
	if err := w.ensureUpload(ctx); err != nil {
		return err
	}
	w.slots <- struct{}{}
	w.wg.Go(func() {
		defer func() { <-w.slots }()
		if err := w.sendPart(ctx, n, data); err != nil {
			w.fail(err)
		}
	})
	return w.failed()
}

// span is the bytes [off, end) of the object.
type span struct{ off, end int64 }

// inGap reports whether [off, end) overlaps reserved bytes not yet filled.
func (w *writer) inGap(off, end int64) bool {
	for _, g := range w.gaps {
		if g.off < end && off < g.end {
			return true
		}
	}
	return false
}

// Reserve appends n zero bytes whose parts are held until WriteAt fills
// them.
func (w *writer) Reserve(n int64) (int64, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("%s: reserve %d bytes", w.s.st.location(w.key), n)
	}
	off := w.size + int64(len(w.buf))
	if n == 0 {
		return off, nil
	}
	// Recorded first, so that flush holds the parts the zeros fill.
	w.gaps = append(w.gaps, span{off, off + n})
	zeros := make([]byte, min(n, 1<<20))
	for left := n; left > 0; {
		k, err := w.Write(zeros[:min(left, int64(len(zeros)))])
		if err != nil {
			return 0, err
		}
		left -= int64(k)
	}
	return off, nil
}

// WriteAt overwrites bytes not yet uploaded: those of part 1, of the part
// filling, or of a part held for a gap.
func (w *writer) WriteAt(p []byte, off int64) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	if written := w.size + int64(len(w.buf)); off < 0 || end > written {
		return 0, fmt.Errorf("%s: write %d bytes at offset %d: only %d bytes are written", w.s.st.location(w.key), len(p), off, written)
	}
	if len(p) == 0 {
		return 0, nil
	}
	ps := w.st.PartSize
	// Every part the range touches is checked before any is changed.
	bufs := map[int][]byte{}
	for k := int(off/ps) + 1; int64(k-1)*ps < end; k++ {
		var b []byte
		switch {
		case k == 1 && w.first != nil:
			b = w.first
		case k == w.next:
			b = w.buf
		default:
			b = w.held[k]
		}
		if b == nil {
			return 0, fmt.Errorf("%s: write at offset %d: part %d, which holds it, is already uploaded",
				w.s.st.location(w.key), max(off, int64(k-1)*ps), k)
		}
		bufs[k] = b
	}
	for k, b := range bufs {
		start := int64(k-1) * ps
		lo, hi := max(off, start), min(end, start+int64(len(b)))
		copy(b[lo-start:hi-start], p[lo-off:hi-off])
	}
	w.fill(off, end)
	// Held parts whose gaps are all filled now go.
	for _, k := range slices.Sorted(maps.Keys(w.held)) {
		start := int64(k-1) * ps
		if w.inGap(start, start+int64(len(w.held[k]))) {
			continue
		}
		data := w.held[k]
		delete(w.held, k)
		if err := w.send(w.ctx, k, data); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// fill removes [off, end) from the gaps.
func (w *writer) fill(off, end int64) {
	var left []span
	for _, g := range w.gaps {
		if g.end <= off || end <= g.off {
			left = append(left, g)
			continue
		}
		if g.off < off {
			left = append(left, span{g.off, off})
		}
		if end < g.end {
			left = append(left, span{end, g.end})
		}
	}
	w.gaps = left
}

// ensureUpload creates the multipart upload unless the state holds one:
// the key is recorded first, and uploads of it left open by an attempt
// that could not record theirs are aborted.
func (w *writer) ensureUpload(ctx context.Context) error {
	if w.st.UploadID != "" {
		return nil
	}
	if w.st.Completed {
		return nil // parts are compared with the published object's
	}
	if err := saveState(w.s.state, w.name, w.st); err != nil {
		return err
	}
	if err := w.abortOthers(ctx, ""); err != nil {
		return err
	}
	id, err := w.s.st.begin(ctx, w.key)
	if err != nil {
		return fmt.Errorf("%s: create the multipart upload: %w", w.s.st.location(w.key), err)
	}
	w.mu.Lock()
	w.st.UploadID = id
	err = saveState(w.s.state, w.name, w.st)
	w.mu.Unlock()
	return err
}

// abortOthers aborts the open uploads of the key but keep.
func (w *writer) abortOthers(ctx context.Context, keep string) error {
	ids, err := w.s.st.openUploads(ctx, w.key)
	if err != nil {
		return fmt.Errorf("%s: list open uploads: %w", w.s.st.location(w.key), err)
	}
	for _, id := range ids {
		if id == keep {
			continue
		}
		w.s.log.Info("aborting an upload left open", "object", w.s.st.location(w.key))
		if err := w.s.st.abort(ctx, w.key, id); err != nil {
			return fmt.Errorf("%s: abort an upload left open: %w", w.s.st.location(w.key), err)
		}
	}
	return nil
}

// sendPart uploads part n unless a previous attempt finished it with the
// same bytes, and records it.
func (w *writer) sendPart(ctx context.Context, n int, data []byte) error {
	sum := sha256.Sum256(data)
	if p, ok := w.prev[n]; ok && p.Size == int64(len(data)) && bytes.Equal(p.Sum, sum[:]) {
		w.mu.Lock()
		w.skipped++
		w.mu.Unlock()
		return nil
	}
	if w.st.Completed {
		return w.republish()
	}
	etag, err := w.s.st.uploadPart(ctx, w.key, w.st.UploadID, n, data, sum)
	if err != nil {
		return fmt.Errorf("%s: upload part %d: %w", w.s.st.location(w.key), n, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent++
	w.st.Parts = slices.DeleteFunc(w.st.Parts, func(p part) bool { return p.N == n })
	w.st.Parts = append(w.st.Parts, part{N: n, Size: int64(len(data)), Sum: sum[:], ETag: etag})
	return saveState(w.s.state, w.name, w.st)
}

// republish forgets the object a previous attempt published when this
// attempt's bytes differ: the attempt fails, and the next one uploads
// the object anew (the parts before the difference are gone from memory).
func (w *writer) republish() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.st = &uploadState{Key: w.key, PartSize: w.st.PartSize}
	if err := saveState(w.s.state, w.name, w.st); err != nil {
		return err
	}
	return fmt.Errorf("%s: the object a previous attempt published differs from this attempt's: it is uploaded again by the next", w.s.st.location(w.key))
}

// Commit uploads the last part and completes the upload (or PUTs an
// object smaller than a part).
func (w *writer) Commit(ctx context.Context) error {
	if err := w.commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", w.s.st.location(w.key), err)
	}
	return nil
}

func (w *writer) commit(ctx context.Context) error {
	if w.committed {
		return errors.New("committed twice")
	}
	// An object smaller than a part is one PUT, sent again by every
	// attempt (the descriptor, the manifest).
	single := w.next == 1
	if !single {
		// The last part, part 1 and the held parts go now, gaps or not.
		if len(w.buf) > 0 {
			w.held[w.next] = w.buf
			w.size += int64(len(w.buf))
			w.next++
			w.buf = nil
		}
		w.gaps = nil
		if w.first != nil {
			w.held[1] = w.first
			w.first = nil
		}
		for _, k := range slices.Sorted(maps.Keys(w.held)) {
			data := w.held[k]
			delete(w.held, k)
			if err := w.send(ctx, k, data); err != nil {
				w.wg.Wait()
				return err
			}
		}
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		return err
	}
	w.committed = true
	if single {
		if w.st.UploadID != "" {
			if err := w.s.st.abort(ctx, w.key, w.st.UploadID); err != nil {
				return err
			}
		}
		sum := sha256.Sum256(w.buf)
		if err := w.s.st.put(ctx, w.key, w.buf, sum); err != nil {
			return err
		}
		w.size = int64(len(w.buf))
		w.st.Parts = []part{{N: 1, Size: w.size, Sum: sum[:]}}
		w.st.Completed, w.st.UploadID = true, ""
		return saveState(w.s.state, w.name, w.st)
	}
	if w.st.Completed {
		if len(w.st.Parts) != w.next-1 || w.skipped != w.next-1 {
			return w.republish()
		}
		w.s.log.Debug("object already published by a previous attempt", "object", w.s.st.location(w.key))
		return nil
	}
	slices.SortFunc(w.st.Parts, func(a, b part) int { return a.N - b.N })
	// Parts beyond the last one are a previous attempt's of a longer
	// object: not part of this one.
	w.st.Parts = slices.DeleteFunc(w.st.Parts, func(p part) bool { return p.N >= w.next })
	if len(w.st.Parts) != w.next-1 {
		return fmt.Errorf("%d parts recorded, %d written", len(w.st.Parts), w.next-1)
	}
	if err := w.s.st.complete(ctx, w.key, w.st.UploadID, w.st.Parts); err != nil {
		return fmt.Errorf("complete the multipart upload: %w", err)
	}
	w.st.Completed = true
	w.st.UploadID = ""
	w.s.log.Debug("object published", "object", w.s.st.location(w.key), "bytes", w.size, "parts", len(w.st.Parts),
		"parts_sent", w.sent, "parts_resumed", w.skipped)
	return saveState(w.s.state, w.name, w.st)
}

// Close waits for the uploads in flight. An uncommitted upload stays open
// with its state, for the next attempt.
func (w *writer) Close() error {
	w.wg.Wait()
	w.buf, w.first, w.held = nil, nil, nil
	return nil
}
