package azure

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
)

func names(vms []*providers.VMInfo) []string {
	var out []string
	for _, vm := range vms {
		out = append(out, vm.Path)
	}
	return out
}

// Discovery pages through the VMs (list pages of three), describes each
// with its size, power state, OS, firmware, disks and NICs, and applies
// the shared filter.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	f := newFixture(t, spec, fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{})
	p := f.connected(t)
	ctx := context.Background()

	all, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/db-rg/batch-0", "/db-rg/batch-1", "/db-rg/batch-2", "/db-rg/batch-3", "/db-rg/batch-4", "/db-rg/db-1", "/db-rg/twin", "/prod-rg/pair", "/prod-rg/twin", "/prod-rg/web-1"}
	if got := names(all); !slices.Equal(got, want) {
		t.Fatalf("ListVMs: %v, want %v", got, want)
	}
	if n := f.arm.Stats().Requests["VirtualMachinesClient.NewListAllPager"]; n < 4 {
		t.Errorf("%d list pages for 10 VMs in pages of 3", n)
	}

	web, err := p.GetVM(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if web.CPUs != 4 || web.MemoryMiB != 16384 || web.PowerState != providers.PowerOn || web.GuestOS != "ubuntu 22.04" ||
		web.Firmware != "efi" || web.Datacenter != testLocation || web.UUID == "" || !strings.HasSuffix(web.ID, "/resourceGroups/prod-rg/providers/Microsoft.Compute/virtualMachines/web-1") {
		t.Errorf("web-1: %+v", web)
	}
	var disks []string
	for _, d := range web.Disks {
		disks = append(disks, d.Label)
		if !strings.Contains(d.Path, "/providers/Microsoft.Compute/disks/web-1-") || d.CapacityBytes != diskOf(spec, d.Path[strings.LastIndex(d.Path, "/")+1:]).Content.Size() {
			t.Errorf("web-1 disk %+v", d)
		}
	}
	if !slices.Equal(disks, []string{"os", "lun0", "lun1"}) {
		t.Errorf("web-1 disks %v, want os, lun0, lun1", disks)
	}
	for k, v := range map[string]string{
		LabelVMSize: "Standard_D4s_v5", LabelZone: "2", LabelResourceGroup: "prod-rg", LabelSecurityType: "TrustedLaunch",
		LabelDiskSKU + "os": "Premium_LRS", LabelDiskSKU + "lun1": "StandardSSD_LRS", "env": "prod",
		LabelImage: "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:22.04.202411010",
	} {
		if web.Labels[k] != v {
			t.Errorf("web-1 label %s = %q, want %q", k, web.Labels[k], v)
		}
	}
	if len(web.NICs) != 1 || web.NICs[0].Network != "web-1-nic" {
		t.Errorf("web-1 NICs %+v", web.NICs)
	}
	db, err := p.GetVM(ctx, "db-1")
	if err != nil {
		t.Fatal(err)
	}
	if db.PowerState != providers.PowerOff || db.Firmware != "bios" || db.CPUs != 8 || !strings.HasPrefix(db.GuestOS, "Linux") {
		t.Errorf("db-1 (stopped): %+v", db)
	}

	// Every identifier finds the VM; a bare name two VMs carry is
	// ambiguous; what does not exist is not found, for good.
	for _, ident := range []string{web.ID, strings.ToLower(web.ID), web.Path, "prod-rg/web-1", web.UUID, strings.ToUpper(web.UUID)} {
		got, err := p.GetVM(ctx, ident)
		if err != nil || got.ID != web.ID {
			t.Errorf("GetVM(%q): %v %v", ident, got, err)
		}
	}
	if _, err := p.GetVM(ctx, "twin"); !errors.Is(err, providers.ErrAmbiguous) || !strings.Contains(err.Error(), "/db-rg/twin, /prod-rg/twin") {
		t.Errorf("GetVM(twin): %v, want ErrAmbiguous naming both paths", err)
	}
	for _, ident := range []string{"nope", "/prod-rg/nope", "/subscriptions/" + testSubscription + "/resourceGroups/prod-rg/providers/Microsoft.Compute/virtualMachines/nope",
		"/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/prod-rg/providers/Microsoft.Compute/virtualMachines/web-1", "00000000-0000-4000-8000-000000000000"} {
		if _, err := p.GetVM(ctx, ident); !errors.Is(err, providers.ErrNotFound) || !providers.IsPermanent(err) {
			t.Errorf("GetVM(%q): %v, want a permanent ErrNotFound", ident, err)
		}
	}
	if _, err := p.GetVM(ctx, "/subscriptions/"+testSubscription+"/resourceGroups/prod-rg/providers/Microsoft.Compute/disks/web-1-os"); !errors.Is(err, providers.ErrInvalidArgument) {
		t.Errorf("GetVM of a disk's id: %v", err)
	}

	for _, tc := range []struct {
		f    providers.VMFilter
		want []string
	}{
		{providers.VMFilter{Name: "batch-[13]"}, []string{"/db-rg/batch-1", "/db-rg/batch-3"}},
		{providers.VMFilter{FolderPrefix: "/prod-rg"}, []string{"/prod-rg/pair", "/prod-rg/twin", "/prod-rg/web-1"}},
		{providers.VMFilter{PowerState: providers.PowerOff, FolderPrefix: "/db-rg/"}, []string{"/db-rg/batch-1", "/db-rg/batch-3", "/db-rg/db-1"}},
		{providers.VMFilter{GuestOS: "windows"}, []string{"/prod-rg/pair"}},
		{providers.VMFilter{Datacenter: "eastus"}, nil},
	} {
		got, err := p.ListVMs(ctx, tc.f)
		if err != nil || !slices.Equal(names(got), tc.want) {
			t.Errorf("ListVMs(%+v) = %v, %v; want %v", tc.f, names(got), err, tc.want)
		}
	}
	if _, err := p.ListVMs(ctx, providers.VMFilter{Name: "["}); !errors.Is(err, providers.ErrInvalidArgument) {
		t.Errorf("a bad pattern: %v", err)
	}
	found, err := p.SearchVMs(ctx, "STANDARD_E8")
	if err != nil || !slices.Equal(names(found), []string{"/db-rg/db-1"}) {
		t.Errorf("SearchVMs: %v %v", names(found), err)
	}

	// resource_groups limits everything to those groups.
	cfg := f.config(testSecret)
	cfg.ResourceGroups = []string{"PROD-rg"}
	scoped := f.provider(t, cfg)
	if err := scoped.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer scoped.Disconnect()
	got, err := scoped.ListVMs(ctx, providers.VMFilter{})
	if err != nil || !slices.Equal(names(got), []string{"/prod-rg/pair", "/prod-rg/twin", "/prod-rg/web-1"}) {
		t.Errorf("scoped ListVMs: %v %v", names(got), err)
	}
	if vm, err := scoped.GetVM(ctx, "twin"); err != nil || vm.Path != "/prod-rg/twin" {
		t.Errorf("scoped GetVM(twin): %v %v", vm, err)
	}
	if _, err := scoped.GetVM(ctx, "/db-rg/db-1"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("scoped GetVM of another group's VM: %v", err)
	}
}
