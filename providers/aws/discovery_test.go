package aws

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

func TestListVMsPagesAndMapsInstances(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{}, 0)
	p := f.connected(t)
	ctx := context.Background()

	before := f.srv.Stats().Requests["DescribeInstances"]
	vms, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// 15 live instances in pages of 5: at least three pages.
	if got := f.srv.Stats().Requests["DescribeInstances"] - before; got < 3 {
		t.Errorf("DescribeInstances called %d times for 15 instances in pages of 5", got)
	}
	if len(vms) != 15 {
		t.Fatalf("listed %d instances, want 15 (the terminated one left out)", len(vms))
	}
	if !slices.IsSortedFunc(vms, func(a, b *providers.VMInfo) int {
		if a.Name != b.Name {
			return map[bool]int{true: -1, false: 1}[a.Name < b.Name]
		}
		return map[bool]int{true: -1, false: 1}[a.ID < b.ID]
	}) {
		t.Error("not sorted by name then id")
	}
	web := vms[slices.IndexFunc(vms, func(v *providers.VMInfo) bool { return v.Name == "web-1" })]
	if web.ID != "i-0000000000000000a" || web.Provider != "aws-test" || web.PowerState != providers.PowerOn {
		t.Errorf("web-1: %+v", web)
	}
	if web.CPUs != 4 || web.MemoryMiB != 16384 {
		t.Errorf("web-1 (m5.xlarge): %d vCPUs, %d MiB, want 4 and 16384 from DescribeInstanceTypes", web.CPUs, web.MemoryMiB)
	}
	if web.Firmware != "efi" || web.GuestOS != "Linux/UNIX" || web.Datacenter != testRegion+"a" {
		t.Errorf("web-1: firmware %q guest %q zone %q", web.Firmware, web.GuestOS, web.Datacenter)
	}
	if web.Labels["env"] != "prod" || web.Labels[LabelInstanceType] != "m5.xlarge" || web.Labels[LabelArchitecture] != "x86_64" {
		t.Errorf("web-1 labels %v", web.Labels)
	}
	wantDisks := []providers.DiskInfo{
		{Label: "/dev/xvda", Path: "vol-0000000000000000a", CapacityBytes: 1 << 30},
		{Label: "/dev/sdf", Path: "vol-0000000000000000b", CapacityBytes: 2 << 30},
	}
	if !slices.Equal(web.Disks, wantDisks) {
		t.Errorf("web-1 disks %+v, want the root device first: %+v", web.Disks, wantDisks)
	}
	twin := vms[slices.IndexFunc(vms, func(v *providers.VMInfo) bool { return v.Name == "twin" })]
	if twin.CPUs != 2 || twin.MemoryMiB != 2048 || twin.Firmware != "efi" {
		t.Errorf("twin (t4g.small, arm64): %+v", twin)
	}

	// Instance types are asked once.
	typesBefore := f.srv.Stats().Requests["DescribeInstanceTypes"]
	if _, err := p.ListVMs(ctx, providers.VMFilter{}); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Stats().Requests["DescribeInstanceTypes"]; n != typesBefore {
		t.Errorf("DescribeInstanceTypes asked again (%d → %d) though every type is cached", typesBefore, n)
	}
}

func TestListVMsFilters(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{}, 0)
	p := f.connected(t)
	ctx := context.Background()
	names := func(f providers.VMFilter) []string {
		t.Helper()
		vms, err := p.ListVMs(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, vm := range vms {
			out = append(out, vm.Name)
		}
		return out
	}
	if got, want := names(providers.VMFilter{Name: "batch-0?", PowerState: providers.PowerOff}), []string{"batch-03", "batch-06", "batch-09"}; !slices.Equal(got, want) {
		t.Errorf("stopped batch-0?: %v, want %v", got, want)
	}
	if got := names(providers.VMFilter{Name: "batch-1[0-1]"}); !slices.Equal(got, []string{"batch-10", "batch-11"}) {
		t.Errorf("class pattern: %v", got)
	}
	if got := names(providers.VMFilter{Datacenter: testRegion + "a", Name: "web-*"}); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("zone + name: %v", got)
	}
	if got := names(providers.VMFilter{Datacenter: "ap-south-1a"}); len(got) != 0 {
		t.Errorf("other zone: %v", got)
	}
	if got := names(providers.VMFilter{FolderPrefix: "/prod"}); len(got) != 0 {
		t.Errorf("EC2 has no folders, yet a folder filter matched %v", got)
	}
	if _, err := p.ListVMs(ctx, providers.VMFilter{Name: "["}); !errors.Is(err, providers.ErrInvalidArgument) {
		t.Errorf("bad pattern: %v", err)
	}
}

func TestGetVMByIDAndName(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{}, 0)
	p := f.connected(t)
	ctx := context.Background()
	for _, ident := range []string{"i-0000000000000000a", "web-1"} {
		vm, err := p.GetVM(ctx, ident)
		if err != nil {
			t.Fatalf("GetVM(%q): %v", ident, err)
		}
		if vm.ID != "i-0000000000000000a" || len(vm.Disks) != 2 {
			t.Errorf("GetVM(%q) = %+v", ident, vm)
		}
	}
	_, err := p.GetVM(ctx, "twin")
	if !errors.Is(err, providers.ErrAmbiguous) || !providers.IsPermanent(err) {
		t.Errorf("two instances named twin: %v, want ErrAmbiguous", err)
	}
	vm, err := p.GetVM(ctx, "i-20000000000000002")
	if err != nil || vm.Name != "twin" || vm.PowerState != providers.PowerOff {
		t.Errorf("one twin by id: %+v, %v", vm, err)
	}
	for _, missing := range []string{"no-such-vm", "i-00000000000000fff", "gone", "i-30000000000000001", "web-*"} {
		if _, err := p.GetVM(ctx, missing); !errors.Is(err, providers.ErrNotFound) || !providers.IsPermanent(err) {
			t.Errorf("GetVM(%q): %v, want ErrNotFound", missing, err)
		}
	}
}

func TestSearchVMs(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{}, 0)
	p := f.connected(t)
	vms, err := p.SearchVMs(context.Background(), "WEB")
	if err != nil || len(vms) != 1 || vms[0].Name != "web-1" {
		t.Errorf("search WEB: %v, %v", vms, err)
	}
	vms, err = p.SearchVMs(context.Background(), "t4g.small")
	if err != nil || len(vms) != 2 {
		t.Errorf("search by instance type: %d, %v", len(vms), err)
	}
}

func TestWrongSecretIsErrAuth(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{}, 0)
	p := f.provider(t, "not-the-secret-at-all")
	err := p.Connect(context.Background())
	if !errors.Is(err, providers.ErrAuth) || !providers.IsPermanent(err) {
		t.Fatalf("Connect with a wrong secret: %v, want ErrAuth", err)
	}
}

func TestCapabilities(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{}, 0)
	p := f.connected(t)
	c := p.GetExportCapabilities()
	for _, format := range providers.Formats() {
		for _, df := range providers.DiskFormats() {
			if err := c.Validate(providers.ExportOptions{Format: format, DiskFormat: providers.DiskFormat(df), Snapshot: true}); err != nil {
				t.Errorf("format %s, disk format %s: %v", format, df, err)
			}
		}
	}
	// Refused before anything is created on the platform.
	_, err := p.PrepareExport(context.Background(), "web-1", providers.ExportOptions{Format: providers.FormatOVF, PowerOff: true, JobID: "job-power-off"})
	if !errors.Is(err, providers.ErrInvalidArgument) || !providers.IsPermanent(err) {
		t.Errorf("power_off: %v, want a permanent ErrInvalidArgument", err)
	}
	if n := f.srv.Stats().Requests["CreateSnapshots"]; n != 0 {
		t.Errorf("a refused export created snapshots (%d calls)", n)
	}
}
