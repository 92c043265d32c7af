package providers

import (
	"context"
	"io"
)

// Sink receives an export's files in object storage (package objstore:
// S3, GCS, Azure blobs) instead of a local directory. The pipeline
// streams each file into it in order; OutputDir then holds only what a
// resumed attempt needs (the uploads' state, staged sources).
type Sink interface {
	// Location names where the files land ("s3://bucket/prefix/"),
	// without credentials.
	Location() string
	// Create starts writing the object name (relative to the location).
	// sizeHint is an upper bound of its size, or 0 when small/unknown: it
	// sizes the parts so that the largest disk fits the store's part
	// limits. A Create after an interrupted attempt resumes that upload:
	// parts the store already holds with the same checksum are not sent
	// again.
	Create(ctx context.Context, name string, sizeHint int64) (SinkWriter, error)
	// Open reads n bytes of the committed object name from off (n < 0:
	// to its end). Ranges read in parallel let a caller read a large
	// object back fast (to hash what a writer patched at its front).
	Open(ctx context.Context, name string, off, n int64) (io.ReadCloser, error)
	// Remove deletes the object name, aborts an upload of it left open,
	// and forgets its resume state: what a failed export that no attempt
	// will follow leaves behind.
	Remove(ctx context.Context, name string) error
	// Release forgets the resume state of the committed object name, once
	// the export that wrote it succeeded.
	Release(name string) error
	// Started lists the objects whose resume state is kept (by this
	// attempt or an earlier one): a failed export that no attempt will
	// follow removes them all, also those this attempt never reached.
	Started() ([]string, error)
}

// SinkWriter writes one object of a Sink. Its bytes are uploaded in
// parts as they are written, so that nothing is copied locally; the few a
// writer patches later (a disk image's tables at its front) are held in
// memory until then.
type SinkWriter interface {
	io.Writer
	// WriteAt overwrites bytes already written, at off. Only bytes not
	// yet uploaded can be overwritten: those of the first part, which is
	// held in memory until Commit, those of the part still filling, and
	// those of a region appended by Reserve until WriteAt has covered all
	// of it. Overwriting uploaded bytes is an error naming the object and
	// the offset.
	WriteAt(p []byte, off int64) (int, error)
	// Reserve appends n zero bytes that WriteAt fills later and returns
	// their offset: the part(s) holding them are kept in memory, not
	// uploaded, until they are filled (or Commit).
	Reserve(n int64) (off int64, err error)
	// Commit publishes the object once every byte is written: its name
	// then reads as the bytes written, and only then.
	Commit(ctx context.Context) error
	// Close releases the writer. Closing without Commit leaves an open
	// upload for the next attempt to resume (Sink.Remove discards it).
	Close() error
}
