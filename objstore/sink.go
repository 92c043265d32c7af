package objstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
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
	// partsInFlight parts upload at once while the next one fills: the
	// memory an upload holds is (partsInFlight+1) parts.
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
	w.buf = make([]byte, 0, st.PartSize)
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
	next      int // the number of the part buf fills
	size      int64
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

// flush hands the full buffer to an uploader and starts the next part.
func (w *writer) flush(ctx context.Context) error {
	if err := w.ensureUpload(ctx); err != nil {
		return err
	}
	data, n := w.buf, w.next
	w.size += int64(len(data))
	w.next++
	w.slots <- struct{}{}
	w.wg.Go(func() {
		defer func() { <-w.slots }()
		if err := w.sendPart(ctx, n, data); err != nil {
			w.fail(err)
		}
	})
	// The uploader owns data now; the next part fills a new buffer. At
	// most partsInFlight buffers are in flight (slots), so memory stays
	// bounded by the part size.
	w.buf = make([]byte, 0, w.st.PartSize)
	return w.failed()
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
	if !single && len(w.buf) > 0 {
		if err := w.flush(ctx); err != nil {
			w.wg.Wait()
			return err
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
	w.buf = nil
	return nil
}
