package pvefake

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// ClusterSize is the VMA cluster (64 KiB) the sample layouts are cut in.
const ClusterSize = 64 << 10

// WriteSampleDisk writes a sparse raw image of size bytes at path, laid out
// to exercise a VMA reader: of each 64 KiB cluster, chosen by seed, a
// third are holes, a third are all data and the rest are partial (some of
// their 4 KiB blocks data, the others zeros: a mask with clear bits); one
// cluster is written as explicit zeros; the last cluster, partial when
// size is not a multiple of 64 KiB, holds data up to the end.
func WriteSampleDisk(path string, size int64, seed uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8(seedBytes(seed)))
	clusters := (size + ClusterSize - 1) / ClusterSize
	buf := make([]byte, ClusterSize)
	for c := range clusters {
		off := c * ClusterSize
		n := min(ClusterSize, size-off)
		b := buf[:n]
		clear(b)
		kind := rng.IntN(3)
		switch {
		case c == clusters/2:
			// explicit zeros: written, yet not data
		case c == clusters-1 || kind == 1:
			fill(rng, b)
		case kind == 0:
			continue // a hole
		default:
			for blk := int64(0); blk < n; blk += 4096 {
				if rng.IntN(3) == 0 {
					fill(rng, b[blk:min(blk+4096, n)])
				}
			}
		}
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// WriteLargeSparseDisk writes a sparse raw image of size bytes with
// dataBytes of random data at the start of every stride bytes (and at
// the very end): a large disk that is mostly holes.
func WriteLargeSparseDisk(path string, size, stride, dataBytes int64, seed uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8(seedBytes(seed)))
	buf := make([]byte, dataBytes)
	for off := int64(0); off < size; off += stride {
		fill(rng, buf)
		if _, err := f.WriteAt(buf[:min(dataBytes, size-off)], off); err != nil {
			return err
		}
	}
	tail := min(dataBytes, size)
	fill(rng, buf[:tail])
	if _, err := f.WriteAt(buf[:tail], size-tail); err != nil {
		return err
	}
	return f.Sync()
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	s[31] = 0x9e
	return s
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32() | 1) // never a zero block by chance
	}
}

// SampleOptions shape SampleInventory.
type SampleOptions struct {
	// Nodes are the two node names (default pve1, pve2).
	Nodes [2]string
	// DiskSizes are the sizes of web-1's two disks (default 40 MiB +
	// 20.5 KiB and 24 MiB + 4 KiB: not cluster multiples).
	DiskSizes [2]int64
	// DBDiskSize is db-1's disk size (default 8 MiB).
	DBDiskSize int64
	// Large, when set, writes db-1's disk with WriteLargeSparseDisk
	// (a 1 MiB data region every 64 MiB) instead of the sample layout.
	Large bool
}

// SampleInventory writes the volumes of a sample cluster into dir and
// returns its inventory: on the first node, web-1 (VMID 100, running,
// OVMF, two disks — scsi0 on virtio-scsi and virtio1 — plus an empty
// CD-ROM, and a drive excluded from backups is not there) and a stopped
// template; on the second, db-1 (VMID 101, stopped, SeaBIOS, one SATA
// disk) and ct-1 (VMID 200), an LXC container. Storages: local-lvm for
// images, local (dir) for backups.
func SampleInventory(dir string, o SampleOptions) (Inventory, error) {
	if o.Nodes[0] == "" {
		o.Nodes = [2]string{"pve1", "pve2"}
	}
	if o.DiskSizes[0] == 0 {
		o.DiskSizes = [2]int64{40<<20 + 20<<10 + 512, 24<<20 + 4<<10}
	}
	if o.DBDiskSize == 0 {
		o.DBDiskSize = 8 << 20
	}
	volDir := filepath.Join(dir, "volumes")
	if err := os.MkdirAll(volDir, 0o700); err != nil {
		return Inventory{}, err
	}
	inv := Inventory{Storages: map[string]string{"local": filepath.Join(dir, "storage-local")}}
	addVol := func(id string, size int64, seed uint64, large bool) (string, error) {
		path := filepath.Join(volDir, fmt.Sprintf("vol-%d.raw", len(inv.Volumes)))
		var err error
		if large {
			err = WriteLargeSparseDisk(path, size, 64<<20, 1<<20, seed)
		} else {
			err = WriteSampleDisk(path, size, seed)
		}
		if err != nil {
			return "", err
		}
		inv.Volumes = append(inv.Volumes, Volume{ID: id, Size: size, File: path})
		return id + ",size=" + sizeText(size), nil
	}
	w0, err := addVol("local-lvm:vm-100-disk-0", o.DiskSizes[0], 1, false)
	if err != nil {
		return Inventory{}, err
	}
	w1, err := addVol("local-lvm:vm-100-disk-1", o.DiskSizes[1], 2, false)
	if err != nil {
		return Inventory{}, err
	}
	d0, err := addVol("local-lvm:vm-101-disk-0", o.DBDiskSize, 3, o.Large)
	if err != nil {
		return Inventory{}, err
	}
	t0, err := addVol("local-lvm:base-900-disk-0", 4<<20, 4, false)
	if err != nil {
		return Inventory{}, err
	}
	inv.VMs = []VM{
		{VMID: 100, Node: o.Nodes[0], Name: "web-1", Type: "qemu", Status: "running", Config: map[string]string{
			"name": "web-1", "sockets": "1", "cores": "2", "memory": "2048", "bios": "ovmf", "machine": "q35", "ostype": "l26",
			"scsihw": "virtio-scsi-single", "scsi0": w0 + ",iothread=1", "virtio1": w1,
			"ide2": "none,media=cdrom", "net0": "virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1",
			"net1": "e1000=BC:24:11:00:01:01,bridge=vmbr1,tag=20", "smbios1": "uuid=7d9e3b62-3c1e-4f4e-9a51-7a4c1b9e0a01",
			"boot": "order=scsi0;ide2", "description": "web server\nsecond line",
		}},
		{VMID: 101, Node: o.Nodes[1], Name: "db-1", Type: "qemu", Status: "stopped", Config: map[string]string{
			"name": "db-1", "sockets": "2", "cores": "1", "memory": "1024", "ostype": "win10",
			"sata0": d0, "net0": "e1000=BC:24:11:00:02:00,bridge=vmbr0", "smbios1": "uuid=5c2f1e7a-0b9d-4a3c-8e6f-1d2c3b4a5e02",
		}},
		{VMID: 200, Node: o.Nodes[1], Name: "ct-1", Type: "lxc", Status: "running", Config: map[string]string{
			"hostname": "ct-1", "cores": "1", "memory": "512", "ostype": "debian", "rootfs": "local-lvm:vm-200-disk-0,size=8G",
		}},
		{VMID: 900, Node: o.Nodes[0], Name: "tmpl-debian", Type: "qemu", Status: "stopped", Template: true, Config: map[string]string{
			"name": "tmpl-debian", "cores": "1", "memory": "512", "ostype": "l26", "scsi0": t0, "template": "1",
		}},
	}
	return inv, nil
}

// sizeText writes a size as PVE's config does: whole G, M or K when
// exact, else bytes.
func sizeText(n int64) string {
	for _, u := range []struct {
		suffix string
		unit   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n%u.unit == 0 {
			return strconv.FormatInt(n/u.unit, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Leftovers lists what exports may have left on the cluster: snapshots
// named hypersdk…, backups whose notes name a hypersdk job, and
// half-written dump files.
func (s *State) Leftovers() ([]string, error) {
	inv, err := s.Read()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sn := range inv.Snapshots {
		if len(sn.Name) >= 8 && sn.Name[:8] == "hypersdk" {
			out = append(out, fmt.Sprintf("snapshot %s of VM %d (%s)", sn.Name, sn.VMID, sn.Description))
		}
	}
	backups, err := s.Backups()
	if err != nil {
		return nil, err
	}
	for _, b := range backups {
		out = append(out, fmt.Sprintf("backup %s (notes %q)", b.VolID, b.Notes))
	}
	for _, p := range inv.Storages {
		tmps, _ := filepath.Glob(filepath.Join(p, "dump", "*.tmp"))
		for _, t := range tmps {
			out = append(out, "dump file "+t)
		}
	}
	return out, nil
}
