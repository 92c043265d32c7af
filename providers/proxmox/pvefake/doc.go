// Package pvefake is the Proxmox provider's test target and the --demo
// backend: a fake Proxmox VE cluster speaking the real protocols, so that
// the provider's real clients run unmodified against it.
//
// Its state (State) lives in a directory — a JSON inventory of VMs,
// containers, volumes and snapshots replaced under an flock, each volume a
// sparse raw image, a log of the node commands run, the backup storages'
// dump directories — so that the API server in the test process and the
// node commands, which a real OpenSSH sshd runs as other processes (its
// forced command re-executes the test binary, which calls Main), share it.
//
// Server is the API over HTTPS with a self-signed certificate: PVE's
// {"data": …} envelope, the reason in the status line, API-token
// (Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET) and ticket
// authentication (POST /access/ticket, the PVEAuthCookie cookie, the
// CSRFPreventionToken header required on writes), and the endpoints a
// backup tool uses: /version, /cluster/resources, a VM's config, status
// and snapshots, a container's config, POST /nodes/{node}/vzdump as a task
// writing an archive into a storage (the notes template applied), task
// status and log, a storage's backup content and its deletion.
//
// Run plays the node commands: `vzdump VMID --stdout` writes a VMA archive
// of the VM's disks as vma-writer.c does (package vma/vmatest; clusters
// shuffled as a snapshot-mode backup sends them) with its configuration
// and vzdump's "#qmdump#map" lines, compressed with zstd or gzip; `pvesm
// export VOLID raw+size - [--snapshot NAME]` writes pve-storage's stream
// (the size as 8 bytes little-endian, then the raw bytes); `qm snapshot`
// and `qm delsnapshot` keep the snapshots. Faults slow or break streams
// and lose a snapshot command's answer. SSHServer runs the same commands
// for an in-process SSH server (golang.org/x/crypto/ssh), the demo's.
//
// Leftovers lists what exports may have left (snapshots named hypersdk…,
// backups, half-written dumps): tests ask it after every export.
package pvefake
