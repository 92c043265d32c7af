package hyperv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/vhdx"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// fetchConcurrency is how many ranges of one staged disk are read at once
// over SMB or SFTP.
const fetchConcurrency = 4

// diskSource hands a staged VHDX over to the pipeline as a raw disk: Open
// fetches the file from the host with transfer's Downloader (ranged,
// parallel, resumed from "<file>.part" by a later attempt into the same
// output directory by a job's next attempt) beside the output as ".hyperv-<job>-<name>.vhdx", then reads
// it through the disk package's VHDX reader, which yields the guest's
// bytes. Closing the reader removes the local copy.
func (p *Provider) diskSource(opts providers.ExportOptions, resumable bool, name string, files fileClient, rel string, s stagedDisk) providers.DiskSource {
	return providers.DiskSource{
		Name: name, Format: providers.SourceRaw, Capacity: s.Size, Size: s.Size,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			return p.fetch(ctx, opts, resumable, ".hyperv-"+opts.JobID+"-"+name+".vhdx", files.Source(rel), s)
		},
	}
}

func (p *Provider) fetch(ctx context.Context, opts providers.ExportOptions, resumable bool, local string, src transfer.Source, s stagedDisk) (io.ReadCloser, error) {
	root := opts.OutputRoot
	closeRoot := func() error { return nil }
	if root == nil {
		if err := os.MkdirAll(opts.OutputDir, 0o755); err != nil {
			return nil, err
		}
		r, err := os.OpenRoot(opts.OutputDir)
		if err != nil {
			return nil, err
		}
		root, closeRoot = r, r.Close
	}
	ok := false
	defer func() {
		if !ok {
			closeRoot()
		}
	}()
	d := transfer.NewDownloader(transfer.Options{
		ChunkConcurrency: fetchConcurrency, KeepPartial: true,
		BandwidthLimit: opts.BandwidthLimit, Logger: opts.Log(),
		// The fetch is reported as preparation: the pipeline's downloading
		// reports count the decoded disk, whose sizes these are not.
		Progress: func(r progress.Report) {
			opts.Report(progress.Report{Phase: progress.PhasePreparing, Item: r.Item, ItemBytes: r.ItemBytes, ItemSize: r.ItemSize})
		},
	})
	if _, err := d.Download(ctx, []transfer.File{{Source: src, Root: root, Path: local, Size: s.FileSize}}); err != nil {
		// Kept for the next attempt of the job to resume, unless none
		// follows (the pipeline's rule for its own partial files) or the
		// export has no job (a made-up id no later call uses).
		if !resumable || errors.Is(err, transfer.ErrPermanent) || errors.Is(context.Cause(ctx), providers.ErrAbandoned) || (opts.FinalAttempt && ctx.Err() == nil) {
			_ = root.Remove(local + ".part")
		}
		return nil, fmt.Errorf("fetching %s: %w", src, err)
	}
	fh, err := root.Open(local)
	if err != nil {
		return nil, err
	}
	remove := func() { _ = root.Remove(local) }
	f := &disk.File{Name: local, R: fh, Size: s.FileSize}
	img, err := vhdx.Open(f)
	if err != nil {
		fh.Close()
		remove()
		return nil, fmt.Errorf("staged disk %s: %w", src, err)
	}
	if got := img.Info().VirtualSize; got != s.Size {
		img.Close()
		fh.Close()
		remove()
		return nil, fmt.Errorf("staged disk %s: %d bytes virtual, the host said %d", src, got, s.Size)
	}
	ok = true
	return &imageReader{SectionReader: io.NewSectionReader(img, 0, s.Size), close: func() error {
		err := errors.Join(img.Close(), fh.Close())
		remove()
		return errors.Join(err, closeRoot())
	}}, nil
}

type imageReader struct {
	*io.SectionReader
	close func() error
}

func (r *imageReader) Close() error { return r.close() }
