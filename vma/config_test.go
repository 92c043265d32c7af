package vma_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/vma"
)

// TestParseConfig reads the vzdump-style configuration the archives carry:
// every field an OVF needs, drives mapped to their archive devices.
func TestParseConfig(t *testing.T) {
	c, err := vma.ParseConfig([]byte(qemuServerConf))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "web01" || c.Sockets != 2 || c.Cores != 2 || c.CPUs() != 4 || c.MemoryMiB != 4096 || c.BIOS != "ovmf" || !c.UEFI() ||
		c.Machine != "q35" || c.OSType != "l26" || c.SCSIHW != "virtio-scsi-single" || c.CPUModel != "x86-64-v2-AES" ||
		c.SMBIOSUUID != "2c4a2cda-712b-44ab-8728-51f5e734b658" || !reflect.DeepEqual(c.Tags, []string{"prod", "web"}) {
		t.Fatalf("parsed %+v", c)
	}
	if c.Description != "web server: production\nsecond line" {
		t.Fatalf("description %q", c.Description)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings %v", c.Warnings)
	}
	want := []vma.Drive{
		{Key: "efidisk0", Bus: "efidisk", Index: 0, Volume: "local-lvm:vm-101-disk-2", Size: 528 << 10, Media: "disk", Backup: true,
			Device: "drive-efidisk0", Storage: "local-lvm", StorageFormat: "raw", Options: map[string]string{"efitype": "4m", "pre-enrolled-keys": "1"}},
		{Key: "ide2", Bus: "ide", Index: 2, Volume: "local:iso/debian-12.iso", Size: 628 << 20, Media: "cdrom", Backup: true},
		{Key: "scsi0", Bus: "scsi", Index: 0, Volume: "local-lvm:vm-101-disk-0", Size: 3 << 20, Media: "disk", Backup: true,
			Device: "drive-scsi0", Storage: "local-lvm", StorageFormat: "raw", Options: map[string]string{"iothread": "1"}},
		{Key: "virtio1", Bus: "virtio", Index: 1, Volume: "local-lvm:vm-101-disk-1", Size: 8 << 20, Media: "disk", Backup: true,
			Device: "drive-virtio1", Storage: "local-lvm", StorageFormat: "raw", Options: map[string]string{"discard": "on"}},
	}
	if !reflect.DeepEqual(c.Disks, want) {
		t.Fatalf("disks:\n%+v\nwant\n%+v", c.Disks, want)
	}
	if !c.Disks[1].CDROM() || c.Disks[0].CDROM() {
		t.Fatal("CDROM()")
	}
	nics := []vma.NIC{
		{Key: "net0", Model: "virtio", MAC: "BC:24:11:A3:DA:B1", Bridge: "vmbr0", Firewall: true},
		{Key: "net1", Model: "e1000", MAC: "BC:24:11:79:D5:65", Bridge: "vmbr1", VLAN: 42, LinkDown: true},
	}
	if !reflect.DeepEqual(c.NICs, nics) {
		t.Fatalf("nics %+v", c.NICs)
	}
	if d, ok := c.DiskForDevice("drive-virtio1"); !ok || d.Key != "virtio1" {
		t.Fatalf("DiskForDevice: %+v %v", d, ok)
	}
	if c.Options["agent"] != "1" || c.Options["vmgenid"] != "713da648-38a6-489e-b0b2-dd9cef419f33" {
		t.Fatalf("options %v", c.Options)
	}
}

// TestParseConfigDefaultsAndOddities: qemu-server's defaults, PVE 8's
// "memory: current=…", snapshot and pending sections (skipped), drives
// excluded from backup, CRLF, and lines it cannot read (warnings).
func TestParseConfigDefaultsAndOddities(t *testing.T) {
	c, err := vma.ParseConfig([]byte("name: bare\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "bare" || c.CPUs() != 1 || c.MemoryMiB != 512 || c.BIOS != "seabios" || c.OSType != "other" || c.SCSIHW != "lsi" || len(c.Disks) != 0 {
		t.Fatalf("defaults %+v", c)
	}
	conf := strings.Join([]string{
		"memory: current=2048",
		"cores: many",
		"bios: coreboot",
		"this is not an option",
		"sata1: local:100/vm-100-disk-0.qcow2,backup=0,size=1.5G",
		"scsi10: none,media=cdrom",
		"scsi2: vol2,size=2T",
		"unused0: local-lvm:vm-100-disk-9",
		"description: first%20part",
		"[PENDING]",
		"memory: 8192",
		"[before-upgrade]",
		"cores: 16",
		"name: old",
		"",
	}, "\n")
	c, err = vma.ParseConfig([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	if c.MemoryMiB != 2048 || c.Cores != 1 || c.BIOS != "seabios" || c.Name != "" || c.Description != "first part" {
		t.Fatalf("parsed %+v", c)
	}
	if !reflect.DeepEqual(c.Snapshots, []string{"before-upgrade"}) {
		t.Fatalf("snapshots %v", c.Snapshots)
	}
	if len(c.Warnings) != 3 {
		t.Fatalf("warnings %q, want 3 (cores, bios, the bad line)", c.Warnings)
	}
	keys := []string{}
	for _, d := range c.Disks {
		keys = append(keys, d.Key)
	}
	if !reflect.DeepEqual(keys, []string{"sata1", "scsi2", "scsi10"}) {
		t.Fatalf("drive order %v", keys)
	}
	if c.Disks[0].Backup || c.Disks[0].Size != 1536<<20 || c.Disks[1].Size != 2<<40 || !c.Disks[2].CDROM() || c.Disks[2].Volume != "none" {
		t.Fatalf("drives %+v", c.Disks)
	}
	for _, bad := range [][]byte{{0xff, 0xfe}, []byte("name: a\x00b")} {
		if _, err := vma.ParseConfig(bad); err == nil {
			t.Fatalf("%q accepted as a configuration", bad)
		}
	}
}
