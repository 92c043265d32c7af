// Package sshclient is HyperSDK's one SSH client factory: every SSH
// connection of the project (SFTP downloads through transfer/sftp, remote
// commands such as Proxmox's `vzdump --stdout` and `pvesm export`) is made
// and kept here.
//
// Host keys are always verified, against known_hosts lines (hashed host
// names and @cert-authority lines included, as OpenSSH reads them) or SHA256
// fingerprints; there is no way to skip the check. A key that is not
// trusted is refused with a message that prints the fingerprint the server
// offered, so that an operator can compare it out of band and add it. Users
// log in with a private key and/or a password (sent for "password" and for
// a single-prompt "keyboard-interactive" exchange). Secrets never appear in
// errors or log lines: only the user name, the address and fingerprints do.
//
// A Client holds at most one connection and opens it on first use. A
// keepalive (keepalive@openssh.com) every KeepAlive interval detects a dead
// peer: after three unanswered ones the connection is closed, so that reads
// stuck on it fail, and the next use dials again. Errors that another
// attempt cannot fix (ErrAuth, ErrHostKey, a bad configuration) wrap
// transfer.ErrPermanent.
package sshclient
