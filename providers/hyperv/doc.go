// Package hyperv is the Hyper-V provider: discovery of a host's VMs and the
// platform side of an export, over WinRM (github.com/masterzen/winrm) for
// control and SMB or SFTP for the files — platform talk only.
//
// Connection (Config): WinRM over HTTPS (5986; NTLM, or Basic) or over
// HTTP with NTLM message encryption (winrm.NewEncryption("ntlm"), so the
// host needs no AllowUnencrypted; Basic is refused there). TLS is always
// verified, against the system roots or ca_file/ca_pem. Passwords are
// config.Secret values: never printed, logged or put in an argument list
// (WinRM carries them in the Authorization header or the NTLM exchange).
//
// PowerShell (internal/ps): every script is a Go constant. The only text
// added at run time is $b64='<base64 of the JSON input>'; in front of it,
// whose alphabet cannot leave the quotes, and the script decodes it with
// [Convert]::FromBase64String and ConvertFrom-Json: a VM name, a path or
// a job id is data, never code. Each script answers one ConvertTo-Json
// -Compress line, {"ok":true,"result":…} or {"ok":false,"error":{type,
// message,id}} (a ScriptError). Scripts stay well under the 8191-character
// command line -EncodedCommand (base64 UTF-16LE) is given.
//
// Discovery: Get-VM (id, name, state, generation, processors, startup
// memory, notes), Get-VMNetworkAdapter (switch, MAC) and per drive
// Get-VMHardDiskDrive + Get-VHD (controller, path, format, type, size,
// the parent chain of a differencing disk). A VM is found by its VMId or
// by its name (ErrAmbiguous when several share it). Generation 2 is UEFI,
// 1 BIOS; Running is powered on, Off off, Saved and Paused suspended.
//
// Export (PrepareExport): everything on the host carries the job id,
// fixed before it is created: the staging folder <staging_path>\
// hypersdk-<job id> and, for a VM that is not off, the checkpoint
// hypersdk-<job id>.
//
//   - a VM that is off: Export-VM into the folder;
//   - otherwise: Checkpoint-VM (the VM's checkpoint type: Production by
//     default, application-consistent through the guest's VSS, falling
//     back to a standard checkpoint when the guest cannot quiesce),
//     Export-VMSnapshot of it into the folder;
//   - then every exported disk that has a parent (an .avhdx, or a disk
//     that was differencing before the checkpoint) is merged with its
//     chain in the staging copy by Convert-VHD into a new dynamic VHDX, so
//     what comes back is one self-contained VHDX per drive. Merging on the
//     host rather than reading the chain here costs the host one copy of
//     the disk, but moves only what the guest sees and never hands over a
//     disk that needs another file to be read.
//
// Files never come back through WinRM: each staged VHDX is read over SMB
// (transfer/smb) or SFTP (transfer/sftp, host keys verified) by the
// transfer Downloader — parallel ranges, resumed from its part file by a
// later attempt — beside the output, then decoded by disk/vhdx for the
// pipeline as the guest's bytes; the local copy is removed after.
//
// The stage script writes staged.json into the folder last. An attempt
// of a job whose earlier attempt was killed after staging (the folder
// complete, the job's checkpoint still there) reuses both as they are, so
// the downloads resume from the part files kept beside the output; any
// other leftover of the job is removed and the disks staged again.
//
// Cleanup removes the checkpoint (Remove-VMSnapshot: Hyper-V merges the
// VM's .avhdx back) and the staging folder on a context of its own,
// whatever ended the export (a failed or cancelled attempt too, so its
// retry stages again); a failed PrepareExport has already removed them. SweepOrphans (providers.OrphanSweeper) lists checkpoints
// and staging folders named hypersdk-* and removes those of jobs that are
// over: what a kill -9 left.
//
// Power-off is refused: a running VM is exported from a checkpoint, and
// the snapshot option changes nothing.
//
// StartDemo serves a demo host from winrmfake, this package's test target.
package hyperv
