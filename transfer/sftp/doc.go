// Package sftp fetches files over SFTP for the transfer engine: a Client
// on an internal/sshclient connection hands out transfer.Source files
// (Client.Source), so an SFTP download gets everything an HTTP one does —
// part file, SHA-256 while streaming, resume, ChunkConcurrency ranges,
// retries, bandwidth limit, progress — and removes staging files and
// folders afterwards (Remove, RemoveAll).
//
// A range is read with several reads in flight (transfer/internal/
// readahead over github.com/pkg/sftp's File.ReadAt, which itself splits a
// block into concurrent 32 KiB requests), so one stream is not bound by
// the round trip. Each OpenRange opens the file and fstat()s the open
// handle: the size and the modification time and size as the version,
// so a file that changes under a download restarts it instead of being
// spliced.
//
// Errors: a missing file, a permission refused, a path that is not a
// regular file, and the connection's own permanent failures (host key,
// authentication; see internal/sshclient) wrap transfer.ErrPermanent. Any
// other failure is retried by the Downloader; a failure of the transport
// retires the SFTP session (and, if it died, the SSH connection) so that
// the retry gets a new one.
package sftp
