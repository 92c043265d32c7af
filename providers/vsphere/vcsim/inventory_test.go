package vcsim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/vmdk"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// fastDir returns a tmpfs directory when the machine has one: the simulator
// creates several files per VM, and large inventories start much faster
// there. Any directory works.
func fastDir(t *testing.T) string {
	t.Helper()
	if d, err := os.MkdirTemp("/dev/shm", "vcsim-test-"); err == nil {
		t.Cleanup(func() { _ = os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

func listVMs(t *testing.T, env *Env) []mo.VirtualMachine {
	t.Helper()
	ctx := context.Background()
	c := login(t, env)
	v, err := view.NewManager(c.Client).CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Destroy(ctx)
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "runtime.powerState", "config.guestId"}, &vms); err != nil {
		t.Fatal(err)
	}
	return vms
}

func TestGenericFleet(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{Dir: fastDir(t), Clusters: 2, StandaloneHosts: 1, GenericVMs: 250,
		VMs: []VMSpec{{Name: "special", Disks: []DiskSpec{{Capacity: mib, Seed: 1}}}}})
	vms := listVMs(t, env)
	if len(vms) != 251 {
		t.Fatalf("%d VMs, want 251", len(vms))
	}
	on := 0
	for _, vm := range vms {
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			on++
		}
	}
	if want := 250 - 84; on != want { // fleet VMs 0, 3, 6, … stay off
		t.Fatalf("%d powered on, want %d", on, want)
	}
	if len(env.VMs()) != 1 {
		t.Fatalf("VMs() lists %d, want only the specified VM", len(env.VMs()))
	}

	vi, ok := env.VM("fleet-00200")
	if !ok || !vi.Generic || vi.InventoryPath != "/DC0/vm/fleet/group-02/fleet-00200" {
		t.Fatalf("fleet VM %+v", vi)
	}
	c := login(t, env)
	if _, err := findVM(t, c, vi.InventoryPath).PowerState(ctx); err != nil {
		t.Fatal(err)
	}

	// Fleet disks are valid, empty streamOptimized VMDKs that export fine.
	vi, _ = env.VM("fleet-00003")
	lease, info := exportLease(t, findVM(t, c, vi.InventoryPath))
	dir := t.TempDir()
	sums := download(t, lease, info, dir)
	if len(info.Items) != 1 || sums["disk-0.vmdk"] != vi.Disks[0].SHA256 {
		t.Fatalf("fleet export: items %d, sums %v, want %s", len(info.Items), sums, vi.Disks[0].SHA256)
	}
	im := disktest.OpenImage(t, filepath.Join(dir, "disk-0.vmdk"), vmdk.Open)
	extents := len(disktest.Extents(t, im))
	capacity := im.Info().VirtualSize
	if err := im.(disk.Checker).Check(ctx); err != nil || extents != 0 || capacity != vi.Disks[0].Capacity || capacity != 100<<30 {
		t.Fatalf("fleet disk: %d extents, capacity %d, %v", extents, capacity, err)
	}
	_ = lease.Complete(ctx)
}

// TestFleetInventory starts a 1,000-VM fleet; BenchmarkStartFleet5000
// starts the 5,000 the discovery benchmark uses.
func TestFleetInventory(t *testing.T) {
	const n = 1000
	env := start(t, Options{Dir: fastDir(t), Clusters: 4, HostsPerCluster: 4, GenericVMs: n})
	vms := listVMs(t, env)
	if len(vms) != n {
		t.Fatalf("%d VMs, want %d", len(vms), n)
	}
	names := map[string]bool{}
	guests := map[string]int{}
	for _, vm := range vms {
		names[vm.Name] = true
		guests[vm.Config.GuestId]++
	}
	if len(names) != n || !names["fleet-00000"] || !names["fleet-00999"] || len(guests) != len(fleetGuests) {
		t.Fatalf("%d distinct names, guests %v", len(names), guests)
	}
}

func BenchmarkStartFleet5000(b *testing.B) {
	for b.Loop() {
		dir, err := os.MkdirTemp("/dev/shm", "vcsim-bench-")
		if err != nil {
			dir = b.TempDir()
		}
		env, err := Start(context.Background(), Options{Dir: dir, Clusters: 4, HostsPerCluster: 4, GenericVMs: 5000})
		if err != nil {
			b.Fatal(err)
		}
		_ = env.Close()
		_ = os.RemoveAll(dir)
	}
}

func TestDiskSourcesAndFormats(t *testing.T) {
	raw := make([]byte, 3*mib+4096)
	if _, err := io.ReadFull(vmdk.GenerateRaw(5, int64(len(raw))), raw); err != nil {
		t.Fatal(err)
	}
	rawFile := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(rawFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	padded := append(bytes.Clone(raw), make([]byte, 4*mib-len(raw))...)

	env := start(t, Options{VMs: []VMSpec{{
		Name: "sources", NoNVRAM: true, PowerState: types.VirtualMachinePowerStateSuspended,
		Disks: []DiskSpec{
			{Capacity: 4 * mib, Reader: bytes.NewReader(raw), Controller: "sata"},
			{Capacity: 4 * mib, File: rawFile, Controller: "nvme"},
			{Capacity: 8 * mib, Seed: 9, Used: 2 * mib, Format: Verbatim, Controller: "ide"},
			{Capacity: 2 * mib, Seed: 10, Controller: "buslogic", Thick: true},
			{Capacity: 2 * mib, Seed: 11, Controller: "lsilogic-sas"},
		},
	}}})
	vi, _ := env.VM("sources")
	if vi.NVRAM != nil || vi.PowerState != types.VirtualMachinePowerStateSuspended {
		t.Fatalf("NVRAM %v, power %s", vi.NVRAM, vi.PowerState)
	}
	want := hexSHA(padded)
	if vi.Disks[0].RawSHA256 != want || vi.Disks[1].RawSHA256 != want {
		t.Fatalf("reader and file sources: raw SHA-256 %s and %s, want %s", vi.Disks[0].RawSHA256, vi.Disks[1].RawSHA256, want)
	}
	// Verbatim: the served file is the raw disk itself, full capacity.
	gen := append(make([]byte, 0, 8*mib), must(io.ReadAll(vmdk.GenerateRaw(9, 2*mib)))...)
	gen = append(gen, make([]byte, 6*mib)...)
	if d := vi.Disks[2]; d.Size != 8*mib || d.SHA256 != hexSHA(gen) || d.RawSHA256 != d.SHA256 || disktest.FileSHA256(t, d.Path) != d.SHA256 {
		t.Fatalf("verbatim disk %+v", d)
	}
	ids := []string{"VirtualAHCIController0:0", "VirtualNVMEController0:0", "VirtualIDEController0:0", "VirtualBusLogicController0:0", "VirtualLsiLogicSASController1:0"}
	for i, d := range vi.Disks {
		if !strings.HasSuffix(d.DeviceID, "/"+ids[i]) {
			t.Errorf("disk %d device ID %s, want …/%s", i, d.DeviceID, ids[i])
		}
	}

	// A source larger than the disk is refused.
	_, err := Start(context.Background(), Options{VMs: []VMSpec{{Name: "big", Disks: []DiskSpec{{Capacity: mib, Reader: bytes.NewReader(raw)}}}}})
	if !errors.Is(err, vmdk.ErrSourceTooLarge) {
		t.Fatalf("oversized source: %v", err)
	}
	for _, bad := range []VMSpec{
		{Name: "a/b"},
		{Name: "x", Disks: []DiskSpec{{Capacity: 1000}}},
		{Name: "x", Firmware: "uefi"},
		{Name: "x", Datastore: "nope"},
		{Name: "x", Disks: []DiskSpec{{Capacity: mib, Controller: "floppy"}}},
	} {
		if _, err := Start(context.Background(), Options{VMs: []VMSpec{bad}}); err == nil {
			t.Errorf("spec %+v accepted", bad)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDemoSpec(t *testing.T) {
	ctx := context.Background()
	spec := DemoSpec()
	env := start(t, spec)
	vms := env.VMs()
	if len(vms) != len(spec.VMs) {
		t.Fatalf("%d VMs", len(vms))
	}
	var multi, on int
	var content int64
	for _, vm := range vms {
		if len(vm.Disks) > 1 {
			multi++
		}
		if vm.PowerState == types.VirtualMachinePowerStatePoweredOn {
			on++
		}
	}
	for _, s := range spec.VMs {
		for _, d := range s.Disks {
			content += d.Used
		}
	}
	if multi == 0 || on == 0 || content > 200*mib {
		t.Fatalf("demo needs a multi-disk VM (%d) and a powered-on VM (%d), and at most 200 MiB of content (%d)", multi, on, content>>20)
	}

	// Export the multi-disk VM end to end.
	vi, _ := env.VM("db-01")
	c := login(t, env)
	lease, info := exportLease(t, findVM(t, c, vi.InventoryPath))
	sums := download(t, lease, info, t.TempDir())
	for _, d := range vi.Disks {
		if sums[d.TargetID] != d.SHA256 {
			t.Fatalf("%s: %s, want %s", d.TargetID, sums[d.TargetID], d.SHA256)
		}
	}
	if err := lease.Complete(ctx); err != nil {
		t.Fatal(err)
	}

	// The served bytes are a function of the spec alone: regenerating a disk
	// from its seed gives the same file.
	legacy := spec.VMs[len(spec.VMs)-1]
	d := legacy.Disks[0]
	var buf bytes.Buffer
	if _, err := vmdk.WriteStreamOptimized(&buf, vmdk.GenerateRaw(d.Seed, d.Used), d.Capacity,
		vmdk.WriteOptions{FileName: legacy.Name + ".vmdk", AdapterType: "lsilogic"}); err != nil {
		t.Fatal(err)
	}
	li, _ := env.VM(legacy.Name)
	if hexSHA(buf.Bytes()) != li.Disks[0].SHA256 {
		t.Fatal("regenerated demo disk differs from the served file")
	}
}
