// Package transfertest holds test helpers for code that hands
// transfer.Source files to a transfer.Downloader: a Source wrapper that
// counts what the Downloader did with it (ranges opened, reads in flight
// at once, bytes read) and can interrupt it after a number of bytes, so
// that tests of real remote-file servers (SFTP, SMB) assert parallelism and
// resume on the bytes that actually crossed the wire.
package transfertest
