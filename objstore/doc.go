// Package objstore writes exports into object storage: s3:// (any S3
// API: AWS, MinIO, versitygw), with gs:// and azblob:// to follow on the
// same store interface. A Sink implements providers.Sink, so the
// pipeline's one export path streams every file straight into the store
// with no local copy of the data.
//
// A file is cut into parts as it streams (the part size chosen from the
// file's size bound so that a 2 TiB disk stays within S3's 10,000 parts),
// each part uploaded with its SHA-256 checksum, which the store verifies.
// A file smaller than one part is one PUT. Before anything is relied on,
// its state is recorded durably in a small file beside the export's
// resume state (OutputDir): the object key before the upload is created
// (so that an upload created by an attempt killed before it could record
// the upload id is found and aborted), the upload id once created, every
// finished part with its size and checksum once the store acknowledged
// it. A later attempt produces the same bytes again (the pipeline's
// output is deterministic) and sends only the parts that the state lists,
// the store confirms (ListParts) and whose checksum matches: after kill
// -9, finished parts are not sent again. An upload that no attempt will
// finish is aborted by Sink.Remove.
//
// A writer may patch bytes it wrote earlier (SinkWriter.WriteAt: a disk
// image's header and tables at its front) as long as they are not
// uploaded yet: part 1 is held in memory until Commit, and Reserve
// appends a region whose parts are held until WriteAt has filled it. An
// upload thus holds in memory part 1, the parts with reserved bytes not
// yet filled, and partsInFlight+1 more; part 1 is sent by Commit, so an
// interrupted attempt never leaves it behind and the next sends it again.
// Sink.Open reads a published object back, in ranges (the pipeline
// hashes a patched disk image that way).
package objstore
