// Package proxmox is the Proxmox VE provider: discovery of a cluster's
// QEMU VMs through the REST API and the platform side of their export —
// platform talk only; the pipeline packages.
//
// Configuration (Config, Decode): the API URL (checked by the project's
// SSRF guard, private addresses allowed as for vSphere), an API token
// (token_id USER@REALM!TOKENID, token_secret) or a user and password (a
// ticket from /access/ticket, renewed before it expires, its
// CSRFPreventionToken sent on writes), TLS verified by default against
// the system roots, a CA file, or a pinned certificate fingerprint
// (thumbprint: pveproxy's self-signed certificate); the SSH login of the
// nodes (user, private key or password) with every node's host key
// trusted by known_hosts lines or a SHA256 fingerprint (never skipped);
// the default export method and vzdump's mode, compression and, for the
// api method, storage. Secrets are config.Secret: never printed, logged
// or marshalled, and never in an error.
//
// The API client is written here, on the project's HTTP client
// (transfer.NewHTTPClient), rather than taken from go-proxmox: see api.
//
// Discovery: /cluster/resources?type=vm lists QEMU VMs and LXC
// containers (vmid, node, name, status, template); each VM's
// configuration (/nodes/{node}/qemu/{vmid}/config) is parsed by
// vma.ParseConfig — the same parser as the configuration inside a backup
// — for CPUs (sockets × cores), memory, firmware (OVMF is efi), guest OS
// (ostype mapped to a VMware guest id for the descriptor), SMBIOS UUID,
// NICs (model, MAC, bridge and VLAN as the network) and disks (ide, sata,
// scsi and virtio drives that are not CD-ROMs, with bus, volume id and
// size; EFI variables and TPM state are firmware state and left out). A
// VM is found by VMID, name, path ("/node/name") or UUID; containers are
// listed (from the listing: CPUs, memory, root disk size) and refused for
// export with a message saying why.
//
// Export methods (export_method):
//
//   - vzdump (default): over SSH to the VM's node (internal/sshclient),
//     `vzdump VMID --stdout --mode snapshot|suspend|stop --compress zstd`,
//     and the stream is read as it arrives — vma.Decompress, vma.NewReader
//     for the header (the VM's configuration as backed up and its
//     devices, mapped to drives by the "#qmdump#map" lines), then
//     Reader.Extract writes every disk's clusters into the pipeline's
//     sparse raw part files (providers.Export.Fill): one pass, all disks
//     at once, no archive on disk. The command's exit status is checked
//     once the stream ended. A VM with disks excluded from backups
//     (backup=0) is refused: the archive would lack them.
//   - pvesm: each disk as `pvesm export VOLID raw+size -` (pve-storage's
//     stream: the size as 8 bytes little-endian, checked against the
//     configuration, then the raw bytes), read as a raw source; a running
//     VM is exported from a temporary snapshot (`qm snapshot`, named
//     hypersdk_<hash of the job id> before it is taken, the job id in its
//     description), removed with `qm delsnapshot` by Cleanup whatever
//     happened, and by the sweep after a crash.
//   - api: for users without a shell on the nodes' commands: POST
//     /nodes/{node}/vzdump into the configured storage with remove=0 (or
//     the storage's retention would prune the user's backups) and the
//     notes template hypersdk-job=<job id>, the task followed by its UPID
//     (its log names the archive and its errors; a cancelled export stops
//     it), the archive streamed over SFTP (transfer/sftp) through the same
//     reader as vzdump's stream, then deleted through the API; an archive
//     left by a crash is found by its notes and deleted by the sweep.
//
// SweepOrphans (providers.OrphanSweeper, run by the daemon at start and
// periodically) removes the snapshots and dumps of jobs that are over.
//
// StartDemo serves a demo cluster from pvefake, the package's test target,
// with an in-process SSH server playing the nodes' commands.
package proxmox
