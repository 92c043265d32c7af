package vcsim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// VMInfo describes a VM that Start created.
type VMInfo struct {
	Name       string
	Ref        types.ManagedObjectReference
	Datacenter string
	// InventoryPath is the full path, e.g. "/DC0/vm/production/web/web-01".
	InventoryPath string
	// PowerState is the state Start left the VM in.
	PowerState   types.VirtualMachinePowerState
	GuestID      string
	UUID         string // BIOS UUID (config.uuid)
	InstanceUUID string // config.instanceUuid
	// Generic is true for Options.GenericVMs fleet VMs.
	Generic bool
	Disks   []DiskInfo
	// NVRAM is the VM's NVRAM file, nil when it is empty (export leases
	// then offer no NVRAM entry).
	NVRAM *FileInfo
}

// FileInfo describes a file that export leases serve.
type FileInfo struct {
	// DeviceID is the lease deviceUrl key and the OvfFile.deviceId for this
	// file, e.g. "/vm-42/ParaVirtualSCSIController0:0" or "/vm-42/nvram".
	DeviceID string
	// TargetID is the lease deviceUrl targetId, e.g. "disk-0.vmdk" or
	// "disk-1.nvram"; it is also the last element of the download URL.
	TargetID string
	// DatastorePath is the file's vSphere path, e.g. "[LocalDS_0] web-01/web-01.vmdk".
	DatastorePath string
	// Path is the file on the local filesystem.
	Path string
	// Size is the size of the served file in bytes.
	Size int64
	// SHA256 is the hex SHA-256 of the served file: what a download must hash to.
	SHA256 string
}

// DiskInfo describes a virtual disk.
type DiskInfo struct {
	FileInfo
	// Label is the device label, e.g. "Hard disk 1".
	Label string
	// Key is the device key in the VM's hardware.
	Key int32
	// Capacity is the virtual size in bytes.
	Capacity int64
	// RawSHA256 is the hex SHA-256 of the whole virtual disk (Capacity
	// bytes, zeros where nothing was written): what converting the served
	// VMDK to raw must reproduce. Empty for generic fleet VMs.
	RawSHA256 string
}

type vmRecord struct {
	info VMInfo
}

// VM returns the VM that Start created with this name.
func (e *Env) VM(name string) (VMInfo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.vms[name]
	if !ok {
		return VMInfo{}, false
	}
	return r.info.clone(), true
}

// VMs returns the VMs of Options.VMs, in order (not the generic fleet).
func (e *Env) VMs() []VMInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]VMInfo, 0, len(e.specOrder))
	for _, n := range e.specOrder {
		out = append(out, e.vms[n].info.clone())
	}
	return out
}

func (v VMInfo) clone() VMInfo {
	v.Disks = slices.Clone(v.Disks)
	if v.NVRAM != nil {
		n := *v.NVRAM
		v.NVRAM = &n
	}
	return v
}

// computeTarget is a place to create VMs: a resource pool and, for
// standalone hosts, the host.
type computeTarget struct {
	dc   *dcInfo
	pool *object.ResourcePool
	host *object.HostSystem
}

type dcInfo struct {
	name       string
	dc         *object.Datacenter
	folders    *object.DatacenterFolders
	targets    []computeTarget
	datastores map[string]string // name → local directory
	network    types.BaseVirtualDeviceBackingInfo
}

type builder struct {
	e       *Env
	c       *vim25.Client
	dcs     []*dcInfo
	folders map[string]*object.Folder // "/<dc>/vm/<path>" → folder
}

func (e *Env) buildInventory(ctx context.Context, c *vim25.Client) error {
	b := &builder{e: e, c: c, folders: make(map[string]*object.Folder)}
	if err := b.discover(ctx); err != nil {
		return fmt.Errorf("vcsim: inventory: %w", err)
	}
	if err := b.generic(ctx); err != nil {
		return fmt.Errorf("vcsim: generic VMs: %w", err)
	}
	for i := range e.opts.VMs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.specVM(ctx, &e.opts.VMs[i]); err != nil {
			return fmt.Errorf("vcsim: VM %q: %w", e.opts.VMs[i].Name, err)
		}
	}
	return nil
}

// discover finds the datacenters and compute resources the model created
// and creates the datastores.
func (b *builder) discover(ctx context.Context) error {
	finder := find.NewFinder(b.c, false)
	dcs, err := finder.DatacenterList(ctx, "*")
	if err != nil {
		return err
	}
	slices.SortFunc(dcs, func(a, c *object.Datacenter) int { return strings.Compare(a.Name(), c.Name()) })
	for _, dc := range dcs {
		d := &dcInfo{name: dc.Name(), dc: dc, datastores: make(map[string]string)}
		finder.SetDatacenter(dc)
		if d.folders, err = dc.Folders(ctx); err != nil {
			return err
		}
		hosts, err := finder.HostSystemList(ctx, "*")
		if err != nil {
			return err
		}
		for i := range b.e.opts.Datastores {
			name := fmt.Sprintf("LocalDS_%d", i)
			dir := filepath.Join(b.e.dir, d.name, name)
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("datastore directory %s already exists", dir)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			b.e.dsDirs = append(b.e.dsDirs, dir)
			for _, h := range hosts {
				dss, err := h.ConfigManager().DatastoreSystem(ctx)
				if err != nil {
					return err
				}
				if _, err := dss.CreateLocalDatastore(ctx, name, dir); err != nil {
					return fmt.Errorf("datastore %s on %s: %w", name, h.Name(), err)
				}
			}
			d.datastores[name] = dir
		}
		crs, err := finder.ComputeResourceList(ctx, "*")
		if err != nil {
			return err
		}
		slices.SortFunc(crs, func(a, c *object.ComputeResource) int {
			return strings.Compare(a.InventoryPath, c.InventoryPath)
		})
		for _, cr := range crs {
			pool, err := cr.ResourcePool(ctx)
			if err != nil {
				return err
			}
			t := computeTarget{dc: d, pool: pool}
			if cr.Reference().Type == "ComputeResource" {
				hs, err := cr.Hosts(ctx)
				if err != nil {
					return err
				}
				if len(hs) > 0 {
					t.host = hs[0]
				}
			}
			d.targets = append(d.targets, t)
		}
		if len(d.targets) == 0 {
			return fmt.Errorf("datacenter %s has no compute resource", d.name)
		}
		net, err := finder.Network(ctx, "VM Network")
		if err != nil {
			return err
		}
		if d.network, err = net.EthernetCardBackingInfo(ctx); err != nil {
			return err
		}
		b.dcs = append(b.dcs, d)
	}
	return nil
}

// folder returns the VM folder at path p under d's VM folder, creating it
// as needed, and its inventory path.
func (b *builder) folder(ctx context.Context, d *dcInfo, p string) (*object.Folder, string, error) {
	p = path.Clean("/" + strings.Trim(p, "/"))
	inv := "/" + d.name + "/vm" + strings.TrimSuffix(p, "/")
	if p == "/" {
		return d.folders.VmFolder, inv, nil
	}
	if f, ok := b.folders[inv]; ok {
		return f, inv, nil
	}
	parent, _, err := b.folder(ctx, d, path.Dir(p))
	if err != nil {
		return nil, "", err
	}
	f, err := parent.CreateFolder(ctx, path.Base(p))
	if err != nil {
		return nil, "", fmt.Errorf("folder %s: %w", inv, err)
	}
	b.folders[inv] = f
	return f, inv, nil
}

// pending is a VM whose creation task has been started.
type pending struct {
	task  types.ManagedObjectReference
	rec   *vmRecord
	power types.VirtualMachinePowerState
	files []string // datastore paths of the disks, in order
}

var (
	fleetGuests = []string{"ubuntu64Guest", "rhel9_64Guest", "windows2019srv_64Guest", "debian12_64Guest", "centos7_64Guest", "otherLinux64Guest"}
	fleetSizes  = []int64{8 << 30, 16 << 30, 40 << 30, 100 << 30}
)

// generic creates Options.GenericVMs fleet VMs, one after another: the
// simulator's CreateVM tasks race on the datastore when they overlap.
func (b *builder) generic(ctx context.Context) error {
	n := b.e.opts.GenericVMs
	if n == 0 {
		return nil
	}
	var targets []computeTarget
	for _, d := range b.dcs {
		targets = append(targets, d.targets...)
	}
	type emptyDisk struct {
		data []byte
		sum  string
	}
	empties := make(map[int64]emptyDisk)
	for _, size := range fleetSizes {
		data, sum, err := emptyVMDK(size)
		if err != nil {
			return err
		}
		empties[size] = emptyDisk{data, sum}
	}

	var all []*pending
	for i := range n {
		if i%100 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		t := targets[i%len(targets)]
		name := fmt.Sprintf("fleet-%05d", i)
		folder, inv, err := b.folder(ctx, t.dc, fmt.Sprintf("fleet/group-%02d", i/100))
		if err != nil {
			return err
		}
		size := fleetSizes[i%len(fleetSizes)]
		guest := fleetGuests[i%len(fleetGuests)]
		dsPath := fmt.Sprintf("[LocalDS_0] %s/%s.vmdk", name, name)
		vmDir := filepath.Join(t.dc.datastores["LocalDS_0"], name)
		if err := os.MkdirAll(vmDir, 0o755); err != nil {
			return err
		}
		file := filepath.Join(vmDir, name+".vmdk")
		if err := os.WriteFile(file, empties[size].data, 0o644); err != nil {
			return err
		}
		power := types.VirtualMachinePowerStatePoweredOff
		if i%3 != 0 {
			power = types.VirtualMachinePowerStatePoweredOn
		}
		rec := &vmRecord{info: VMInfo{
			Name:          name,
			Datacenter:    t.dc.name,
			InventoryPath: inv + "/" + name,
			PowerState:    power,
			GuestID:       guest,
			Generic:       true,
			Disks: []DiskInfo{{
				FileInfo: FileInfo{TargetID: "disk-0.vmdk", DatastorePath: dsPath, Path: file,
					Size: int64(len(empties[size].data)), SHA256: empties[size].sum},
				Capacity: size,
			}},
		}}
		spec, err := b.configSpec(t.dc, name, guest, 1+int32(i%4), 1024*(1+int64(i%8)), "", "", []diskDevice{{path: dsPath, capacity: size, controller: "pvscsi"}})
		if err != nil {
			return err
		}
		task, err := b.createVM(ctx, folder, t, spec)
		if err != nil {
			return err
		}
		p := &pending{task: task, rec: rec, power: power, files: []string{dsPath}}
		if err := b.created(p); err != nil {
			return err
		}
		all = append(all, p)
	}
	return b.finish(ctx, all)
}

// created waits for a VM's creation task and records its reference.
func (b *builder) created(p *pending) error {
	res, err := b.wait(p.task)
	if err != nil {
		return fmt.Errorf("create %s: %w", p.rec.info.Name, err)
	}
	p.rec.info.Ref = res.(types.ManagedObjectReference)
	p.task = types.ManagedObjectReference{}
	return nil
}

// finish waits for creation tasks still running, powers VMs on as asked
// (one at a time, like creation) and records them.
func (b *builder) finish(ctx context.Context, all []*pending) error {
	for _, p := range all {
		if p.task.Value != "" {
			if err := b.created(p); err != nil {
				return err
			}
		}
	}
	for _, p := range all {
		if p.power == types.VirtualMachinePowerStatePoweredOn || p.power == types.VirtualMachinePowerStateSuspended {
			res, err := methods.PowerOnVM_Task(ctx, b.c, &types.PowerOnVM_Task{This: p.rec.info.Ref})
			if err != nil {
				return fmt.Errorf("power on %s: %w", p.rec.info.Name, err)
			}
			if _, err := b.wait(res.Returnval); err != nil {
				return fmt.Errorf("power on %s: %w", p.rec.info.Name, err)
			}
		}
	}
	for _, p := range all {
		if p.power != types.VirtualMachinePowerStateSuspended {
			continue
		}
		res, err := methods.SuspendVM_Task(ctx, b.c, &types.SuspendVM_Task{This: p.rec.info.Ref})
		if err != nil {
			return err
		}
		if _, err := b.wait(res.Returnval); err != nil {
			return err
		}
	}
	b.e.mu.Lock()
	defer b.e.mu.Unlock()
	for _, p := range all {
		if err := b.readBack(p); err != nil {
			return err
		}
		if _, dup := b.e.vms[p.rec.info.Name]; dup {
			return fmt.Errorf("duplicate VM name %q", p.rec.info.Name)
		}
		b.e.vms[p.rec.info.Name] = p.rec
	}
	return nil
}

// readBack fills in what the simulator decided: UUIDs, device keys, labels
// and the lease device IDs.
func (b *builder) readBack(p *pending) error {
	vm, ok := b.e.object(p.rec.info.Ref).(*simulator.VirtualMachine)
	if !ok {
		return fmt.Errorf("VM %s vanished", p.rec.info.Name)
	}
	ctx := b.e.newCtx()
	var err error
	ctx.WithLock(vm, func() {
		p.rec.info.UUID = vm.Config.Uuid
		p.rec.info.InstanceUUID = vm.Config.InstanceUuid
		devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
		disks := devices.SelectByType((*types.VirtualDisk)(nil))
		if len(disks) != len(p.files) {
			err = fmt.Errorf("VM %s has %d disks, want %d", p.rec.info.Name, len(disks), len(p.files))
			return
		}
		for i, d := range disks {
			disk := d.(*types.VirtualDisk)
			fb := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo).GetVirtualDeviceFileBackingInfo()
			if fb.FileName != p.files[i] {
				err = fmt.Errorf("VM %s disk %d is %s, want %s", p.rec.info.Name, i, fb.FileName, p.files[i])
				return
			}
			di := &p.rec.info.Disks[i]
			di.Key = disk.Key
			if disk.DeviceInfo != nil {
				di.Label = disk.DeviceInfo.GetDescription().Label
			}
			di.DeviceID = deviceID(vm.Self, devices, disk)
		}
		if p.rec.info.NVRAM != nil {
			p.rec.info.NVRAM.DeviceID = "/" + vm.Self.Value + "/nvram"
		}
	})
	return err
}

// deviceID is the key vCenter gives a disk in export leases and expects
// back in OvfFile.deviceId: "/<vm moid>/<controller type><bus>:<unit>".
func deviceID(vm types.ManagedObjectReference, devices object.VirtualDeviceList, disk *types.VirtualDisk) string {
	ctrl := devices.FindByKey(disk.ControllerKey)
	name, bus := "UnknownController", int32(0)
	if ctrl != nil {
		name = reflect.TypeOf(ctrl).Elem().Name()
		if c, ok := ctrl.(types.BaseVirtualController); ok {
			bus = c.GetVirtualController().BusNumber
		}
	}
	unit := int32(0)
	if disk.UnitNumber != nil {
		unit = *disk.UnitNumber
	}
	return fmt.Sprintf("/%s/%s%d:%d", vm.Value, name, bus, unit)
}

// wait blocks until a simulator task ends and returns its result. It polls
// the task's state at a short, growing interval (Task.Wait sleeps 10ms per
// check, which adds up over thousands of VMs).
func (b *builder) wait(ref types.ManagedObjectReference) (types.AnyType, error) {
	t, ok := b.e.object(ref).(*simulator.Task)
	if !ok {
		return nil, fmt.Errorf("task %s not found", ref)
	}
	var (
		res  types.AnyType
		ferr *types.LocalizedMethodFault
	)
	for d := 20 * time.Microsecond; ; d = min(2*d, 5*time.Millisecond) {
		done := false
		b.e.newCtx().WithLock(t, func() {
			switch t.Info.State {
			case types.TaskInfoStateSuccess, types.TaskInfoStateError:
				done, res, ferr = true, t.Info.Result, t.Info.Error
			}
		})
		if done {
			break
		}
		time.Sleep(d)
	}
	if ferr != nil {
		return nil, fmt.Errorf("task %s: %s (%T)", ref, ferr.LocalizedMessage, ferr.Fault)
	}
	return res, nil
}

func (b *builder) createVM(ctx context.Context, folder *object.Folder, t computeTarget, spec types.VirtualMachineConfigSpec) (types.ManagedObjectReference, error) {
	req := &types.CreateVM_Task{This: folder.Reference(), Config: spec, Pool: t.pool.Reference()}
	if t.host != nil {
		h := t.host.Reference()
		req.Host = &h
	}
	res, err := methods.CreateVM_Task(ctx, b.c, req)
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("create %s: %w", spec.Name, err)
	}
	return res.Returnval, nil
}

// diskDevice is a disk to attach: an existing file in the datastore.
type diskDevice struct {
	path       string
	capacity   int64
	controller string
	thick      bool
}

// configSpec builds the spec of a VM whose disk files already exist: the
// simulator attaches existing files instead of creating 202-byte descriptors.
func (b *builder) configSpec(d *dcInfo, name, guest string, cpus int32, memMB int64, firmware, annotation string, disks []diskDevice) (types.VirtualMachineConfigSpec, error) {
	ds := "LocalDS_0"
	if len(disks) > 0 {
		var p object.DatastorePath
		if p.FromString(disks[0].path) {
			ds = p.Datastore
		}
	}
	uuid, iuuid := stableUUID("bios:"+name), stableUUID("instance:"+name)
	spec := types.VirtualMachineConfigSpec{
		Name:              name,
		GuestId:           guest,
		NumCPUs:           cpus,
		NumCoresPerSocket: types.NewInt32(1),
		MemoryMB:          memMB,
		Firmware:          firmware,
		Annotation:        annotation,
		Uuid:              uuid,
		InstanceUuid:      iuuid,
		Files:             &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s] %s/%s.vmx", ds, name, name)},
	}

	var devices object.VirtualDeviceList
	ctrls := make(map[string]types.BaseVirtualController)
	label := func(dev types.BaseVirtualDevice, s string) {
		dev.GetVirtualDevice().DeviceInfo = &types.Description{Label: s, Summary: s}
	}
	controller := func(kind string) (types.BaseVirtualController, error) {
		if c, ok := ctrls[kind]; ok {
			return c, nil
		}
		var dev types.BaseVirtualDevice
		var err error
		switch kind {
		case "pvscsi", "lsilogic", "lsilogic-sas", "buslogic":
			dev, err = devices.CreateSCSIController(kind)
		case "sata":
			dev, err = devices.CreateSATAController()
		case "nvme":
			dev, err = devices.CreateNVMEController()
		case "ide":
			dev, err = devices.CreateIDEController()
		default:
			err = fmt.Errorf("unknown controller %q", kind)
		}
		if err != nil {
			return nil, err
		}
		c := dev.(types.BaseVirtualController)
		bus := c.GetVirtualController().BusNumber
		switch kind {
		case "sata":
			label(dev, fmt.Sprintf("SATA controller %d", bus))
		case "nvme":
			label(dev, fmt.Sprintf("NVME controller %d", bus))
		case "ide":
			// The simulator maps it onto its default "IDE 0".
		default:
			label(dev, fmt.Sprintf("SCSI controller %d", bus))
		}
		devices = append(devices, dev)
		ctrls[kind] = c
		return c, nil
	}
	var changes []types.BaseVirtualDeviceConfigSpec
	for i, dd := range disks {
		c, err := controller(dd.controller)
		if err != nil {
			return spec, err
		}
		disk := devices.CreateDisk(c, types.ManagedObjectReference{}, dd.path)
		disk.CapacityInBytes = dd.capacity
		disk.CapacityInKB = dd.capacity / 1024
		disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).ThinProvisioned = types.NewBool(!dd.thick)
		label(disk, fmt.Sprintf("Hard disk %d", i+1))
		devices = append(devices, disk)
	}
	ide, err := controller("ide")
	if err != nil {
		return spec, err
	}
	cdrom, err := devices.CreateCdrom(ide.(*types.VirtualIDEController))
	if err != nil {
		return spec, err
	}
	label(cdrom, "CD/DVD drive 1")
	devices = append(devices, cdrom)
	nic, err := devices.CreateEthernetCard("vmxnet3", d.network)
	if err != nil {
		return spec, err
	}
	label(nic, "Network adapter 1")
	devices = append(devices, nic)
	for _, dev := range devices {
		// Disks are attached as existing files: no FileOperation.
		changes = append(changes, &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: dev})
	}
	spec.DeviceChange = changes
	return spec, nil
}

// stableUUID derives a UUID-formatted string from s, so VMs keep their
// UUIDs from one run to the next.
func stableUUID(s string) string {
	h := sha256.Sum256([]byte(s))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// specVM creates one Options.VMs entry with its disk and NVRAM content.
func (b *builder) specVM(ctx context.Context, s *VMSpec) error {
	if s.Name == "" || strings.ContainsAny(s.Name, "/\\[]") {
		return fmt.Errorf("invalid name")
	}
	b.e.mu.Lock()
	_, dup := b.e.vms[s.Name]
	b.e.mu.Unlock()
	if dup {
		return fmt.Errorf("duplicate VM name")
	}
	d := b.dcs[0]
	if s.Datacenter != "" {
		d = nil
		for _, x := range b.dcs {
			if x.name == s.Datacenter {
				d = x
			}
		}
		if d == nil {
			return fmt.Errorf("no datacenter %q", s.Datacenter)
		}
	}
	dsName := s.Datastore
	if dsName == "" {
		dsName = "LocalDS_0"
	}
	dsDir, ok := d.datastores[dsName]
	if !ok {
		return fmt.Errorf("no datastore %q in %s", dsName, d.name)
	}
	guest := s.GuestID
	if guest == "" {
		guest = string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest)
	}
	cpus, mem := s.CPUs, s.MemoryMB
	if cpus <= 0 {
		cpus = 1
	}
	if mem <= 0 {
		mem = 1024
	}
	firmware := s.Firmware
	if firmware == "" {
		firmware = string(types.GuestOsDescriptorFirmwareTypeBios)
	}
	if firmware != "bios" && firmware != "efi" {
		return fmt.Errorf("firmware %q is neither bios nor efi", firmware)
	}
	power := s.PowerState
	if power == "" {
		power = types.VirtualMachinePowerStatePoweredOff
	}
	switch power {
	case types.VirtualMachinePowerStatePoweredOff, types.VirtualMachinePowerStatePoweredOn, types.VirtualMachinePowerStateSuspended:
	default:
		return fmt.Errorf("unknown power state %q", power)
	}
	folder, inv, err := b.folder(ctx, d, s.Folder)
	if err != nil {
		return err
	}

	vmDir := filepath.Join(dsDir, s.Name)
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		return err
	}
	rec := &vmRecord{info: VMInfo{
		Name:          s.Name,
		Datacenter:    d.name,
		InventoryPath: inv + "/" + s.Name,
		PowerState:    power,
		GuestID:       guest,
	}}
	var devs []diskDevice
	var files []string
	for i, ds := range s.Disks {
		if ds.Capacity <= 0 || ds.Capacity%1024 != 0 {
			return fmt.Errorf("disk %d: capacity %d is not a positive multiple of 1 KiB", i, ds.Capacity)
		}
		ctrl := ds.Controller
		if ctrl == "" {
			ctrl = "pvscsi"
		}
		base := s.Name + ".vmdk"
		if i > 0 {
			base = fmt.Sprintf("%s_%d.vmdk", s.Name, i)
		}
		dsPath := fmt.Sprintf("[%s] %s/%s", dsName, s.Name, base)
		local := filepath.Join(vmDir, base)
		adapter := "lsilogic"
		if ctrl == "ide" {
			adapter = "ide"
		}
		res, err := writeDisk(local, ds, base, adapter)
		if err != nil {
			return fmt.Errorf("disk %d: %w", i, err)
		}
		rec.info.Disks = append(rec.info.Disks, DiskInfo{
			FileInfo: FileInfo{TargetID: fmt.Sprintf("disk-%d.vmdk", i), DatastorePath: dsPath, Path: local,
				Size: res.size, SHA256: res.sha},
			Capacity:  ds.Capacity,
			RawSHA256: res.rawSHA,
		})
		devs = append(devs, diskDevice{path: dsPath, capacity: ds.Capacity, controller: ctrl, thick: ds.Thick})
		files = append(files, dsPath)
	}
	if !s.NoNVRAM {
		local := filepath.Join(vmDir, s.Name+".nvram")
		data := nvramContent(s.Name)
		if err := os.WriteFile(local, data, 0o644); err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		rec.info.NVRAM = &FileInfo{
			TargetID:      fmt.Sprintf("disk-%d.nvram", len(s.Disks)),
			DatastorePath: fmt.Sprintf("[%s] %s/%s.nvram", dsName, s.Name, s.Name),
			Path:          local,
			Size:          int64(len(data)),
			SHA256:        fmt.Sprintf("%x", sum),
		}
	}

	spec, err := b.configSpec(d, s.Name, guest, cpus, mem, firmware, s.Annotation, devs)
	if err != nil {
		return err
	}
	task, err := b.createVM(ctx, folder, d.targets[0], spec)
	if err != nil {
		return err
	}
	if err := b.finish(ctx, []*pending{{task: task, rec: rec, power: power, files: files}}); err != nil {
		return err
	}
	b.e.mu.Lock()
	b.e.specOrder = append(b.e.specOrder, s.Name)
	b.e.mu.Unlock()
	return nil
}

// nvramContent is 8684 deterministic bytes, the size of a typical VMware
// NVRAM file.
func nvramContent(name string) []byte {
	out := make([]byte, 0, 8684+sha256.Size)
	out = append(out, "MRVN"...)
	h := sha256.Sum256([]byte("nvram:" + name))
	for len(out) < 8684 {
		out = append(out, h[:]...)
		h = sha256.Sum256(h[:])
	}
	return out[:8684]
}

// hashZeros feeds n zero bytes to w.
func hashZeros(w io.Writer, n int64) {
	zero := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(zero)))
		_, _ = w.Write(zero[:k])
		n -= k
	}
}

// SnapshotInfo is one snapshot of a VM.
type SnapshotInfo struct {
	Name string
	Ref  types.ManagedObjectReference
	// Path is the snapshot's position in the tree, parent names first,
	// joined by "/".
	Path string
}

// Snapshots returns the snapshots a VM has now, depth first. The VM may be
// one Start created or one a client created later.
func (e *Env) Snapshots(vmName string) ([]SnapshotInfo, error) {
	vm := e.findVM(vmName)
	if vm == nil {
		return nil, fmt.Errorf("vcsim: no VM %q", vmName)
	}
	var out []SnapshotInfo
	var walk func(prefix string, list []types.VirtualMachineSnapshotTree)
	walk = func(prefix string, list []types.VirtualMachineSnapshotTree) {
		for _, s := range list {
			p := s.Name
			if prefix != "" {
				p = prefix + "/" + s.Name
			}
			out = append(out, SnapshotInfo{Name: s.Name, Ref: s.Snapshot, Path: p})
			walk(p, s.ChildSnapshotList)
		}
	}
	e.newCtx().WithLock(vm, func() {
		if vm.Snapshot != nil {
			walk("", vm.Snapshot.RootSnapshotList)
		}
	})
	return out, nil
}

// findVM returns the simulator object of the VM with this name.
func (e *Env) findVM(name string) *simulator.VirtualMachine {
	e.mu.Lock()
	r, ok := e.vms[name]
	e.mu.Unlock()
	if ok {
		vm, _ := e.object(r.info.Ref).(*simulator.VirtualMachine)
		return vm
	}
	for _, obj := range e.model.Map().All("VirtualMachine") {
		vm, ok := obj.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		var n string
		e.newCtx().WithLock(vm, func() { n = vm.Name })
		if n == name {
			return vm
		}
	}
	return nil
}
