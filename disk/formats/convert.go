package formats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/progress"
)

// ConvertOptions are the choices of a conversion.
type ConvertOptions struct {
	// To is the output format.
	To Spec
	// Write passes the subformat, cluster size and VMDK details on.
	Write disk.WriteOptions
	// Force replaces an existing output file.
	Force bool
	// Progress hears the position in the virtual disk (PhaseConverting,
	// BytesTotal = the virtual size) as the conversion moves through it.
	Progress progress.Func
}

// ConvertResult says what a conversion did.
type ConvertResult struct {
	Output      string        `json:"output"`
	Format      disk.Format   `json:"format"`
	Subformat   string        `json:"subformat,omitempty"`
	VirtualSize int64         `json:"virtual_size"`
	DataRead    int64         `json:"data_read"` // bytes of extents read from the source
	FileSize    int64         `json:"file_size"`
	Allocated   int64         `json:"allocated_size"`
	Duration    time.Duration `json:"duration_ns"`
}

// Convert writes src as out in o.To. The image goes to "<out>.part" beside
// out (created anew, never through a planted link), is synced, and renamed
// over out only when complete; an existing out is replaced only with
// o.Force. A failure leaves no partial file.
func Convert(ctx context.Context, src disk.Image, out string, o ConvertOptions) (*ConvertResult, error) {
	start := time.Now()
	if o.To.Write == nil {
		return nil, fmt.Errorf("disk format %q cannot be written", o.To.Format)
	}
	if o.Write.Subformat != "" && !slices.Contains(o.To.Subformats, o.Write.Subformat) {
		if len(o.To.Subformats) == 0 {
			return nil, fmt.Errorf("%s has no subformats (asked for %q)", o.To.Format, o.Write.Subformat)
		}
		return nil, fmt.Errorf("%s subformat %q: must be one of %v", o.To.Format, o.Write.Subformat, o.To.Subformats)
	}
	if _, err := os.Lstat(out); err == nil && !o.Force {
		return nil, fmt.Errorf("%s exists (replace it with --force)", out)
	}
	if o.Write.Name == "" {
		o.Write.Name = filepath.Base(out)
	}
	tmp := out + ".part"
	_ = os.Remove(tmp) // a previous run's leftover; O_EXCL below refuses anything planted since
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	s := &countingSource{Source: disk.FromImage(src), report: o.Progress}
	s.report.Send(progress.Report{Phase: progress.PhaseConverting, BytesTotal: s.Size()})
	err = o.To.Write(ctx, f, s, o.Write)
	if err == nil {
		err = f.Sync()
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("convert to %s: %w", out, err)
	}
	s.report.Send(progress.Report{Phase: progress.PhaseConverting, BytesDone: s.Size(), BytesTotal: s.Size(), Final: true})
	sub := o.Write.Subformat
	if sub == "" && len(o.To.Subformats) > 0 {
		sub = o.To.Subformats[0]
	}
	return &ConvertResult{
		Output: out, Format: o.To.Format, Subformat: sub, VirtualSize: s.Size(), DataRead: s.read,
		FileSize: fi.Size(), Allocated: allocated(fi), Duration: time.Since(start),
	}, nil
}

// countingSource reports the position in the virtual disk as extents are
// read, at most every reportEvery bytes.
type countingSource struct {
	disk.Source
	report   progress.Func
	pos      int64
	read     int64
	reported int64
}

const reportEvery = 8 << 20

func (c *countingSource) NextExtent() (disk.Extent, error) {
	e, err := c.Source.NextExtent()
	if errors.Is(err, io.EOF) {
		c.pos = c.Size()
	} else if err == nil {
		c.pos = e.Offset
	}
	c.maybeReport()
	return e, err
}

func (c *countingSource) Read(p []byte) (int, error) {
	n, err := c.Source.Read(p)
	c.pos += int64(n)
	c.read += int64(n)
	c.maybeReport()
	return n, err
}

func (c *countingSource) maybeReport() {
	if c.report == nil || c.pos-c.reported < reportEvery && c.pos != c.Size() {
		return
	}
	c.reported = c.pos
	c.report(progress.Report{Phase: progress.PhaseConverting, BytesDone: c.pos, BytesTotal: c.Size()})
}
