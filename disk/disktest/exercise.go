package disktest

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
)

// Limits bound the work Exercise does on one image, so that a fuzz input
// describing a huge disk costs no more than a small one.
type Limits struct {
	// Read is the most bytes Exercise reads through ReadAt: extent data
	// and the zeros before each extent.
	Read int64
	// Extents is the most extents Exercise walks; 0 walks them all.
	Extents int
	// Mapped, when positive, is the most bytes the extents may map
	// together: a format that stores every data byte in the file (VHD)
	// cannot map more than the file holds, unless its blocks overlap.
	Mapped int64
	// CheckReadsData says Check decodes every data cluster (VMDK grains):
	// when it passes, no read may fail. Formats whose Check sees only
	// tables (qcow2 leaves compressed clusters to ReadAt) leave it false.
	CheckReadsData bool
}

// exerciseChunk is the size of each read, and of the stretch before each
// extent that must read as zeros.
const exerciseChunk = 64 << 10

// Exercise does to an opened image what a fuzz target must, failing the
// test on any breach of the disk.Image contract:
//
//   - the virtual size is positive and at most disk.MaxVirtualSize;
//   - Check, where img is a disk.Checker, returns only *disk.FormatErrors;
//   - extents ascend, are merged (no two touch), are not empty and end
//     within the virtual size; a damaged table ends them with a FormatError;
//   - the bytes just before each extent read as zeros, without error;
//   - extent data reads whole, or fails with a FormatError — and never
//     fails at all when Check passed, with Limits.CheckReadsData;
//   - a read at the virtual size returns 0, io.EOF, and one across it the
//     bytes up to it and io.EOF (or a FormatError).
//
// Open refusals are the caller's: see RequireFormatError.
func Exercise(t testing.TB, img disk.Image, l Limits) {
	t.Helper()
	size := img.Info().VirtualSize
	if size <= 0 || size > disk.MaxVirtualSize {
		t.Fatalf("virtual size %d", size)
	}
	// Check first: it refuses what would otherwise let a small file
	// describe much data (clusters shared between entries), and where it
	// reads the data too, every read after it passing must succeed.
	checked := false
	if c, ok := img.(disk.Checker); ok {
		err := c.Check(context.Background())
		RequireFormatErrors(t, "Check", err)
		checked = err == nil && l.CheckReadsData
	}
	budget := l.Read
	buf := make([]byte, exerciseChunk)
	// read reads p at off: whole, or a FormatError (false).
	read := func(p []byte, off int64) bool {
		n, err := img.ReadAt(p, off)
		if err == nil && n == len(p) {
			return true
		}
		RequireFormatError(t, "ReadAt", err)
		if checked {
			t.Fatalf("Check, which reads all data, passed, but ReadAt %d bytes at %d fails: %v", len(p), off, err)
		}
		return false
	}
	var mapped, end int64
	walked := 0
	for e, err := range img.Extents() {
		if err != nil {
			RequireFormatError(t, "Extents", err)
			break
		}
		if e.Offset < 0 || e.Length <= 0 || e.End() > size || walked > 0 && e.Offset <= end {
			t.Fatalf("extent %+v after %d in a %d-byte disk: out of order, unmerged, empty or out of range", e, end, size)
		}
		if mapped += e.Length; l.Mapped > 0 && mapped > l.Mapped {
			t.Fatalf("extents map %d bytes, more than the %d the file can hold", mapped, l.Mapped)
		}
		if gap := min(e.Offset-end, exerciseChunk, budget); gap > 0 {
			budget -= gap
			if n, err := img.ReadAt(buf[:gap], e.Offset-gap); n != int(gap) || err != nil || !disk.IsZero(buf[:gap]) {
				t.Fatalf("the %d bytes before extent %+v: %d read, %v, or not zeros", gap, e, n, err)
			}
		}
		for off := e.Offset; off < e.End() && budget > 0; {
			n := min(exerciseChunk, e.End()-off, budget)
			if !read(buf[:n], off) {
				break
			}
			off, budget = off+n, budget-n
		}
		end = e.End()
		if walked++; l.Extents > 0 && walked >= l.Extents {
			break
		}
	}
	if n, err := img.ReadAt(buf[:1], size); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the virtual size: %d, %v; want 0, io.EOF", n, err)
	}
	off := max(0, size-2048)
	if n, err := img.ReadAt(buf[:4096], off); err == io.EOF {
		if int64(n) != size-off {
			t.Fatalf("ReadAt across the end at %d: %d bytes, want %d", off, n, size-off)
		}
	} else {
		RequireFormatError(t, "ReadAt across the end", err)
	}
}

// RequireFormatError fails the test unless err is a *disk.FormatError
// (what every refusal of an image must be).
func RequireFormatError(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, disk.ErrFormat) {
		t.Fatalf("%s: %v is not a FormatError", what, err)
	}
}

// RequireFormatErrors fails the test unless every problem in err (nil, one
// error, or several joined, as Check returns them) is a *disk.FormatError.
func RequireFormatErrors(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			RequireFormatErrors(t, what, e)
		}
		return
	}
	RequireFormatError(t, what, err)
}
