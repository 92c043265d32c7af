package vcsim

import (
	"context"
	"fmt"

	"github.com/vmware/govmomi/vim25/types"
)

// StartDemo starts the demo vCenter (DemoSpec) in a temporary directory
// that Close removes: what "hypervisord --demo" and "hyperctl export
// --local --demo" serve (vsphere.StartDemo turns it into provider
// settings).
func StartDemo(ctx context.Context) (*Env, error) {
	return Start(ctx, DemoSpec())
}

// DemoSpec is the inventory of "hypervisord --demo": one datacenter (DC0)
// with a two-host cluster and five VMs in production, dev and legacy
// folders — one powered on (web-01), one suspended, one with two disks
// (db-01), two with EFI firmware — whose disks hold about 190 MiB of
// generated content in 1.3 GiB of capacity. Start builds it in a few
// seconds. Names and bytes are the same on every run.
func DemoSpec() Options {
	const mib = 1 << 20
	return Options{
		Datacenters:     1,
		Clusters:        1,
		HostsPerCluster: 2,
		Datastores:      1,
		VMs: []VMSpec{
			{
				Name: "web-01", Folder: "production/web", GuestID: "ubuntu64Guest",
				PowerState: types.VirtualMachinePowerStatePoweredOn, CPUs: 2, MemoryMB: 4096,
				Annotation: "nginx front end (powered on: export it with a snapshot)",
				Disks:      []DiskSpec{{Capacity: 256 * mib, Seed: 101, Used: 40 * mib}},
			},
			{
				Name: "db-01", Folder: "production/db", GuestID: "rhel9_64Guest",
				CPUs: 4, MemoryMB: 8192, Firmware: "efi",
				Annotation: "PostgreSQL primary: system disk and data disk",
				Disks: []DiskSpec{
					{Capacity: 128 * mib, Seed: 201, Used: 32 * mib},
					{Capacity: 512 * mib, Seed: 202, Used: 48 * mib},
				},
			},
			{
				Name: "app-win-01", Folder: "production/apps", GuestID: "windows2019srv_64Guest",
				CPUs: 2, MemoryMB: 8192, Firmware: "efi",
				Disks: []DiskSpec{{Capacity: 256 * mib, Seed: 301, Used: 32 * mib, Controller: "lsilogic-sas"}},
			},
			{
				Name: "dev-ubuntu-01", Folder: "dev", GuestID: "ubuntu64Guest",
				CPUs: 1, MemoryMB: 2048,
				Disks: []DiskSpec{{Capacity: 128 * mib, Seed: 401, Used: 24 * mib}},
			},
			{
				Name: "legacy-centos-01", Folder: "legacy", GuestID: "centos7_64Guest",
				PowerState: types.VirtualMachinePowerStateSuspended, CPUs: 1, MemoryMB: 1024,
				Disks: []DiskSpec{{Capacity: 64 * mib, Seed: 501, Used: 16 * mib, Controller: "lsilogic"}},
			},
		},
	}
}

// DemoSpecWith is DemoSpec with extra VMs bench-001, bench-002, … in
// folder bench, each with one 64 MiB disk holding 4 MiB of generated
// content (distinct per VM): an inventory large enough that a benchmark
// runs more exports at once than the five demo VMs allow (one export of a
// VM runs at a time).
func DemoSpecWith(extra int) Options {
	const mib = 1 << 20
	o := DemoSpec()
	for i := 1; i <= extra; i++ {
		o.VMs = append(o.VMs, VMSpec{
			Name: fmt.Sprintf("bench-%03d", i), Folder: "bench", GuestID: "ubuntu64Guest", CPUs: 1, MemoryMB: 1024,
			Disks: []DiskSpec{{Capacity: 64 * mib, Seed: 1000 + uint64(i), Used: 4 * mib}},
		})
	}
	return o
}
