package vcsim

import (
	"encoding/xml"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	hovf "github.com/hypersdk/hypersdk/ovf"
)

// ovfManager replaces the simulator's OvfManager singleton in this Env's
// registry (nothing in the simulator type-asserts it) and adds
// CreateDescriptor; CreateImportSpec and the rest are the simulator's.
type ovfManager struct {
	*simulator.OvfManager
	env *Env
}

// CreateDescriptor implements OvfManager.CreateDescriptor for virtual
// machines and their snapshots, in the shape vCenter produces: References
// built from cdp.OvfFiles (href and size as the client stored the files),
// DiskSection, NetworkSection and a VirtualSystem with the
// OperatingSystemSection and VirtualHardwareSection of the VM.
func (m *ovfManager) CreateDescriptor(ctx *simulator.Context, req *types.CreateDescriptor) soap.HasFault {
	body := &methods.CreateDescriptorBody{}
	obj := ctx.Map.Get(req.Obj)
	vm, ok := obj.(*simulator.VirtualMachine)
	if !ok {
		if obj == nil {
			body.Fault_ = simulator.Fault("", &types.ManagedObjectNotFound{Obj: req.Obj})
		} else {
			body.Fault_ = simulator.Fault("Only virtual machines can be exported by this simulator.", &types.NotSupported{})
		}
		return body
	}
	var (
		desc string
		warn []types.LocalizedMethodFault
		f    types.BaseMethodFault
		msg  string
	)
	build := func(cfg *types.VirtualMachineConfigInfo) {
		ctx.WithLock(vm, func() {
			desc, warn, msg, f = m.env.descriptor(ctx, vm, cfg, &req.Cdp)
		})
	}
	if req.Cdp.Snapshot != nil {
		snap, ok := ctx.Map.Get(*req.Cdp.Snapshot).(*simulator.VirtualMachineSnapshot)
		if !ok || snap.Vm != vm.Self {
			body.Fault_ = simulator.Fault("", &types.InvalidArgument{InvalidProperty: "cdp.snapshot"})
			return body
		}
		ctx.WithLock(snap, func() { build(&snap.Config) })
	} else {
		ctx.WithLock(vm, func() { build(vm.Config) })
	}
	if f != nil {
		body.Fault_ = simulator.Fault(msg, f)
		return body
	}
	body.Res = &types.CreateDescriptorResponse{Returnval: types.OvfCreateDescriptorResult{
		OvfDescriptor:     desc,
		Warning:           warn,
		IncludeImageFiles: types.NewBool(false),
	}}
	return body
}

// XML model. Element and attribute names carry their prefixes literally;
// the envelope declares them.
type (
	xEnvelope struct {
		XMLName        xml.Name         `xml:"Envelope"`
		Xmlns          string           `xml:"xmlns,attr"`
		XmlnsCim       string           `xml:"xmlns:cim,attr"`
		XmlnsOvf       string           `xml:"xmlns:ovf,attr"`
		XmlnsRasd      string           `xml:"xmlns:rasd,attr"`
		XmlnsVmw       string           `xml:"xmlns:vmw,attr"`
		XmlnsVssd      string           `xml:"xmlns:vssd,attr"`
		XmlnsXsi       string           `xml:"xmlns:xsi,attr"`
		References     xReferences      `xml:"References"`
		DiskSection    xDiskSection     `xml:"DiskSection"`
		NetworkSection *xNetworkSection `xml:"NetworkSection,omitempty"`
		VirtualSystem  xVirtualSystem   `xml:"VirtualSystem"`
	}
	xReferences struct {
		Files []xFile `xml:"File"`
	}
	xFile struct {
		Href        string `xml:"ovf:href,attr"`
		ID          string `xml:"ovf:id,attr"`
		Size        string `xml:"ovf:size,attr,omitempty"`
		Compression string `xml:"ovf:compression,attr,omitempty"`
		ChunkSize   string `xml:"ovf:chunkSize,attr,omitempty"`
	}
	xDiskSection struct {
		Info  string  `xml:"Info"`
		Disks []xDisk `xml:"Disk"`
	}
	xDisk struct {
		Capacity      string `xml:"ovf:capacity,attr"`
		CapacityUnits string `xml:"ovf:capacityAllocationUnits,attr"`
		DiskID        string `xml:"ovf:diskId,attr"`
		FileRef       string `xml:"ovf:fileRef,attr,omitempty"`
		Format        string `xml:"ovf:format,attr"`
		PopulatedSize string `xml:"ovf:populatedSize,attr,omitempty"`
	}
	xNetworkSection struct {
		Info     string     `xml:"Info"`
		Networks []xNetwork `xml:"Network"`
	}
	xNetwork struct {
		Name        string `xml:"ovf:name,attr"`
		Description string `xml:"Description"`
	}
	xVirtualSystem struct {
		ID         string       `xml:"ovf:id,attr"`
		Info       string       `xml:"Info"`
		Name       string       `xml:"Name"`
		OS         xOS          `xml:"OperatingSystemSection"`
		Hardware   xHardware    `xml:"VirtualHardwareSection"`
		Annotation *xAnnotation `xml:"AnnotationSection,omitempty"`
	}
	xOS struct {
		ID     string `xml:"ovf:id,attr"`
		OSType string `xml:"vmw:osType,attr,omitempty"`
		Info   string `xml:"Info"`
	}
	xAnnotation struct {
		Required   string `xml:"ovf:required,attr"`
		Info       string `xml:"Info"`
		Annotation string `xml:"Annotation"`
	}
	xHardware struct {
		Info        string    `xml:"Info"`
		System      xSystem   `xml:"System"`
		Items       []xItem   `xml:"Item"`
		Config      []xConfig `xml:"vmw:Config"`
		ExtraConfig []xConfig `xml:"vmw:ExtraConfig"`
	}
	xSystem struct {
		ElementName             string `xml:"vssd:ElementName"`
		InstanceID              string `xml:"vssd:InstanceID"`
		VirtualSystemIdentifier string `xml:"vssd:VirtualSystemIdentifier"`
		VirtualSystemType       string `xml:"vssd:VirtualSystemType"`
	}
	// xItem fields follow the CIM schema's (alphabetical) element order.
	xItem struct {
		Required            string    `xml:"ovf:required,attr,omitempty"`
		Address             string    `xml:"rasd:Address,omitempty"`
		AddressOnParent     string    `xml:"rasd:AddressOnParent,omitempty"`
		AllocationUnits     string    `xml:"rasd:AllocationUnits,omitempty"`
		AutomaticAllocation string    `xml:"rasd:AutomaticAllocation,omitempty"`
		Connection          string    `xml:"rasd:Connection,omitempty"`
		Description         string    `xml:"rasd:Description,omitempty"`
		ElementName         string    `xml:"rasd:ElementName"`
		HostResource        string    `xml:"rasd:HostResource,omitempty"`
		InstanceID          string    `xml:"rasd:InstanceID"`
		Parent              string    `xml:"rasd:Parent,omitempty"`
		ResourceSubType     string    `xml:"rasd:ResourceSubType,omitempty"`
		ResourceType        string    `xml:"rasd:ResourceType"`
		VirtualQuantity     string    `xml:"rasd:VirtualQuantity,omitempty"`
		Config              []xConfig `xml:"vmw:Config"`
	}
	xConfig struct {
		Required string `xml:"ovf:required,attr"`
		Key      string `xml:"vmw:key,attr"`
		Value    string `xml:"vmw:value,attr"`
	}
)

// StreamOptimizedFormat is the ovf:format vCenter gives exported disks.
const StreamOptimizedFormat = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"

// descriptor renders the OVF descriptor of vm with the configuration cfg.
// The caller holds the VM's lock.
func (e *Env) descriptor(ctx *simulator.Context, vm *simulator.VirtualMachine, cfg *types.VirtualMachineConfigInfo, cdp *types.OvfCreateDescriptorParams) (string, []types.LocalizedMethodFault, string, types.BaseMethodFault) {
	devices := object.VirtualDeviceList(cfg.Hardware.Device)
	disks := devices.SelectByType((*types.VirtualDisk)(nil))

	nvramID := "/" + vm.Self.Value + "/nvram"
	hasNVRAM := false
	if local, f := e.localPath(ctx, vm.Config.Files.VmPathName, nil); f == nil {
		if path.Ext(local) == ".vmx" {
			local = filepath.Dir(local)
		}
		if st, err := os.Stat(filepath.Join(local, vm.Name+".nvram")); err == nil && st.Size() > 0 {
			hasNVRAM = true
		}
	}

	// Which files go into References: those the client listed, matched by
	// device ID; with no list, every disk (and the NVRAM) with the
	// lease's default names as placeholders.
	known := map[string]string{} // device ID → default path
	var order []string
	for i, d := range disks {
		id := deviceID(vm.Self, devices, d.(*types.VirtualDisk))
		known[id] = fmt.Sprintf("disk-%d.vmdk", i)
		order = append(order, id)
	}
	if hasNVRAM {
		known[nvramID] = fmt.Sprintf("disk-%d.nvram", len(disks))
		order = append(order, nvramID)
	}
	chosen := map[string]types.OvfFile{}
	if len(cdp.OvfFiles) == 0 {
		for id, p := range known {
			chosen[id] = types.OvfFile{DeviceId: id, Path: p}
		}
	}
	for _, f := range cdp.OvfFiles {
		if _, ok := known[f.DeviceId]; !ok {
			return "", nil, fmt.Sprintf("A specified parameter was not correct: cdp.ovfFiles: unknown deviceId %q", f.DeviceId),
				&types.InvalidArgument{InvalidProperty: "cdp.ovfFiles"}
		}
		if f.Path == "" || strings.HasPrefix(f.Path, "/") {
			return "", nil, fmt.Sprintf("A specified parameter was not correct: cdp.ovfFiles: path %q must be relative", f.Path),
				&types.InvalidArgument{InvalidProperty: "cdp.ovfFiles"}
		}
		chosen[f.DeviceId] = f
	}
	fileIDs := map[string]string{}
	env := xEnvelope{
		Xmlns:     "http://schemas.dmtf.org/ovf/envelope/1",
		XmlnsCim:  "http://schemas.dmtf.org/wbem/wscim/1/common",
		XmlnsOvf:  "http://schemas.dmtf.org/ovf/envelope/1",
		XmlnsRasd: "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
		XmlnsVmw:  "http://www.vmware.com/schema/ovf",
		XmlnsVssd: "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData",
		XmlnsXsi:  "http://www.w3.org/2001/XMLSchema-instance",
	}
	for _, id := range order {
		f, ok := chosen[id]
		if !ok {
			continue
		}
		fid := fmt.Sprintf("file%d", len(env.References.Files)+1)
		fileIDs[id] = fid
		xf := xFile{Href: f.Path, ID: fid, Compression: f.CompressionMethod}
		if f.Size > 0 {
			xf.Size = strconv.FormatInt(f.Size, 10)
		}
		if f.ChunkSize > 0 {
			xf.ChunkSize = strconv.FormatInt(f.ChunkSize, 10)
		}
		env.References.Files = append(env.References.Files, xf)
	}

	name := cdp.Name
	if name == "" {
		name = vm.Name
	}
	options := map[string]bool{}
	for _, o := range cdp.ExportOption {
		options[o] = true
	}

	vs := &env.VirtualSystem
	vs.ID, vs.Info, vs.Name = name, "A virtual machine", name
	vs.OS = xOS{ID: strconv.Itoa(hovf.GuestFromVMware(cfg.GuestId, "").CIMID), OSType: cfg.GuestId, Info: "The kind of installed guest operating system"}
	annotation := cfg.Annotation
	if cdp.Description != "" {
		annotation = cdp.Description
	}
	if annotation != "" {
		vs.Annotation = &xAnnotation{Required: "false", Info: "A human-readable annotation", Annotation: annotation}
	}
	hw := &vs.Hardware
	hw.Info = "Virtual hardware requirements"
	hw.System = xSystem{ElementName: "Virtual Hardware Family", InstanceID: "0", VirtualSystemIdentifier: name, VirtualSystemType: cfg.Version}
	hw.Items = append(hw.Items,
		xItem{AllocationUnits: "hertz * 10^6", Description: "Number of Virtual CPUs",
			ElementName: fmt.Sprintf("%d virtual CPU(s)", cfg.Hardware.NumCPU), InstanceID: "1", ResourceType: "3",
			VirtualQuantity: strconv.Itoa(int(cfg.Hardware.NumCPU))},
		xItem{AllocationUnits: "byte * 2^20", Description: "Memory Size",
			ElementName: fmt.Sprintf("%dMB of memory", cfg.Hardware.MemoryMB), InstanceID: "2", ResourceType: "4",
			VirtualQuantity: strconv.Itoa(int(cfg.Hardware.MemoryMB))},
	)
	nextID := 3
	instance := map[int32]string{} // device key → InstanceID

	// Controllers first, so that devices can name their parent.
	for _, d := range devices {
		it, ok := controllerItem(d)
		if !ok {
			continue
		}
		it.InstanceID = strconv.Itoa(nextID)
		instance[d.GetVirtualDevice().Key] = it.InstanceID
		nextID++
		hw.Items = append(hw.Items, it)
	}

	networks := []string{}
	ndisk := 0
	for _, d := range devices {
		vd := d.GetVirtualDevice()
		label := ""
		if vd.DeviceInfo != nil {
			label = strings.TrimSpace(vd.DeviceInfo.GetDescription().Label)
		}
		unit := ""
		if vd.UnitNumber != nil {
			unit = strconv.Itoa(int(*vd.UnitNumber))
		}
		var it xItem
		switch dev := d.(type) {
		case *types.VirtualDisk:
			ndisk++
			diskID := fmt.Sprintf("vmdisk%d", ndisk)
			capacity := dev.CapacityInBytes
			if capacity == 0 {
				capacity = dev.CapacityInKB * 1024
			}
			id := deviceID(vm.Self, devices, dev)
			xd := xDisk{DiskID: diskID, FileRef: fileIDs[id], Format: StreamOptimizedFormat}
			if f, ok := chosen[id]; ok {
				if f.Capacity > 0 {
					capacity = f.Capacity
				}
				if f.PopulatedSize > 0 {
					xd.PopulatedSize = strconv.FormatInt(f.PopulatedSize, 10)
				}
			}
			xd.Capacity, xd.CapacityUnits = capacityUnits(capacity)
			env.DiskSection.Disks = append(env.DiskSection.Disks, xd)
			if label == "" {
				label = fmt.Sprintf("Hard disk %d", ndisk)
			}
			it = xItem{AddressOnParent: unit, ElementName: label, HostResource: "ovf:/disk/" + diskID,
				Parent: instance[vd.ControllerKey], ResourceType: "17",
				Config: []xConfig{{Required: "false", Key: "backing.writeThrough", Value: "false"}}}
		case *types.VirtualCdrom:
			it = xItem{Required: "false", AddressOnParent: unit, AutomaticAllocation: "false", ElementName: label,
				Parent: instance[vd.ControllerKey], ResourceSubType: cdromSubType(dev), ResourceType: "15"}
		case types.BaseVirtualEthernetCard:
			net := e.networkName(ctx, vd.Backing)
			if net != "" && !slices.Contains(networks, net) {
				networks = append(networks, net)
			}
			kind := nicSubType(d)
			it = xItem{AddressOnParent: unit, AutomaticAllocation: "true", Connection: net,
				Description: fmt.Sprintf("%s ethernet adapter on %q", kind, net), ElementName: label,
				ResourceSubType: kind, ResourceType: "10",
				Config: []xConfig{{Required: "false", Key: "wakeOnLanEnabled", Value: "true"}}}
			if options["mac"] {
				it.Address = dev.GetVirtualEthernetCard().MacAddress
			}
		case *types.VirtualMachineVideoCard:
			it = xItem{Required: "false", AutomaticAllocation: "false", ElementName: label, ResourceType: "24",
				Config: []xConfig{
					{Required: "false", Key: "enable3DSupport", Value: "false"},
					{Required: "false", Key: "useAutoDetect", Value: "false"},
					{Required: "false", Key: "videoRamSizeInKB", Value: strconv.FormatInt(dev.VideoRamSizeInKB, 10)},
				}}
		case *types.VirtualMachineVMCIDevice:
			it = xItem{Required: "false", AutomaticAllocation: "false", ElementName: label,
				ResourceSubType: "vmware.vmci", ResourceType: "1"}
		default:
			continue
		}
		if it.ElementName == "" {
			it.ElementName = fmt.Sprintf("device %d", vd.Key)
		}
		it.InstanceID = strconv.Itoa(nextID)
		nextID++
		hw.Items = append(hw.Items, it)
	}
	if len(networks) > 0 {
		env.NetworkSection = &xNetworkSection{Info: "The list of logical networks"}
		for _, n := range networks {
			env.NetworkSection.Networks = append(env.NetworkSection.Networks, xNetwork{Name: n, Description: "The " + n + " network"})
		}
	}
	env.DiskSection.Info = "Virtual disk information"

	if cfg.Firmware != "" {
		hw.Config = append(hw.Config, xConfig{Required: "false", Key: "firmware", Value: cfg.Firmware})
	}
	if options["uuid"] {
		hw.Config = append(hw.Config, xConfig{Required: "false", Key: "uuid", Value: cfg.Uuid})
	}
	if options["extraconfig"] {
		for _, o := range cfg.ExtraConfig {
			ov := o.GetOptionValue()
			hw.ExtraConfig = append(hw.ExtraConfig, xConfig{Required: "false", Key: ov.Key, Value: fmt.Sprint(ov.Value)})
		}
	}
	if fid, ok := fileIDs[nvramID]; ok {
		hw.ExtraConfig = append(hw.ExtraConfig, xConfig{Required: "false", Key: "nvram", Value: "ovf:/file/" + fid})
	}

	out, err := xml.MarshalIndent(env, "", "  ")
	if err != nil {
		return "", nil, err.Error(), &types.SystemError{Reason: err.Error()}
	}
	return xml.Header + string(out) + "\n", nil, "", nil
}

// capacityUnits expresses a byte count in the largest binary unit that
// divides it, as vCenter does ("16", "byte * 2^30").
func capacityUnits(b int64) (string, string) {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "byte * 2^30"}, {20, "byte * 2^20"}, {10, "byte * 2^10"}} {
		if b > 0 && b%(1<<u.shift) == 0 {
			return strconv.FormatInt(b>>u.shift, 10), u.name
		}
	}
	return strconv.FormatInt(b, 10), "byte"
}

// controllerItem describes a disk controller, or reports false for other
// devices.
func controllerItem(d types.BaseVirtualDevice) (xItem, bool) {
	c, ok := d.(types.BaseVirtualController)
	if !ok {
		return xItem{}, false
	}
	bus := strconv.Itoa(int(c.GetVirtualController().BusNumber))
	label := ""
	if di := d.GetVirtualDevice().DeviceInfo; di != nil {
		label = strings.TrimSpace(di.GetDescription().Label)
	}
	it := xItem{Address: bus, ElementName: label}
	switch d.(type) {
	case *types.ParaVirtualSCSIController:
		it.Description, it.ResourceSubType, it.ResourceType = "SCSI Controller", "VirtualSCSI", "6"
	case *types.VirtualLsiLogicController:
		it.Description, it.ResourceSubType, it.ResourceType = "SCSI Controller", "lsilogic", "6"
	case *types.VirtualLsiLogicSASController:
		it.Description, it.ResourceSubType, it.ResourceType = "SCSI Controller", "lsilogicsas", "6"
	case *types.VirtualBusLogicController:
		it.Description, it.ResourceSubType, it.ResourceType = "SCSI Controller", "buslogic", "6"
	case *types.VirtualIDEController:
		it.Description, it.ResourceType = "IDE Controller", "5"
	case *types.VirtualAHCIController:
		it.Description, it.ResourceSubType, it.ResourceType = "SATA Controller", "vmware.sata.ahci", "20"
	case *types.VirtualNVMEController:
		it.Description, it.ResourceSubType, it.ResourceType = "NVME Controller", "vmware.nvme.controller", "20"
	default:
		return xItem{}, false // PCI, PS/2, SIO, USB: not described
	}
	if it.ElementName == "" {
		it.ElementName = it.Description + " " + bus
	}
	return it, true
}

func cdromSubType(c *types.VirtualCdrom) string {
	switch c.Backing.(type) {
	case *types.VirtualCdromIsoBackingInfo:
		return "vmware.cdrom.iso"
	case *types.VirtualCdromAtapiBackingInfo:
		return "vmware.cdrom.atapi"
	case *types.VirtualCdromRemoteAtapiBackingInfo:
		return "vmware.cdrom.remoteatapi"
	default:
		return "vmware.cdrom.remotepassthrough"
	}
}

func nicSubType(d types.BaseVirtualDevice) string {
	switch d.(type) {
	case *types.VirtualVmxnet3:
		return "VmxNet3"
	case *types.VirtualE1000:
		return "E1000"
	case *types.VirtualE1000e:
		return "E1000e"
	case *types.VirtualVmxnet2:
		return "VmxNet2"
	case *types.VirtualPCNet32:
		return "PCNet32"
	default:
		return "VmxNet3"
	}
}

// networkName returns the name of the network a NIC backing connects to.
func (e *Env) networkName(ctx *simulator.Context, b types.BaseVirtualDeviceBackingInfo) string {
	switch x := b.(type) {
	case *types.VirtualEthernetCardNetworkBackingInfo:
		return x.DeviceName
	case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
		for _, obj := range ctx.Map.All("DistributedVirtualPortgroup") {
			if pg, ok := obj.(*simulator.DistributedVirtualPortgroup); ok && pg.Key == x.Port.PortgroupKey {
				return pg.Name
			}
		}
		return x.Port.PortgroupKey
	case *types.VirtualEthernetCardOpaqueNetworkBackingInfo:
		return x.OpaqueNetworkId
	}
	return ""
}
