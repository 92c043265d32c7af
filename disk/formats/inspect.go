package formats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"syscall"

	"github.com/hypersdk/hypersdk/disk"
)

// Report describes an image file: its format and what it holds.
type Report struct {
	File string `json:"file"`
	disk.Info
	// FileSize is the image file's length; AllocatedSize what the file
	// system holds for it (st_blocks, like qemu-img's "disk size");
	// DataSize the bytes of the virtual disk that are data (its extents).
	FileSize      int64 `json:"file_size"`
	AllocatedSize int64 `json:"allocated_size"`
	DataSize      int64 `json:"data_size"`
}

// Inspect opens path (format "" to detect it) and reports on it, walking
// its extents to find how much of it is data.
func Inspect(path, format string) (*Report, error) {
	img, f, err := Open(path, format)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	defer img.Close()
	r := &Report{File: path, Info: img.Info(), FileSize: f.Size}
	if fh := f.OS(); fh != nil {
		if fi, err := fh.Stat(); err == nil {
			r.AllocatedSize = allocated(fi)
		}
	}
	for e, err := range img.Extents() {
		if err != nil {
			return nil, err
		}
		r.DataSize += e.Length
	}
	return r, nil
}

// CheckResult is what Check found.
type CheckResult struct {
	File     string   `json:"file"`
	Format   string   `json:"format,omitempty"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	// DataChecked is the bytes of data read (and decompressed) to check
	// that every extent can be read.
	DataChecked int64 `json:"data_checked"`
}

// Check checks the image at path: that it opens, the format's own
// structural checks (reference counts, overlaps, checksums) where it has
// them, and that every byte of every extent can be read. Problems with the
// image are in the result; the error is for not being able to check.
func Check(ctx context.Context, path, format string) (*CheckResult, error) {
	res := &CheckResult{File: path}
	img, f, err := Open(path, format)
	if err != nil {
		if errors.Is(err, disk.ErrFormat) {
			res.Problems = append(res.Problems, err.Error())
			return res, nil
		}
		return nil, err
	}
	defer f.Close()
	defer img.Close()
	res.Format = string(img.Info().Format)
	if c, ok := img.(disk.Checker); ok {
		if err := c.Check(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.Problems = append(res.Problems, problems(err)...)
		}
	}
	buf := make([]byte, 1<<20)
	for e, err := range img.Extents() {
		if err != nil {
			res.Problems = append(res.Problems, err.Error())
			break
		}
		for off := e.Offset; off < e.End(); {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			n := min(int64(len(buf)), e.End()-off)
			if _, err := img.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				res.Problems = append(res.Problems, fmt.Sprintf("reading %d bytes at virtual offset %d: %v", n, off, err))
				break
			}
			off += n
			res.DataChecked += n
		}
	}
	res.OK = len(res.Problems) == 0
	if n := len(res.Problems); n > maxProblems {
		res.Problems = append(res.Problems[:maxProblems], fmt.Sprintf("… and %d more problems", n-maxProblems))
	}
	return res, nil
}

// maxProblems bounds the problems listed: past it, a damaged image says
// nothing new, only more of the same.
const maxProblems = 100

// problems splits a joined error into its messages.
func problems(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
