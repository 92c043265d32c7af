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

// SinkWriter writes one object of a Sink.
type SinkWriter interface {
	io.Writer
	// Commit publishes the object once every byte is written: its name
	// then reads as the bytes written, and only then.
	Commit(ctx context.Context) error
	// Close releases the writer. Closing without Commit leaves an open
	// upload for the next attempt to resume (Sink.Remove discards it).
	Close() error
}
