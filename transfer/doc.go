// Package transfer is HyperSDK's one byte mover: every provider that fetches
// disk images or other export files over HTTP(S), SFTP or SMB does it through
// this package and none rolls its own.
//
// A Downloader fetches a set of files concurrently. Each file is written to
// "<dest>.part", hashed with SHA-256 while it streams, fsynced, and renamed to
// its final name only once it is complete and verified, so a file under its
// final name is always whole. Every name a file uses (".part", ".chunks",
// the final one) is created, renamed and removed inside its destination
// directory, which is opened once beneath File.Root (or is Path's directory
// as given when File.Root is nil) without following links: a link anywhere
// below the root, or a ".part" planted as a link or hard link to a file
// elsewhere, fails the file permanently and is never written through.
//
// Breaks are survived rather than reported: a stream that dies mid-file
// (connection reset, unexpected EOF, 5xx, a stall) is resumed with a Range
// request when the server honours it (206 with a matching Content-Range and,
// when the server gave one, the same validator via If-Range). When it does not
// — vSphere NFC answers 200 with a chunked body whatever the request says —
// the file is truncated and restarted from zero with a fresh hash, never
// spliced. Requests that cannot succeed (400, 401, 403, 404…, certificate
// errors) are not retried and return errors wrapping ErrPermanent.
//
// Where servers answer ranged GETs with a known size (S3, Azure Blob, GCS),
// Options.ChunkConcurrency (or File.ChunkConcurrency, for the files known to
// be such objects among others) splits one file into parallel ranged
// requests. The first ranged request doubles as the probe, so a server that
// ignores Range costs nothing: its 200 response is simply consumed as a
// single stream.
//
// A file may be a byte range of an object (File.Offset: the disk image
// inside an uncompressed OVA): every request then asks for a range within
// it and the answer is read relative to it. File.Validator names the
// version of the object the caller described (its ETag, a Source's
// version): a kept part file records it beside itself
// ("<dest>.part.version") and is resumed, with If-Range from the first
// request over HTTP, only for that version; an answer of another version
// fails the file instead of splicing two. File.Digests are
// what the object store says of the bytes (an ETag's MD5, a full-object
// CRC64NVME), computed in the same pass as the SHA-256; Framed makes such
// a digest of a whole object check one of its members, from the bytes
// before and after it. File.Sparse leaves all-zero buffers as holes (raw
// disk images).
//
// Reader (reader.go) is the same engine for a consumer that wants the bytes
// of one object of known size as an ordered stream rather than a file (a
// tar.gz decoded while it downloads): NewReader keeps ReaderOptions.Concurrency
// ranged GETs of ChunkSize in flight ahead of the consumer and hands their
// bytes out in order, so memory is bounded by Concurrency × ChunkSize
// whatever the object's size and a slow consumer holds the readers back. A
// range broken mid-body is resumed from its last byte received (Range),
// with the same backoff, retry budget, stall timeout, bandwidth limit,
// status classification and URL redaction as downloads; an answer of
// another object version (ETag / Last-Modified) or size fails for good. A
// server that ignores Range is read as one stream, and a break restarts it
// from the first byte, skipping what was already handed out. When the
// store publishes a digest of the whole object (GCS's CRC32C), the Reader
// hashes every byte in order and the Read that delivers the last byte
// fails with ErrDigestMismatch when the sums differ. Nothing is resumed
// across Readers: a consumer that has already acted on the bytes it read
// starts a new Reader from the first byte. ReaderOptions.Offset reads a
// part of the object (an archive member) in ranges only; Validator names
// the version to read (an ETag is sent as If-Match). OpenStream is the
// one-GET counterpart for a source that is neither ranged nor resumable
// (a vSphere NFC stream read straight into an upload).
//
// Each stream is a pipeline: the body is read into 64 KiB buffers while a
// writer goroutine writes earlier ones at their offsets and a third stage
// hashes (or, for chunks, accounts for) what is already written, so a
// stream runs at the pace of its slowest stage, not the sum of them. The
// part file and the hash never disagree: a stream that stops for any reason
// (network, disk, cancellation) first drains its stages, and the bytes kept
// are exactly the bytes hashed. Every 32 MiB of a stream a flusher goroutine
// starts the kernel's writeback of them and waits for the range before
// (Linux: sync_file_range), so the disk works while the network does, dirty
// pages stay bounded and the fsync at commit has little left to do;
// elsewhere the fsync does it all.
//
// Memory is flat: a stream owns a ring of at most 32 pooled buffers (2 MiB)
// and no body is ever held whole; a slow disk makes the reader wait for a
// free buffer. A token bucket shared by all streams of a Downloader enforces
// Options.BandwidthLimit.
//
// A File comes from an http(s) URL or from a Source: a remote file read by
// byte ranges (transfer/sftp and transfer/smb implement it over SSH and
// SMB2/3). Both go through the same engine, so everything above holds for
// both: the HTTP side turns statuses and headers into "these bytes, from
// this offset, of an object of this size and version" and a Source says the
// same through OpenRange and SourceInfo; the decisions (resume, restart from
// zero on a new version, parallel chunks, size checks, retry or give up,
// a part of an object (Offset), the caller's version (Validator), kept
// part files, Digests, Sparse) are made once, on those facts. What is HTTP
// only stays in the HTTP origin: Range, If-Range and Accept-Encoding
// identity on the request; a 200 where a range was asked for (a Source
// always answers the range it was asked; its version is only checked,
// never sent). A Source's errors that wrap ErrPermanent are not retried;
// any other is resumed from the last byte received.
//
// NewHTTPClient is the one HTTP client setup of the project (TLS verification,
// optional certificate thumbprint pinning as vSphere users know it, timeouts
// that bound connection set-up but never a multi-GiB body). Progress is the one
// progress type of a transfer and Meter turns successive byte counts into a
// smoothed rate and ETA for anyone who needs one, HTTP or not.
//
// Secrets never leave the package: URLs in errors and log lines have their
// query string and user info removed (pre-signed S3 URLs and Azure SAS tokens
// live there) and request headers (cookies, authorisation) are never logged.
package transfer
