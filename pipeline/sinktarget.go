package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/formats"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers"
)

// sinkTarget is a disk.Target over an object being uploaded: Write
// appends, a Seek forward appends zeros (an object has no holes), WriteAt
// patches bytes not yet uploaded (SinkWriter.WriteAt), Truncate pads with
// zeros. A Seek backward, or a Truncate that would cut written bytes, is
// refused: those bytes may be uploaded already. What is appended is
// hashed as it passes; once a WriteAt changed written bytes the hash is
// void (patched reports it) and the object must be read back to hash it.
type sinkTarget struct {
	w       providers.SinkWriter
	name    string
	end     int64 // bytes appended; also the position
	h       hash.Hash
	patched bool
	zeros   []byte // what Seek and Truncate append, in pieces of its size
}

func (t *sinkTarget) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.h.Write(p[:n])
	t.end += int64(n)
	return n, err
}

func (t *sinkTarget) pad(n int64) error {
	if n > 0 && t.zeros == nil {
		t.zeros = make([]byte, 1<<20)
	}
	for n > 0 {
		k, err := t.Write(t.zeros[:min(n, int64(len(t.zeros)))])
		if err != nil {
			return err
		}
		n -= int64(k)
	}
	return nil
}

func (t *sinkTarget) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent, io.SeekEnd:
		off += t.end
	case io.SeekStart:
	default:
		return 0, fmt.Errorf("%s: seek whence %d", t.name, whence)
	}
	if off < t.end {
		return 0, fmt.Errorf("%s: seek back to %d from %d: an object is written front to back", t.name, off, t.end)
	}
	return off, t.pad(off - t.end)
}

func (t *sinkTarget) WriteAt(p []byte, off int64) (int, error) {
	t.patched = true
	return t.w.WriteAt(p, off)
}

func (t *sinkTarget) Truncate(size int64) error {
	if size < t.end {
		return fmt.Errorf("%s: truncate to %d bytes: %d are written, and an object cannot be cut", t.name, size, t.end)
	}
	return t.pad(size - t.end)
}

var _ disk.Target = (*sinkTarget)(nil)

// streamImage writes src in a format whose tables are patched at the
// front once the data is written (qcow2, VHD, VHDX) straight into the
// object it.name: the front is held in memory until the upload commits
// (see providers.SinkWriter). What these writers patch always lies in
// part 1: a qcow2 header cluster (at most 2 MiB), a VHD's BAT (at most 4
// MiB from 1536), a VHDX BAT from 3 MiB (1/4096 of the disk with 32 MiB
// blocks, 1/128 Ki with 1 MiB ones), while part 1 is at least 16 MiB and
// 1/9000 of the size hint. The file's SHA-256 cannot be computed in
// one pass then: the object is read back from the store and hashed,
// which also verifies it end to end. An image whose writer only appended
// (a fixed VHD) is hashed as it streamed.
func (r *run) streamImage(ctx context.Context, it *item, spec formats.Spec, src disk.Source) error {
	// Tables and a VHD's sector bitmaps add well under 1% to the data;
	// the hint only sizes parts, with room to spare.
	hint := src.Size() + src.Size()/64 + 16<<20
	w, err := r.sink.Create(ctx, it.name, hint)
	if err != nil {
		return fmt.Errorf("write %s: %w", it.name, err)
	}
	r.noteObject(it.name)
	defer w.Close()
	t := &sinkTarget{w: w, name: it.name, h: sha256.New()}
	err = spec.Write(ctx, t, src, disk.WriteOptions{Name: it.name, Subformat: r.opts.VHDType})
	if err == nil {
		err = it.endSource()
	}
	if err == nil {
		err = w.Commit(ctx)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", it.name, err)
	}
	it.size, it.sha256 = t.end, hex.EncodeToString(t.h.Sum(nil))
	if !t.patched {
		return nil
	}
	start := time.Now()
	sum, err := hashObject(ctx, r.sink, it.name, t.end)
	if err != nil {
		return fmt.Errorf("hash %s: %w", it.name, err)
	}
	took := time.Since(start)
	r.log.Info("read the object back to hash it", "file", it.name, "bytes", t.end, "duration", took.Round(time.Millisecond),
		"throughput_mib_s", fmt.Sprintf("%.1f", float64(t.end)/(1<<20)/max(took.Seconds(), 1e-3)))
	it.sha256 = sum
	return nil
}

// Reading back: readChunk-byte ranges, readAhead of them in flight while
// the hash consumes them in order; each range is retried on failure.
const (
	readChunk    = 16 << 20
	readAhead    = 4
	readAttempts = 5
)

// hashObject is the SHA-256 of the committed object name, of size bytes,
// read in parallel ranges.
func hashObject(ctx context.Context, sink providers.Sink, name string, size int64) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type chunk struct {
		data []byte
		err  error
	}
	n := int((size + readChunk - 1) / readChunk)
	results := make([]chan chunk, n)
	for i := range results {
		results[i] = make(chan chunk, 1)
	}
	slots := make(chan struct{}, readAhead)
	go func() {
		for i := range n {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				off := int64(i) * readChunk
				data, err := readRange(ctx, sink, name, off, min(readChunk, size-off))
				results[i] <- chunk{data, err}
			}()
		}
	}()
	h := sha256.New()
	for i := range n {
		var c chunk
		select {
		case c = <-results[i]:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if c.err != nil {
			return "", c.err
		}
		h.Write(c.data)
		<-slots
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readRange reads exactly n bytes of name from off, retrying.
func readRange(ctx context.Context, sink providers.Sink, name string, off, n int64) ([]byte, error) {
	policy := backoff.Default
	buf := make([]byte, n)
	var err error
	for attempt := range readAttempts {
		if attempt > 0 {
			if serr := policy.Sleep(ctx, attempt); serr != nil {
				return nil, errors.Join(err, serr)
			}
		}
		var rc io.ReadCloser
		if rc, err = sink.Open(ctx, name, off, n); err != nil {
			continue
		}
		var got int
		got, err = io.ReadFull(rc, buf)
		rc.Close()
		if err == nil {
			return buf, nil
		}
		err = fmt.Errorf("read %d bytes at %d: got %d: %w", n, off, got, err)
	}
	return nil, err
}
