package proxmox

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

// Discovery reads the listing and each VM's configuration: CPUs, memory,
// firmware, guest OS, UUID, NICs and disks (no CD-ROM), containers from
// the listing; lookups by VMID, name, path and UUID; filters.
func TestDiscovery(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	p := f.provider(t, f.config())
	ctx := context.Background()
	all, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, vm := range all {
		paths = append(paths, vm.Path)
	}
	if want := []string{"/pve1/tmpl-debian", "/pve1/web-1", "/pve2/ct-1", "/pve2/db-1"}; !slices.Equal(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
	web, err := p.GetVM(ctx, "/pve1/web-1")
	if err != nil {
		t.Fatal(err)
	}
	if web.ID != "100" || web.CPUs != 2 || web.MemoryMiB != 2048 || web.Firmware != "efi" || web.GuestOS != "otherLinux64Guest" ||
		web.PowerState != providers.PowerOn || web.UUID != "7d9e3b62-3c1e-4f4e-9a51-7a4c1b9e0a01" || web.Labels[LabelMachine] != "q35" {
		t.Errorf("web-1: %+v", web)
	}
	wantDisks := []providers.DiskInfo{
		{Label: "scsi0", CapacityBytes: 40<<20 + 20<<10 + 512, Path: "local-lvm:vm-100-disk-0", Controller: "scsi0"},
		{Label: "virtio1", CapacityBytes: 24<<20 + 4<<10, Path: "local-lvm:vm-100-disk-1", Controller: "virtio1"},
	}
	if !slices.Equal(web.Disks, wantDisks) {
		t.Errorf("web-1 disks %+v, want %+v", web.Disks, wantDisks)
	}
	wantNICs := []providers.NICInfo{
		{Label: "net0", Network: "vmbr0", MAC: "BC:24:11:00:01:00", Type: "virtio"},
		{Label: "net1", Network: "vmbr1.20", MAC: "BC:24:11:00:01:01", Type: "e1000"},
	}
	if !slices.Equal(web.NICs, wantNICs) {
		t.Errorf("web-1 NICs %+v", web.NICs)
	}
	for _, id := range []string{"100", "web-1", "7D9E3B62-3C1E-4F4E-9A51-7A4C1B9E0A01"} {
		if vm, err := p.GetVM(ctx, id); err != nil || vm.ID != "100" {
			t.Errorf("GetVM(%q): %v %v", id, vm, err)
		}
	}
	db, err := p.GetVM(ctx, "101")
	if err != nil {
		t.Fatal(err)
	}
	if db.CPUs != 2 || db.Firmware != "bios" || db.GuestOS != "windows9_64Guest" || db.Disks[0].ControllerModel != "sata" || db.PowerState != providers.PowerOff {
		t.Errorf("db-1: %+v", db)
	}
	if tmpl, err := p.GetVM(ctx, "900"); err != nil || tmpl.Labels[LabelTemplate] != "1" {
		t.Errorf("template: %+v %v", tmpl, err)
	}
	if _, err := p.GetVM(ctx, "404"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("missing VM: %v", err)
	}
	off, err := p.ListVMs(ctx, providers.VMFilter{PowerState: providers.PowerOff, Name: "*-*"})
	if err != nil || len(off) != 2 || off[0].Name != "tmpl-debian" || off[1].Name != "db-1" {
		t.Errorf("stopped VMs named *-*: %v %v", off, err)
	}
	if _, err := p.ListVMs(ctx, providers.VMFilter{Name: "["}); !errors.Is(err, providers.ErrInvalidArgument) {
		t.Errorf("bad pattern: %v", err)
	}
	found, err := p.SearchVMs(ctx, "WIN")
	if err != nil || len(found) != 1 || found[0].Name != "db-1" {
		t.Errorf("search: %v %v", found, err)
	}
	// Two VMs of one name: ambiguous by name, found by VMID.
	if err := f.st.Update(func(inv *pvefake.Inventory) error {
		vm := *inv.VM(101)
		vm.VMID, vm.Config = 102, map[string]string{"name": "db-1"}
		inv.VMs = append(inv.VMs, vm)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetVM(ctx, "db-1"); !errors.Is(err, providers.ErrAmbiguous) {
		t.Errorf("two VMs named db-1: %v", err)
	}
}
