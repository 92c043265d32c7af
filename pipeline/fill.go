package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/providers"
)

// checkFilled refuses Filled disks the pipeline cannot give Fill a file
// for.
func checkFilled(exp *providers.Export, d *providers.DiskSource) error {
	switch {
	case exp.Fill == nil:
		return fmt.Errorf("disk %s is filled from a stream, but the export has no Fill", d.Name)
	case d.Format != providers.SourceRaw:
		return fmt.Errorf("disk %s: a filled disk holds raw bytes, not %q", d.Name, d.Format)
	case d.Capacity <= 0:
		return fmt.Errorf("disk %s: a filled disk needs its capacity", d.Name)
	}
	return nil
}

// fillFile is the sparse raw file one Filled disk is written into: the
// disk itself once renamed (a raw export), else the source it is encoded
// from.
func (r *run) fillFile(it *item) string {
	if r.opts.DiskFormat == providers.DiskRaw {
		return it.name + ".part"
	}
	return it.name + ".src.part"
}

// fill produces the Filled items idx: one sparse raw file each, Capacity
// long, handed to the provider's Fill in one call; once it returned, each
// file is hashed and renamed into place (raw) or encoded in the requested
// format and removed, par at a time. Every file is tracked, so a failure
// removes them all: a stream is not resumed.
func (r *run) fill(ctx context.Context, items []*item, idx []int, prog *sizes, par int) (err error) {
	files := make([]*os.File, len(idx))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	sinks := make([]io.WriterAt, len(idx))
	for k, i := range idx {
		it := items[i]
		name := r.fillFile(it)
		f, err := safepath.OpenFile(r.root, name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return providers.Permanent(fmt.Errorf("output %w", err))
		}
		r.track(name)
		files[k] = f
		if err := f.Truncate(it.disk.Capacity); err != nil { // all holes
			return fmt.Errorf("write %s: %w", name, err)
		}
		sinks[k] = f
	}
	if err := r.exp.Fill(ctx, sinks, prog.fillCounter(idx, items)); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("export %s: %w", r.exp.VM.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	r.log.Info("disks filled from the stream", "disks", len(idx))

	// The files are complete: finish them, par at a time.
	sem := make(chan struct{}, max(1, par))
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for k, i := range idx {
		it, f := items[i], files[k]
		files[k] = nil // finished (and closed) below
		wg.Go(func() {
			if err := r.waitTurn(ctx, it); err != nil {
				f.Close()
				errOnce.Do(func() { firstErr = err })
				return
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := r.finishFilled(ctx, it, f); err != nil {
				errOnce.Do(func() { firstErr = err })
			}
		})
	}
	wg.Wait()
	return firstErr
}

// finishFilled makes the disk of it from its complete raw file f, and
// closes f.
func (r *run) finishFilled(ctx context.Context, it *item, f *os.File) error {
	name := r.fillFile(it)
	capacity := it.disk.Capacity
	if r.opts.DiskFormat == providers.DiskRaw {
		if err := r.keepRaw(ctx, it, f, name, capacity); err != nil {
			return err
		}
		r.untrack(name)
		return nil
	}
	err := r.encodeRawFile(ctx, it, f, name, capacity)
	f.Close()
	if err != nil {
		return err
	}
	if err := r.root.Remove(name); err != nil {
		return err
	}
	r.untrack(name)
	return nil
}

// fillCounter returns the progress callback of the Filled items idx,
// which advance together: the stream's bytes done are counted against
// the items' capacities in order, so that their sum is exact.
func (s *sizes) fillCounter(idx []int, items []*item) func(done, total int64) {
	var mu sync.Mutex
	return func(done, _ int64) {
		mu.Lock()
		defer mu.Unlock()
		left, current := done, -1 // current: the first item not complete
		for _, i := range idx {
			c := items[i].disk.Capacity
			n := min(left, c)
			s.files[i].done.Store(n)
			left -= n
			if n < c && current < 0 {
				current = i
			}
		}
		if current < 0 {
			current = idx[len(idx)-1]
		}
		it := items[current]
		s.r.opts.Report(s.report(it.name, s.files[current].done.Load(), it.disk.Capacity))
	}
}
