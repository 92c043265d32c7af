// Package winrmfake is the Hyper-V provider's test target and demo
// backend: a WS-Management server (httptest, HTTPS) that speaks the WinRM
// remote shell protocol as the real github.com/masterzen/winrm client
// sends it — Create (shell), Command, Receive (base64 stdout/stderr
// streams, CommandState Done with the exit code, an OperationTimeout
// fault while a command still runs), Send, Signal (terminate), Delete —
// and plays the provider's PowerShell scripts against a Host.
//
// Authentication is HTTP Basic, or with Options.NTLM the NTLM handshake
// of WinRM's Negotiate scheme (NTLMv2 responses checked as MS-NLMP says),
// over TLS; anything else is answered 401 with the schemes offered. Unlike
// a real server, the fake does not bind the handshake to one connection:
// an AUTHENTICATE may answer any outstanding CHALLENGE (Go's transport
// sometimes sends it on a fresh connection, which made the test flaky —
// whether real WinRM needs the client pinned to one connection is open).
// NTLM message encryption (sealing, for WinRM over plain HTTP) is not
// implemented here: the provider's HTTP transport is configured through
// the library but not run against this server.
//
// A command line must be powershell.exe -EncodedCommand <base64 UTF-16LE>;
// the script, once decoded, must be $b64='…'; followed by exactly one of
// the provider's script constants (anything else fails as PowerShell
// would). Every script run is recorded (Host.Calls) with its decoded text
// and JSON input, so tests can assert what reached the host.
//
// Host plays the cmdlets against an inventory in memory and files under a
// directory (C:\a\b is Root/C/a/b; Mount puts a Windows folder elsewhere,
// e.g. a Samba share's directory): Get-VM, Get-VHD (the disk package's
// VHDX reader), Export-VM and Export-VMSnapshot (the VM's folder with its
// disks and their parent chains), Checkpoint-VM (a new empty .avhdx over
// each drive, as Hyper-V makes one), Remove-VMSnapshot (the .avhdx merged
// back and removed), Convert-VHD (the chain read and written as a dynamic
// VHDX), Remove-Item, and the leftovers listing. FailNext and Block inject
// a cmdlet error or a command that never ends.
//
// WriteDynamic (the disk package's writer) and WriteDifferencing (written
// from MS-VHDX, independently of that package) make disks; StartSFTP
// serves a directory read-only over SFTP (x/crypto/ssh + pkg/sftp) for
// the demo.
package winrmfake
