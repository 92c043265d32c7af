package vsphere

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/hypersdk/hypersdk/providers"
)

// vmProperties are the only VM properties discovery asks for: enough for
// VMInfo, nothing more (the PropertyCollector cost grows with them).
var vmProperties = []string{
	"name", "parent", "parentVApp", "runtime.powerState", "config.guestId", "config.guestFullName",
	"config.hardware.numCPU", "config.hardware.memoryMB", "config.hardware.device",
	"config.uuid", "config.instanceUuid", "config.template",
}

// inventory is the part of the inventory tree needed to name things.
type inventory struct {
	parent   map[types.ManagedObjectReference]types.ManagedObjectReference
	name     map[types.ManagedObjectReference]string
	kind     map[types.ManagedObjectReference]string
	networks map[string]string // network/portgroup MoRef value and portgroup key → name
	root     types.ManagedObjectReference
}

// pathOf is the govc-style inventory path: /DC/vm/folder/name.
func (inv *inventory) pathOf(ref types.ManagedObjectReference, name string) (p, dc string) {
	parts := []string{name}
	cur, ok := inv.parent[ref]
	for i := 0; ok && cur != inv.root && i < 64; i++ {
		parts = append(parts, inv.name[cur])
		if inv.kind[cur] == "Datacenter" {
			dc = inv.name[cur]
		}
		cur, ok = inv.parent[cur]
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + strings.Join(parts, "/"), dc
}

func (p *Provider) loadInventory(ctx context.Context, c *vim25.Client) (*inventory, error) {
	inv := &inventory{
		parent:   map[types.ManagedObjectReference]types.ManagedObjectReference{},
		name:     map[types.ManagedObjectReference]string{},
		kind:     map[types.ManagedObjectReference]string{},
		networks: map[string]string{}, root: c.ServiceContent.RootFolder,
	}
	m := view.NewManager(c)
	v, err := m.CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"Folder", "Datacenter", "VirtualApp"}, true)
	if err != nil {
		return nil, err
	}
	defer v.Destroy(context.WithoutCancel(ctx))
	var entities []mo.ManagedEntity
	if err := v.Retrieve(ctx, []string{"Folder", "Datacenter", "VirtualApp"}, []string{"name", "parent"}, &entities); err != nil {
		return nil, err
	}
	for _, e := range entities {
		inv.name[e.Self] = e.Name
		inv.kind[e.Self] = e.Self.Type
		if e.Parent != nil {
			inv.parent[e.Self] = *e.Parent
		}
	}
	nv, err := m.CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"Network"}, true)
	if err != nil {
		return nil, err
	}
	defer nv.Destroy(context.WithoutCancel(ctx))
	var nets []mo.Network
	if err := nv.Retrieve(ctx, []string{"Network"}, []string{"name"}, &nets); err != nil {
		return nil, err
	}
	for _, n := range nets {
		inv.networks[n.Self.Value] = n.Name
	}
	return inv, nil
}

// retrieveVMs lists VMs (all, or just refs) with their properties.
func (p *Provider) retrieveVMs(ctx context.Context, c *vim25.Client, refs []types.ManagedObjectReference) ([]mo.VirtualMachine, error) {
	var vms []mo.VirtualMachine
	if refs != nil {
		if len(refs) == 0 {
			return nil, nil
		}
		err := property.DefaultCollector(c).Retrieve(ctx, refs, vmProperties, &vms)
		return vms, err
	}
	root := c.ServiceContent.RootFolder
	if p.datacenter != "" {
		dc, err := p.findDatacenter(ctx, c)
		if err != nil {
			return nil, err
		}
		root = dc
	}
	v, err := view.NewManager(c).CreateContainerView(ctx, root, []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, err
	}
	defer v.Destroy(context.WithoutCancel(ctx))
	err = v.Retrieve(ctx, []string{"VirtualMachine"}, vmProperties, &vms)
	return vms, err
}

func (p *Provider) findDatacenter(ctx context.Context, c *vim25.Client) (types.ManagedObjectReference, error) {
	v, err := view.NewManager(c).CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"Datacenter"}, true)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	defer v.Destroy(context.WithoutCancel(ctx))
	var dcs []mo.Datacenter
	if err := v.RetrieveWithFilter(ctx, []string{"Datacenter"}, []string{"name"}, &dcs, property.Match{"name": p.datacenter}); err != nil || len(dcs) == 0 {
		return types.ManagedObjectReference{}, providers.Permanent(fmt.Errorf("datacenter %q: %w", p.datacenter, providers.ErrNotFound))
	}
	return dcs[0].Self, nil
}

func (p *Provider) toVMInfo(vm *mo.VirtualMachine, inv *inventory) *providers.VMInfo {
	ref := vm.Self
	if vm.ParentVApp != nil && vm.Parent == nil {
		inv.parent[ref] = *vm.ParentVApp
	} else if vm.Parent != nil {
		inv.parent[ref] = *vm.Parent
	}
	vmPath, dc := inv.pathOf(ref, vm.Name)
	info := &providers.VMInfo{
		ID: ref.Value, Name: vm.Name, Provider: p.name, Path: vmPath, Datacenter: dc,
		PowerState: powerState(vm.Runtime.PowerState), Disks: []providers.DiskInfo{}, NICs: []providers.NICInfo{},
	}
	if vm.Config == nil {
		return info // inaccessible or being created
	}
	cfg := vm.Config
	info.GuestOS = cfg.GuestId
	info.Firmware = cfg.Firmware
	info.CPUs = int(cfg.Hardware.NumCPU)
	info.MemoryMiB = int64(cfg.Hardware.MemoryMB)
	info.UUID, info.InstanceUUID = cfg.Uuid, cfg.InstanceUuid
	if cfg.GuestFullName != "" {
		info.Labels = map[string]string{"guest_full_name": cfg.GuestFullName}
	}
	if cfg.Template {
		if info.Labels == nil {
			info.Labels = map[string]string{}
		}
		info.Labels["template"] = "true"
	}
	controllers := map[int32]string{}
	models := map[int32]string{}
	for _, d := range cfg.Hardware.Device {
		if c, ok := d.(types.BaseVirtualController); ok {
			controllers[d.GetVirtualDevice().Key] = controllerKind(c) + fmt.Sprintf("%d", c.GetVirtualController().BusNumber)
			models[d.GetVirtualDevice().Key] = controllerModel(c)
		}
	}
	for _, d := range cfg.Hardware.Device {
		dev := d.GetVirtualDevice()
		label := ""
		if dev.DeviceInfo != nil {
			label = dev.DeviceInfo.GetDescription().Label
		}
		switch dd := d.(type) {
		case *types.VirtualDisk:
			disk := providers.DiskInfo{Label: label, CapacityBytes: dd.CapacityInBytes, Controller: controllers[dev.ControllerKey],
				ControllerModel: models[dev.ControllerKey]}
			if disk.CapacityBytes == 0 {
				disk.CapacityBytes = dd.CapacityInKB * 1024
			}
			switch b := dev.Backing.(type) {
			case *types.VirtualDiskFlatVer2BackingInfo:
				disk.Path = b.FileName
				switch {
				case b.ThinProvisioned != nil && *b.ThinProvisioned:
					disk.Provisioning = "thin"
				case b.EagerlyScrub != nil && *b.EagerlyScrub:
					disk.Provisioning = "eagerZeroedThick"
				default:
					disk.Provisioning = "thick"
				}
			case types.BaseVirtualDeviceFileBackingInfo:
				disk.Path = b.GetVirtualDeviceFileBackingInfo().FileName
			}
			info.Disks = append(info.Disks, disk)
		case types.BaseVirtualEthernetCard:
			card := dd.GetVirtualEthernetCard()
			nic := providers.NICInfo{Label: label, MAC: card.MacAddress, Type: nicType(d)}
			switch b := dev.Backing.(type) {
			case *types.VirtualEthernetCardNetworkBackingInfo:
				nic.Network = b.DeviceName
			case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
				nic.Network = inv.networks[b.Port.PortgroupKey]
				if nic.Network == "" {
					nic.Network = b.Port.PortgroupKey
				}
			case *types.VirtualEthernetCardOpaqueNetworkBackingInfo:
				nic.Network = b.OpaqueNetworkId
			}
			info.NICs = append(info.NICs, nic)
		}
	}
	return info
}

func controllerKind(c types.BaseVirtualController) string {
	switch c.(type) {
	case types.BaseVirtualSCSIController:
		return "scsi"
	case *types.VirtualIDEController:
		return "ide"
	case *types.VirtualSATAController, *types.VirtualAHCIController:
		return "sata"
	case *types.VirtualNVMEController:
		return "nvme"
	default:
		return "controller"
	}
}

// controllerModel names a controller's model as providers.DiskInfo does.
func controllerModel(c types.BaseVirtualController) string {
	switch c.(type) {
	case *types.ParaVirtualSCSIController:
		return "pvscsi"
	case *types.VirtualLsiLogicController:
		return "lsilogic"
	case *types.VirtualLsiLogicSASController:
		return "lsilogicsas"
	case *types.VirtualBusLogicController:
		return "buslogic"
	case *types.VirtualIDEController:
		return "ide"
	case *types.VirtualSATAController, *types.VirtualAHCIController:
		return "sata"
	case *types.VirtualNVMEController:
		return "nvme"
	}
	return ""
}

func nicType(d types.BaseVirtualDevice) string {
	t := fmt.Sprintf("%T", d)
	t = strings.TrimPrefix(t, "*types.Virtual")
	return strings.ToLower(t)
}

func powerState(s types.VirtualMachinePowerState) providers.PowerState {
	switch s {
	case types.VirtualMachinePowerStatePoweredOn:
		return providers.PowerOn
	case types.VirtualMachinePowerStatePoweredOff:
		return providers.PowerOff
	case types.VirtualMachinePowerStateSuspended:
		return providers.PowerSuspend
	default:
		return providers.PowerUnknown
	}
}

// ListVMs implements providers.Provider.
func (p *Provider) ListVMs(ctx context.Context, f providers.VMFilter) ([]*providers.VMInfo, error) {
	if f.Name != "" {
		if _, err := path.Match(f.Name, ""); err != nil {
			return nil, providers.Permanent(fmt.Errorf("%w: name pattern %q: %v", providers.ErrInvalidArgument, f.Name, err))
		}
	}
	var out []*providers.VMInfo
	err := p.pool.Do(ctx, func(ctx context.Context, c *vim25.Client) error {
		out = nil
		inv, err := p.loadInventory(ctx, c)
		if err != nil {
			return err
		}
		vms, err := p.retrieveVMs(ctx, c, nil)
		if err != nil {
			return err
		}
		for i := range vms {
			info := p.toVMInfo(&vms[i], inv)
			if f.Matches(info) {
				out = append(out, info)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list VMs on %s: %w", p.name, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

var (
	moRefPattern = regexp.MustCompile(`^vm-\d+$`)
	uuidPattern  = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)
)

// GetVM implements providers.Provider: identifier is a MoRef (vm-42), an
// inventory path (/DC0/vm/web01), a BIOS or instance UUID, or a name.
func (p *Provider) GetVM(ctx context.Context, identifier string) (*providers.VMInfo, error) {
	id := strings.TrimSpace(identifier)
	if id == "" {
		return nil, providers.Permanent(fmt.Errorf("%w: empty VM identifier", providers.ErrInvalidArgument))
	}
	var found *providers.VMInfo
	var candidates []string
	err := p.pool.Do(ctx, func(ctx context.Context, c *vim25.Client) error {
		found, candidates = nil, nil
		inv, err := p.loadInventory(ctx, c)
		if err != nil {
			return err
		}
		var refs []types.ManagedObjectReference
		switch {
		case moRefPattern.MatchString(id):
			refs = []types.ManagedObjectReference{{Type: "VirtualMachine", Value: id}}
		case strings.HasPrefix(id, "/"):
			r, err := findByPath(ctx, c, id)
			if err != nil {
				return err
			}
			if r != nil {
				refs = []types.ManagedObjectReference{*r}
			}
		case uuidPattern.MatchString(id):
			refs, err = findByUUID(ctx, c, id)
			if err != nil {
				return err
			}
		}
		var vms []mo.VirtualMachine
		if refs != nil {
			if len(refs) > 0 {
				vms, err = p.retrieveVMs(ctx, c, refs)
				if err != nil && !isManagedObjectNotFound(err) {
					return err
				}
			}
		} else {
			all, err := p.retrieveVMs(ctx, c, nil)
			if err != nil {
				return err
			}
			for _, vm := range all {
				if vm.Name == id {
					vms = append(vms, vm)
				}
			}
		}
		for i := range vms {
			info := p.toVMInfo(&vms[i], inv)
			if p.datacenter != "" && info.Datacenter != p.datacenter {
				continue
			}
			if found == nil {
				found = info
			}
			candidates = append(candidates, info.Path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find VM %q on %s: %w", id, p.name, err)
	}
	switch {
	case found == nil:
		return nil, providers.Permanent(fmt.Errorf("VM %q on %s: %w", id, p.name, providers.ErrNotFound))
	case len(candidates) > 1:
		return nil, providers.Permanent(fmt.Errorf("VM name %q on %s matches %d VMs (%s): use an inventory path or ID: %w",
			id, p.name, len(candidates), strings.Join(candidates, ", "), providers.ErrAmbiguous))
	}
	return found, nil
}

func findByPath(ctx context.Context, c *vim25.Client, p string) (*types.ManagedObjectReference, error) {
	req := types.FindByInventoryPath{This: *c.ServiceContent.SearchIndex, InventoryPath: strings.TrimPrefix(p, "/")}
	res, err := findByInventoryPath(ctx, c, &req)
	if err != nil || res == nil || res.Type != "VirtualMachine" {
		return nil, err
	}
	return res, nil
}

func findByUUID(ctx context.Context, c *vim25.Client, id string) ([]types.ManagedObjectReference, error) {
	var out []types.ManagedObjectReference
	seen := map[types.ManagedObjectReference]bool{}
	for _, instance := range []bool{false, true} {
		refs, err := findAllByUUID(ctx, c, id, instance)
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// SearchVMs implements providers.Provider: a case-insensitive substring
// match over name, path, guest OS, ID and UUIDs.
func (p *Provider) SearchVMs(ctx context.Context, query string) ([]*providers.VMInfo, error) {
	all, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(strings.TrimSpace(query))
	var out []*providers.VMInfo
	for _, vm := range all {
		hay := strings.ToLower(strings.Join([]string{vm.Name, vm.Path, vm.GuestOS, vm.ID, vm.UUID, vm.InstanceUUID}, "\x00"))
		if strings.Contains(hay, q) {
			out = append(out, vm)
		}
	}
	return out, nil
}
