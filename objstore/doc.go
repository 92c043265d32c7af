// Package objstore writes exports into object storage: s3:// (any S3
// API: AWS, MinIO, versitygw), gs:// (Google Cloud Storage) and azblob://
// (Azure block blobs), behind one store interface. A Sink implements providers.Sink, so the
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
// finish is aborted by Sink.Remove; when the process that ran the last
// attempt died first, the daemon's sweep does it from the kept state
// (Targets.RemoveStarted).
//
// A request that fails transiently (5xx, 429, a timeout, a broken
// connection) is tried again a bounded number of times, with its body
// rewound: parts are in memory. The S3 SDK's standard retryer does it (3
// tries), as does azcore's retry policy (4 tries, 408/429/5xx and
// transport errors). The GCS library retries neither an upload in one
// request (ChunkSize 0) nor a compose or delete without a generation
// precondition, so gcsStore tries those itself with internal/backoff (4
// tries, storage.ShouldRetry's idea of transient). Beyond that, the
// attempt fails and the job's next attempt resumes.
//
// Requests go through the target's HTTP client (GuardedClient: the SSRF
// guard on every connection), with credentials too: GCS credentials wrap
// its transport rather than replace the client.
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
