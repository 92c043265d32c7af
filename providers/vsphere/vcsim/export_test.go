package vcsim

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/nfc"
	"github.com/vmware/govmomi/ovf"
	"github.com/vmware/govmomi/vim25/types"
)

func TestExportTwoDisks(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{VMs: []VMSpec{twoDiskVM("exp")}})
	vi, _ := env.VM("exp")
	c := login(t, env)
	vm := findVM(t, c, vi.InventoryPath)

	lease, info := exportLease(t, vm)
	if info.Entity != vi.Ref || info.LeaseTimeout != 300 || info.TotalDiskCapacityInKB != (8+32)*1024 {
		t.Fatalf("lease info: entity %s timeout %d capacity %d KB", info.Entity, info.LeaseTimeout, info.TotalDiskCapacityInKB)
	}
	if len(info.DeviceUrl) != 3 {
		t.Fatalf("%d deviceUrls, want 2 disks and the NVRAM", len(info.DeviceUrl))
	}
	for i, du := range info.DeviceUrl {
		var wantKey, wantTarget string
		var wantDisk bool
		var wantSize int64
		if i < 2 {
			wantKey, wantTarget, wantDisk = vi.Disks[i].DeviceID, vi.Disks[i].TargetID, true
		} else {
			wantKey, wantTarget, wantSize = vi.NVRAM.DeviceID, vi.NVRAM.TargetID, vi.NVRAM.Size
		}
		if du.Key != wantKey || du.TargetId != wantTarget || du.Disk == nil || *du.Disk != wantDisk || du.FileSize != wantSize {
			t.Errorf("deviceUrl %d = %+v", i, du)
		}
		if du.SslThumbprint != env.Thumbprint() || !strings.HasSuffix(du.Url, "/"+wantTarget) || !strings.HasPrefix(du.Url, "https://"+env.URL().Host+"/nfc/") {
			t.Errorf("deviceUrl %d: url %s thumbprint %s", i, du.Url, du.SslThumbprint)
		}
	}
	if err := lease.Progress(ctx, 5); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	sums := download(t, lease, info, dir)
	for _, d := range vi.Disks {
		if sums[d.TargetID] != d.SHA256 {
			t.Errorf("%s: downloaded SHA-256 %s, served file is %s", d.TargetID, sums[d.TargetID], d.SHA256)
		}
	}
	if sums[vi.NVRAM.TargetID] != vi.NVRAM.SHA256 {
		t.Errorf("nvram SHA-256 %s, want %s", sums[vi.NVRAM.TargetID], vi.NVRAM.SHA256)
	}

	// What NFC served is a streamOptimized VMDK that converts back to the raw disk.
	qemu := qemuImg(t)
	disk1 := filepath.Join(dir, "disk-1.vmdk")
	out := runCmd(t, qemu, "info", disk1)
	for _, want := range []string{"file format: vmdk", "create type: streamOptimized", "virtual size: 32 MiB"} {
		if !strings.Contains(out, want) {
			t.Fatalf("qemu-img info lacks %q:\n%s", want, out)
		}
	}
	raw := filepath.Join(dir, "disk-1.raw")
	runCmd(t, qemu, "convert", "-f", "vmdk", "-O", "raw", disk1, raw)
	if got := disktest.FileSHA256(t, raw); got != vi.Disks[1].RawSHA256 {
		t.Fatalf("qemu-img convert -O raw: SHA-256 %s, raw disk is %s", got, vi.Disks[1].RawSHA256)
	}

	manifest, err := lease.GetManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 3 || manifest[0].Key != vi.Disks[0].DeviceID || manifest[0].Size != vi.Disks[0].Size || len(manifest[0].Sha1) != 40 {
		t.Fatalf("manifest %+v", manifest)
	}

	if err := lease.Progress(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := lease.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	rec, ok := env.Lease(lease.Reference())
	if !ok || rec.Outcome != LeaseCompleted || rec.Progress != 100 || rec.ProgressCalls != 2 || rec.VM != "exp" || len(rec.Files) != 3 {
		t.Fatalf("lease record %+v", rec)
	}
	props, err := lease.Properties(ctx, "state", "transferProgress")
	if err != nil {
		t.Fatal(err)
	}
	if props.State != types.HttpNfcLeaseStateDone || props.TransferProgress != 100 {
		t.Fatalf("lease state %s progress %d", props.State, props.TransferProgress)
	}
	// The VM is unlocked again.
	task, err := vm.PowerOn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestExportNeedsPoweredOffVM(t *testing.T) {
	env := start(t, Options{VMs: []VMSpec{
		{Name: "on", PowerState: types.VirtualMachinePowerStatePoweredOn, Disks: []DiskSpec{{Capacity: mib, Seed: 1}}},
		{Name: "suspended", PowerState: types.VirtualMachinePowerStateSuspended, Disks: []DiskSpec{{Capacity: mib, Seed: 2}}},
	}})
	c := login(t, env)
	for _, name := range []string{"on", "suspended"} {
		vi, _ := env.VM(name)
		_, err := findVM(t, c, vi.InventoryPath).Export(context.Background())
		f, ok := faultOf(err).(*types.InvalidPowerState)
		if !ok {
			t.Fatalf("%s: ExportVm error %v, want InvalidPowerState", name, err)
		}
		if f.ExistingState != vi.PowerState || f.RequestedState != types.VirtualMachinePowerStatePoweredOff {
			t.Fatalf("%s: fault %+v", name, f)
		}
	}
	if n := len(env.Leases()); n != 0 {
		t.Fatalf("%d leases recorded for refused exports", n)
	}
}

func TestLeaseLifecycle(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{VMs: []VMSpec{twoDiskVM("life")}})
	vi, _ := env.VM("life")
	c := login(t, env)
	vm := findVM(t, c, vi.InventoryPath)
	lease, info := exportLease(t, vm)

	// While the lease is active the VM is locked.
	if _, err := vm.Export(ctx); faultType(err) != "TaskInProgress" {
		t.Fatalf("second ExportVm: %v, want TaskInProgress", err)
	}
	if _, err := vm.PowerOn(ctx); faultType(err) != "TaskInProgress" {
		t.Fatalf("PowerOn during export: %v, want TaskInProgress", err)
	}
	if err := lease.Progress(ctx, 150); faultType(err) != "InvalidArgument" {
		t.Fatalf("Progress(150): %v, want InvalidArgument", err)
	}

	// Leases are global objects: another session can keep this one alive.
	c2 := login(t, env)
	if err := nfc.NewLease(c2.Client, lease.Reference()).Progress(ctx, 40); err != nil {
		t.Fatalf("progress from another session: %v", err)
	}

	cause := &types.LocalizedMethodFault{Fault: &types.RequestCanceled{}, LocalizedMessage: "export cancelled by HyperSDK"}
	if err := lease.Abort(ctx, cause); err != nil {
		t.Fatal(err)
	}
	rec, _ := env.Lease(lease.Reference())
	if rec.Outcome != LeaseAborted || rec.Progress != 40 || rec.Fault != "RequestCanceled: export cancelled by HyperSDK" {
		t.Fatalf("record after abort: %+v", rec)
	}
	props, err := lease.Properties(ctx, "state", "error")
	if err != nil {
		t.Fatal(err)
	}
	if props.State != types.HttpNfcLeaseStateError || props.Error == nil || props.Error.LocalizedMessage != cause.LocalizedMessage {
		t.Fatalf("lease after abort: state %s error %+v", props.State, props.Error)
	}
	if err := lease.Progress(ctx, 50); faultType(err) != "InvalidState" {
		t.Fatalf("Progress after abort: %v, want InvalidState", err)
	}
	if err := lease.Complete(ctx); faultType(err) != "InvalidState" {
		t.Fatalf("Complete after abort: %v, want InvalidState", err)
	}
	if err := lease.Abort(ctx, nil); faultType(err) != "InvalidState" {
		t.Fatalf("second Abort: %v, want InvalidState", err)
	}
	// Its URLs are gone.
	resp, err := httpClient(env).Get(info.DeviceUrl[0].Url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET after abort: %d, want 404", resp.StatusCode)
	}
	// And the VM is free again: a new export works and completes.
	lease2, _ := exportLease(t, vm)
	if err := lease2.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lease2.Complete(ctx); faultType(err) != "InvalidState" {
		t.Fatalf("second Complete: %v, want InvalidState", err)
	}
	recs := env.Leases()
	if len(recs) != 2 || recs[0].Outcome != LeaseAborted || recs[1].Outcome != LeaseCompleted {
		t.Fatalf("records %+v", recs)
	}
}

func TestLeaseTimeouts(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{LeaseTimeout: 200 * 1e6, VMs: []VMSpec{twoDiskVM("slow")}})
	vi, _ := env.VM("slow")
	c := login(t, env)
	vm := findVM(t, c, vi.InventoryPath)

	// A holder that never reports progress loses the lease.
	lease, _ := exportLease(t, vm)
	eventually(t, "the lease to time out", func() bool {
		r, _ := env.Lease(lease.Reference())
		return r.Outcome == LeaseTimedOut
	})
	if err := lease.Progress(ctx, 10); faultType(err) != "Timedout" {
		t.Fatalf("Progress after timeout: %v, want Timedout", err)
	}
	if err := lease.Complete(ctx); faultType(err) != "Timedout" {
		t.Fatalf("Complete after timeout: %v, want Timedout", err)
	}

	// TimeoutLease does the same on demand.
	lease2, _ := exportLease(t, vm)
	if err := env.TimeoutLease(lease2.Reference()); err != nil {
		t.Fatal(err)
	}
	if err := env.TimeoutLease(lease2.Reference()); err == nil {
		t.Fatal("TimeoutLease on an ended lease must fail")
	}
	props, err := lease2.Properties(ctx, "state", "error")
	if err != nil {
		t.Fatal(err)
	}
	if props.State != types.HttpNfcLeaseStateError || faultName(props.Error) != "Timedout" {
		t.Fatalf("lease after TimeoutLease: %s %+v", props.State, props.Error)
	}
}

func TestCreateDescriptor(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{VMs: []VMSpec{twoDiskVM("desc")}})
	vi, _ := env.VM("desc")
	c := login(t, env)
	vm := findVM(t, c, vi.InventoryPath)
	m := ovf.NewManager(c.Client)

	cdp := types.OvfCreateDescriptorParams{Name: "desc-export", Description: "exported by HyperSDK"}
	for _, d := range vi.Disks {
		cdp.OvfFiles = append(cdp.OvfFiles, types.OvfFile{DeviceId: d.DeviceID, Path: "desc-export-" + d.TargetID, Size: d.Size})
	}
	cdp.OvfFiles = append(cdp.OvfFiles, types.OvfFile{DeviceId: vi.NVRAM.DeviceID, Path: "desc-export-" + vi.NVRAM.TargetID, Size: vi.NVRAM.Size})
	res, err := m.CreateDescriptor(ctx, vm, cdp)
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.CreateDescriptor(ctx, vm, cdp)
	if err != nil || again.OvfDescriptor != res.OvfDescriptor {
		t.Fatalf("descriptor is not deterministic: %v", err)
	}
	e, err := ovf.Unmarshal(strings.NewReader(res.OvfDescriptor))
	if err != nil {
		t.Fatalf("descriptor does not parse: %v\n%s", err, res.OvfDescriptor)
	}

	// References: exactly the files given, with their names and sizes.
	if len(e.References) != 3 {
		t.Fatalf("%d References, want 3:\n%s", len(e.References), res.OvfDescriptor)
	}
	for i, f := range e.References {
		want := cdp.OvfFiles[i]
		if f.Href != want.Path || int64(f.Size) != want.Size || f.ID != "file"+strconv.Itoa(i+1) {
			t.Errorf("File %d = %+v, want href %s size %d", i, f, want.Path, want.Size)
		}
	}
	// DiskSection: capacities in vCenter's units, streamOptimized, linked to the files.
	if e.Disk == nil || len(e.Disk.Disks) != 2 {
		t.Fatalf("DiskSection %+v", e.Disk)
	}
	for i, d := range e.Disk.Disks {
		wantCap := strconv.Itoa([]int{8, 32}[i])
		if d.Capacity != wantCap || *d.CapacityAllocationUnits != "byte * 2^20" || *d.FileRef != "file"+strconv.Itoa(i+1) ||
			*d.Format != StreamOptimizedFormat || d.DiskID != "vmdisk"+strconv.Itoa(i+1) {
			t.Errorf("Disk %d = %+v", i, d)
		}
	}
	if e.Network == nil || len(e.Network.Networks) != 1 || e.Network.Networks[0].Name != "VM Network" {
		t.Errorf("NetworkSection %+v", e.Network)
	}
	vs := e.VirtualSystem
	if vs == nil || vs.ID != "desc-export" || vs.OperatingSystem == nil || *vs.OperatingSystem.OSType != "ubuntu64Guest" || vs.OperatingSystem.ID != 94 {
		t.Fatalf("VirtualSystem %+v", vs)
	}
	if vs.Annotation == nil || vs.Annotation.Annotation != "exported by HyperSDK" {
		t.Errorf("AnnotationSection %+v", vs.Annotation)
	}
	hw := vs.VirtualHardware[0]
	if *hw.System.VirtualSystemType == "" {
		t.Error("no VirtualSystemType")
	}
	kinds := map[uint16]int{}
	for _, it := range hw.Item {
		kinds[uint16(*it.ResourceType)]++
	}
	// CPU, memory, 2 SCSI + 2 IDE controllers, 2 disks, CD-ROM, NIC, video, VMCI.
	for rt, want := range map[uint16]int{3: 1, 4: 1, 6: 2, 5: 2, 17: 2, 15: 1, 10: 1, 24: 1, 1: 1} {
		if kinds[rt] != want {
			t.Errorf("%d items of ResourceType %d, want %d", kinds[rt], rt, want)
		}
	}
	if !strings.Contains(res.OvfDescriptor, `vmw:key="nvram" vmw:value="ovf:/file/file3"`) ||
		!strings.Contains(res.OvfDescriptor, `vmw:key="firmware" vmw:value="efi"`) {
		t.Errorf("descriptor lacks the NVRAM reference or the EFI firmware:\n%s", res.OvfDescriptor)
	}

	// A real consumer accepts it: the simulator's own import turns it back
	// into a VM spec with both disks.
	finder := find.NewFinder(c.Client)
	pool, err := finder.DefaultResourcePool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := finder.DefaultDatastore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := m.CreateImportSpec(ctx, res.OvfDescriptor, pool, ds, &types.OvfCreateImportSpecParams{EntityName: "reimported"})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Error) != 0 || len(spec.FileItem) != 2 || spec.FileItem[0].Path != "desc-export-disk-0.vmdk" || spec.FileItem[1].Size != vi.Disks[1].Size {
		t.Fatalf("import spec: errors %+v files %+v", spec.Error, spec.FileItem)
	}

	// ovfFiles is a positive list: an unlisted disk has no file, no NVRAM.
	res, err = m.CreateDescriptor(ctx, vm, types.OvfCreateDescriptorParams{OvfFiles: cdp.OvfFiles[:1]})
	if err != nil {
		t.Fatal(err)
	}
	e, _ = ovf.Unmarshal(strings.NewReader(res.OvfDescriptor))
	if len(e.References) != 1 || e.Disk.Disks[1].FileRef != nil || strings.Contains(res.OvfDescriptor, `vmw:key="nvram"`) || e.VirtualSystem.ID != "desc" {
		t.Fatalf("positive list not honoured:\n%s", res.OvfDescriptor)
	}
	// No list: every file, under the lease's names, without sizes.
	res, err = m.CreateDescriptor(ctx, vm, types.OvfCreateDescriptorParams{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ = ovf.Unmarshal(strings.NewReader(res.OvfDescriptor))
	if len(e.References) != 3 || e.References[0].Href != "disk-0.vmdk" || e.References[2].Href != "disk-2.nvram" || e.References[0].Size != 0 {
		t.Fatalf("placeholders: %+v", e.References)
	}
	// A deviceId that names no device is refused.
	_, err = m.CreateDescriptor(ctx, vm, types.OvfCreateDescriptorParams{OvfFiles: []types.OvfFile{{DeviceId: "/vm-0/nope", Path: "x.vmdk"}}})
	if faultType(err) != "InvalidArgument" {
		t.Fatalf("unknown deviceId: %v, want InvalidArgument", err)
	}
	// Export options.
	res, err = m.CreateDescriptor(ctx, vm, types.OvfCreateDescriptorParams{ExportOption: []string{"mac", "uuid"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.OvfDescriptor, `vmw:key="uuid" vmw:value="`+vi.UUID+`"`) || !strings.Contains(res.OvfDescriptor, "<rasd:Address>00:") {
		t.Fatalf("mac/uuid export options ignored:\n%s", res.OvfDescriptor)
	}
}

func TestSnapshotExportOfPoweredOnVM(t *testing.T) {
	ctx := context.Background()
	env := start(t, Options{VMs: []VMSpec{{
		Name: "running", PowerState: types.VirtualMachinePowerStatePoweredOn, GuestID: "rhel9_64Guest",
		Disks: []DiskSpec{{Capacity: 16 * mib, Seed: 21}, {Capacity: 8 * mib, Seed: 22}},
	}}})
	vi, _ := env.VM("running")
	c := login(t, env)
	vm := findVM(t, c, vi.InventoryPath)

	task, err := vm.CreateSnapshot(ctx, "hypersdk-export", "temporary export snapshot", false, true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := task.WaitForResult(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap := res.Result.(types.ManagedObjectReference)
	snaps, err := env.Snapshots("running")
	if err != nil || len(snaps) != 1 || snaps[0].Ref != snap || snaps[0].Name != "hypersdk-export" {
		t.Fatalf("snapshots %+v %v", snaps, err)
	}

	lease, err := vm.ExportSnapshot(ctx, &snap)
	if err != nil {
		t.Fatal(err)
	}
	info, err := lease.Wait(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sums := download(t, lease, info, t.TempDir())
	for _, d := range vi.Disks {
		if sums[d.TargetID] != d.SHA256 {
			t.Errorf("%s: snapshot export SHA-256 %s, want %s", d.TargetID, sums[d.TargetID], d.SHA256)
		}
	}
	// The snapshot cannot be removed while its export runs.
	if _, err := vm.RemoveSnapshot(ctx, "hypersdk-export", false, nil); faultType(err) != "TaskInProgress" {
		t.Fatalf("RemoveSnapshot during export: %v, want TaskInProgress", err)
	}
	// The descriptor can describe the snapshot.
	d, err := ovf.NewManager(c.Client).CreateDescriptor(ctx, vm, types.OvfCreateDescriptorParams{Snapshot: &snap})
	if err != nil || !strings.Contains(d.OvfDescriptor, `vmw:osType="rhel9_64Guest"`) {
		t.Fatalf("descriptor of the snapshot: %v", err)
	}
	if err := lease.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _ := env.Lease(lease.Reference())
	if rec.Outcome != LeaseCompleted || rec.Snapshot == nil || *rec.Snapshot != snap {
		t.Fatalf("record %+v", rec)
	}

	task, err = vm.RemoveSnapshot(ctx, "hypersdk-export", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if snaps, _ := env.Snapshots("running"); len(snaps) != 0 {
		t.Fatalf("snapshots left: %+v", snaps)
	}
	// The VM kept running throughout.
	state, err := vm.PowerState(ctx)
	if err != nil || state != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("power state %s %v", state, err)
	}
}

// faultType names the vSphere fault in err, or "" if there is none.
func faultType(err error) string {
	f := faultOf(err)
	if f == nil {
		return ""
	}
	return faultName(&types.LocalizedMethodFault{Fault: f})
}

func faultName(f *types.LocalizedMethodFault) string {
	if f == nil || f.Fault == nil {
		return ""
	}
	s := describe(&types.LocalizedMethodFault{Fault: f.Fault})
	return s
}
