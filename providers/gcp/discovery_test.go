package gcp

import (
	"context"
	"errors"
	"testing"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/gcp/gcpfake"
)

func gcpfakeFaultsNone() gcpfake.Faults { return gcpfake.Faults{} }

func TestDiscovery(t *testing.T) {
	f := newFixture(t, testSpec(t), gcpfakeFaultsNone())
	p := f.connected(t)
	ctx := context.Background()
	all, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 9 {
		t.Fatalf("%d instances, want 9 (pages of 2 through both zones)", len(all))
	}
	pair, err := p.GetVM(ctx, "pair")
	if err != nil {
		t.Fatal(err)
	}
	if pair.ID != "1001" || pair.CPUs != 4 || pair.MemoryMiB != 16384 || pair.PowerState != providers.PowerOff ||
		pair.Firmware != "efi" || pair.GuestOS != "debian-12-bookworm" || pair.Datacenter != zoneB ||
		len(pair.Disks) != 2 || pair.Disks[0].CapacityBytes != 1<<30 || pair.Disks[0].Label != "pair-boot" ||
		pair.Labels["env"] != "prod" || pair.Labels[LabelMachineType] != "n2-standard-4" || len(pair.NICs) != 1 {
		t.Errorf("pair: %+v", pair)
	}
	solo, err := p.GetVM(ctx, "solo")
	if err != nil || solo.CPUs != 2 || solo.MemoryMiB != 6144 || solo.PowerState != providers.PowerOn || solo.Firmware != "bios" {
		t.Errorf("solo (custom-2-6144, running): %+v, %v", solo, err)
	}
	for _, ident := range []string{"1001", pair.Path, f.srv.URL() + "/compute/v1/" + pair.Path} {
		got, err := p.GetVM(ctx, ident)
		if err != nil || got.ID != "1001" {
			t.Errorf("GetVM(%q): %+v, %v", ident, got, err)
		}
	}
	if _, err := p.GetVM(ctx, "twin"); !errors.Is(err, providers.ErrAmbiguous) {
		t.Errorf("a name in two zones: %v, want ErrAmbiguous", err)
	}
	if _, err := p.GetVM(ctx, "projects/other-project/zones/"+zoneB+"/instances/pair"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("another project's instance: %v, want ErrNotFound", err)
	}
	inC, err := p.ListVMs(ctx, providers.VMFilter{Datacenter: zoneC})
	if err != nil || len(inC) != 2 {
		t.Errorf("zone filter: %d, %v", len(inC), err)
	}
	batch, err := p.ListVMs(ctx, providers.VMFilter{Name: "batch-*", PowerState: providers.PowerOn})
	if err != nil || len(batch) != 5 {
		t.Errorf("name and power filter: %d, %v", len(batch), err)
	}
	if n := f.srv.Stats()["machineTypes.get"]; n > 6 {
		t.Errorf("%d machineTypes.get calls: the cache does not work", n)
	}
}
