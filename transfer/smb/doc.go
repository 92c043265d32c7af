// Package smb fetches files over SMB2/3 for the transfer engine: a Client
// of one share (github.com/cloudsoda/go-smb2, NTLM user/password/domain)
// hands out transfer.Source files (Client.Source), so an SMB download gets
// everything an HTTP one does — part file, SHA-256 while streaming, resume,
// ChunkConcurrency ranges, retries, bandwidth limit, progress — and removes
// staging files and folders afterwards (Remove, RemoveAll). Hyper-V hosts
// export VMs to a folder that a share exposes; this is how the bytes come
// back, never through WinRM.
//
// Security follows the server: messages are signed when it asks for it
// (Config.RequireSigning refuses a server that does not), and encrypted
// (SMB 3, AES-GCM/CCM) when the server or the share requires encryption.
// The password is never logged or put into an error.
//
// A range is read with several 1 MiB READs in flight (transfer/internal/
// readahead over go-smb2's File.ReadAt; SMB credits pipeline them on the
// one connection). Each OpenRange opens the file, whose CREATE answer
// carries its size and last write time: the version, so a file that
// changes under a download restarts it instead of being spliced. A
// handle is always closed, even after its range was abandoned, so that a
// staging folder can be removed afterwards (servers refuse to delete a
// file that is still open).
//
// A Client holds one session, made on first use; a transport failure
// retires it and the next use (the Downloader's retry) logs in again.
// Errors that another attempt cannot fix — logon refused, no such share,
// no such file, access denied — wrap transfer.ErrPermanent.
package smb
