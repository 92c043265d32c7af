package azure

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"golang.org/x/sync/errgroup"

	"github.com/hypersdk/hypersdk/providers"
)

// Labels the provider adds to a VM's tags in VMInfo.Labels, for what
// VMInfo has no field for. User tags cannot start with "azure:" in spirit
// only; the prefix keeps them apart.
const (
	LabelVMSize        = "azure:vm-size"
	LabelLocation      = "azure:location"
	LabelResourceGroup = "azure:resource-group"
	LabelZone          = "azure:zone"
	LabelOSType        = "azure:os-type"
	LabelImage         = "azure:image"
	LabelSecurityType  = "azure:security-type"
	// LabelDiskSKU + the disk's label ("os", "lun0", …) is the disk's SKU.
	LabelDiskSKU = "azure:disk-sku:"
)

// vmRecord is a VM as ARM describes it, with what discovery added.
type vmRecord struct {
	vm    *armcompute.VirtualMachine
	rg    string
	view  *armcompute.VirtualMachineInstanceView
	disks []diskRef // OS disk first, then data disks by LUN
}

// diskRef is one managed disk of a VM.
type diskRef struct {
	label string // "os", "lun0", …
	id    string // the managed disk's resource id
	disk  *armcompute.Disk
}

// ListVMs implements providers.Provider: the subscription's VMs (or those
// of the configured resource groups) matching f, sorted by path
// (/<resource group>/<name>). The folder of a VM is its resource group;
// its datacenter is its region.
func (p *Provider) ListVMs(ctx context.Context, f providers.VMFilter) ([]*providers.VMInfo, error) {
	if f.Name != "" {
		if _, err := path.Match(f.Name, ""); err != nil {
			return nil, providers.Permanent(fmt.Errorf("%w: name pattern %q: %v", providers.ErrInvalidArgument, f.Name, err))
		}
	}
	vms, err := p.listVMs(ctx, func(v *armcompute.VirtualMachine, rg string) bool {
		// What can be told from the listing is checked before the
		// instance view and disks are fetched.
		if f.Name != "" {
			if ok, _ := path.Match(f.Name, to(v.Name)); !ok {
				return false
			}
		}
		if f.Datacenter != "" && !strings.EqualFold(f.Datacenter, to(v.Location)) {
			return false
		}
		if f.FolderPrefix != "" && !strings.HasPrefix(vmPath(rg, to(v.Name)), strings.TrimSuffix(f.FolderPrefix, "/")+"/") {
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]*providers.VMInfo, 0, len(vms))
	for _, vm := range vms {
		if f.Matches(vm) {
			out = append(out, vm)
		}
	}
	return out, nil
}

// to dereferences a string pointer.
func to(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func vmPath(rg, name string) string { return "/" + rg + "/" + name }

// GetVM implements providers.Provider: a VM's resource id, its path
// (/<resource group>/<name> or <resource group>/<name>), its VM id (the
// GUID Azure gives it), or its name when one VM of the subscription (or of
// the configured resource groups) carries it.
func (p *Provider) GetVM(ctx context.Context, identifier string) (*providers.VMInfo, error) {
	rec, err := p.findVM(ctx, identifier)
	if err != nil {
		return nil, err
	}
	return p.describe(ctx, rec)
}

// findVM looks a VM up by any of its identifiers, with its instance view
// and disks.
func (p *Provider) findVM(ctx context.Context, identifier string) (*vmRecord, error) {
	ident := strings.TrimSpace(identifier)
	if ident == "" {
		return nil, providers.Permanent(fmt.Errorf("%w: empty VM identifier", providers.ErrInvalidArgument))
	}
	if strings.HasPrefix(strings.ToLower(ident), "/subscriptions/") {
		id, err := arm.ParseResourceID(ident)
		if err != nil || !strings.EqualFold(id.ResourceType.String(), "Microsoft.Compute/virtualMachines") {
			return nil, providers.Permanent(fmt.Errorf("%w: %q is not a VM resource id (/subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/virtualMachines/NAME)", providers.ErrInvalidArgument, ident))
		}
		if !strings.EqualFold(id.SubscriptionID, p.cfg.SubscriptionID) {
			return nil, fmt.Errorf("azure %s: VM %s is in subscription %s, not %s: %w", p.name, ident, id.SubscriptionID, p.cfg.SubscriptionID, providers.ErrNotFound)
		}
		return p.getVM(ctx, id.ResourceGroupName, id.Name)
	}
	if rg, name, ok := strings.Cut(strings.TrimPrefix(ident, "/"), "/"); ok && !strings.Contains(name, "/") && rg != "" && name != "" {
		return p.getVM(ctx, rg, name)
	}
	byID := guidPattern.MatchString(ident)
	var matches []*vmRecord
	_, err := p.list(ctx, func(v *armcompute.VirtualMachine, rg string) bool {
		if byID {
			if v.Properties != nil && strings.EqualFold(to(v.Properties.VMID), ident) {
				matches = append(matches, &vmRecord{vm: v, rg: rg})
			}
		} else if strings.EqualFold(to(v.Name), ident) {
			matches = append(matches, &vmRecord{vm: v, rg: rg})
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	switch len(matches) {
	case 0:
		what := "name"
		if byID {
			what = "VM id"
		}
		return nil, fmt.Errorf("azure %s: no VM with %s %q: %w", p.name, what, ident, providers.ErrNotFound)
	case 1:
		return p.getVM(ctx, matches[0].rg, to(matches[0].vm.Name))
	default:
		paths := make([]string, len(matches))
		for i, m := range matches {
			paths[i] = vmPath(m.rg, to(m.vm.Name))
		}
		slices.Sort(paths)
		return nil, fmt.Errorf("azure %s: %d VMs are named %q (%s); use the path or the resource id: %w",
			p.name, len(matches), ident, strings.Join(paths, ", "), providers.ErrAmbiguous)
	}
}

// getVM gets one VM with its instance view, and its disks.
func (p *Provider) getVM(ctx context.Context, rg, name string) (*vmRecord, error) {
	if !p.groupAllowed(rg) {
		return nil, fmt.Errorf("azure %s: VM %s/%s: resource group %s is not among the configured resource_groups: %w", p.name, rg, name, rg, providers.ErrNotFound)
	}
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	res, err := c.vms.Get(ctx, rg, name, &armcompute.VirtualMachinesClientGetOptions{Expand: ptr(armcompute.InstanceViewTypesInstanceView)})
	if err != nil {
		err = p.armError(fmt.Sprintf("get VM %s/%s", rg, name), err)
		if statusOf(err) == http.StatusNotFound {
			return nil, providers.Permanent(err)
		}
		return nil, err
	}
	rec := &vmRecord{vm: &res.VirtualMachine, rg: rgOf(to(res.ID), rg)}
	if res.Properties != nil {
		rec.view = res.Properties.InstanceView
	}
	if err := p.resolveDisks(ctx, c, []*vmRecord{rec}, nil); err != nil {
		return nil, err
	}
	return rec, nil
}

func ptr[T any](v T) *T { return &v }

// rgOf is the resource group named in a resource id, else def.
func rgOf(id, def string) string {
	if r, err := arm.ParseResourceID(id); err == nil && r.ResourceGroupName != "" {
		return r.ResourceGroupName
	}
	return def
}

// groupAllowed reports whether rg is among the configured resource groups
// (all are when none is configured).
func (p *Provider) groupAllowed(rg string) bool {
	if len(p.cfg.ResourceGroups) == 0 {
		return true
	}
	return slices.ContainsFunc(p.cfg.ResourceGroups, func(g string) bool { return strings.EqualFold(g, rg) })
}

// list pages through the VMs of the subscription, or of each configured
// resource group, calling keep for each; it returns those keep accepted.
func (p *Provider) list(ctx context.Context, keep func(*armcompute.VirtualMachine, string) bool) ([]*vmRecord, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	var out []*vmRecord
	add := func(vms []*armcompute.VirtualMachine) {
		for _, v := range vms {
			if v == nil || v.Name == nil {
				continue
			}
			rg := rgOf(to(v.ID), "")
			if rg == "" || !p.groupAllowed(rg) {
				continue
			}
			if keep(v, rg) {
				out = append(out, &vmRecord{vm: v, rg: rg})
			}
		}
	}
	if len(p.cfg.ResourceGroups) == 0 {
		pages := c.vms.NewListAllPager(nil)
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, p.armError("list VMs", err)
			}
			add(page.Value)
		}
		return out, nil
	}
	for _, rg := range p.cfg.ResourceGroups {
		pages := c.vms.NewListPager(rg, nil)
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, p.armError("list VMs of resource group "+rg, err)
			}
			add(page.Value)
		}
	}
	return out, nil
}

// listVMs lists the VMs keep accepts and describes them: instance views
// and disks fetched concurrently, sizes from the size lists of their
// regions.
func (p *Provider) listVMs(ctx context.Context, keep func(*armcompute.VirtualMachine, string) bool) ([]*providers.VMInfo, error) {
	recs, err := p.list(ctx, keep)
	if err != nil {
		return nil, err
	}
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.tune.lookups)
	for _, rec := range recs {
		g.Go(func() error {
			res, err := c.vms.InstanceView(gctx, rec.rg, to(rec.vm.Name), nil)
			if err != nil {
				err = p.armError(fmt.Sprintf("instance view of %s/%s", rec.rg, to(rec.vm.Name)), err)
				if statusOf(err) == http.StatusNotFound {
					return nil // deleted since the listing: left out below
				}
				return err
			}
			rec.view = &res.VirtualMachineInstanceView
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	recs = slices.DeleteFunc(recs, func(r *vmRecord) bool { return r.view == nil })
	// Many VMs: one listing of the disks beats a call per disk.
	var known map[string]*armcompute.Disk
	if len(recs) > p.tune.lookups {
		if known, err = p.listDisks(ctx, c); err != nil {
			return nil, err
		}
	}
	if err := p.resolveDisks(ctx, c, recs, known); err != nil {
		return nil, err
	}
	out := make([]*providers.VMInfo, 0, len(recs))
	for _, rec := range recs {
		vm, err := p.describe(ctx, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, vm)
	}
	slices.SortFunc(out, func(a, b *providers.VMInfo) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// listDisks lists the managed disks of the subscription (or of the
// configured resource groups), by lower-cased resource id.
func (p *Provider) listDisks(ctx context.Context, c *clients) (map[string]*armcompute.Disk, error) {
	out := map[string]*armcompute.Disk{}
	add := func(ds []*armcompute.Disk) {
		for _, d := range ds {
			if d != nil && d.ID != nil {
				out[strings.ToLower(*d.ID)] = d
			}
		}
	}
	if len(p.cfg.ResourceGroups) == 0 {
		pages := c.disks.NewListPager(nil)
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, p.armError("list disks", err)
			}
			add(page.Value)
		}
		return out, nil
	}
	for _, rg := range p.cfg.ResourceGroups {
		pages := c.disks.NewListByResourceGroupPager(rg, nil)
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, p.armError("list disks of resource group "+rg, err)
			}
			add(page.Value)
		}
	}
	return out, nil
}

// resolveDisks fills each record's disks: the managed disks its storage
// profile names, from known when listed there, else fetched one by one.
// A VM on unmanaged (storage account VHD) disks is described without them.
func (p *Provider) resolveDisks(ctx context.Context, c *clients, recs []*vmRecord, known map[string]*armcompute.Disk) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.tune.lookups)
	for _, rec := range recs {
		rec.disks = nil
		props := rec.vm.Properties
		if props == nil || props.StorageProfile == nil {
			continue
		}
		sp := props.StorageProfile
		if sp.OSDisk != nil && sp.OSDisk.ManagedDisk != nil && sp.OSDisk.ManagedDisk.ID != nil {
			rec.disks = append(rec.disks, diskRef{label: "os", id: *sp.OSDisk.ManagedDisk.ID})
		}
		data := slices.Clone(sp.DataDisks)
		slices.SortFunc(data, func(a, b *armcompute.DataDisk) int { return cmp.Compare(deref32(a.Lun), deref32(b.Lun)) })
		for _, d := range data {
			if d != nil && d.ManagedDisk != nil && d.ManagedDisk.ID != nil {
				rec.disks = append(rec.disks, diskRef{label: "lun" + strconv.Itoa(int(deref32(d.Lun))), id: *d.ManagedDisk.ID})
			}
		}
		for i := range rec.disks {
			ref := &rec.disks[i]
			if d, ok := known[strings.ToLower(ref.id)]; ok {
				ref.disk = d
				continue
			}
			g.Go(func() error {
				d, err := p.getDisk(gctx, c, ref.id)
				if err != nil {
					return err
				}
				mu.Lock()
				ref.disk = d
				mu.Unlock()
				return nil
			})
		}
	}
	return g.Wait()
}

func deref32(v *int32) int32 {
	if v == nil {
		return 0
	}
	return *v
}

// getDisk fetches a managed disk by resource id.
func (p *Provider) getDisk(ctx context.Context, c *clients, id string) (*armcompute.Disk, error) {
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return nil, fmt.Errorf("azure %s: disk id %q: %w", p.name, id, err)
	}
	res, err := c.disks.Get(ctx, rid.ResourceGroupName, rid.Name, nil)
	if err != nil {
		return nil, p.armError("get disk "+id, err)
	}
	return &res.Disk, nil
}

// describe maps a VM record onto VMInfo.
func (p *Provider) describe(ctx context.Context, rec *vmRecord) (*providers.VMInfo, error) {
	v := rec.vm
	props := v.Properties
	if props == nil {
		props = &armcompute.VirtualMachineProperties{}
	}
	location := to(v.Location)
	sizeName := ""
	if props.HardwareProfile != nil && props.HardwareProfile.VMSize != nil {
		sizeName = string(*props.HardwareProfile.VMSize)
	}
	size, err := p.vmSize(ctx, location, sizeName)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for k, val := range v.Tags {
		labels[k] = to(val)
	}
	labels[LabelVMSize] = sizeName
	labels[LabelLocation] = location
	labels[LabelResourceGroup] = rec.rg
	if len(v.Zones) > 0 {
		labels[LabelZone] = to(v.Zones[0])
	}
	osType := ""
	if sp := props.StorageProfile; sp != nil {
		if sp.OSDisk != nil && sp.OSDisk.OSType != nil {
			osType = string(*sp.OSDisk.OSType)
			labels[LabelOSType] = osType
		}
		if ir := sp.ImageReference; ir != nil && ir.Publisher != nil {
			labels[LabelImage] = strings.Join([]string{to(ir.Publisher), to(ir.Offer), to(ir.SKU), cmp.Or(to(ir.ExactVersion), to(ir.Version))}, ":")
		}
	}
	security := ""
	if props.SecurityProfile != nil && props.SecurityProfile.SecurityType != nil {
		security = string(*props.SecurityProfile.SecurityType)
		labels[LabelSecurityType] = security
	}
	vm := &providers.VMInfo{
		ID: to(v.ID), Name: to(v.Name), Provider: p.name, Path: vmPath(rec.rg, to(v.Name)), Datacenter: location,
		PowerState: powerState(rec.view), GuestOS: guestOS(rec.view, osType, labels[LabelImage]),
		Firmware: firmware(rec, security), CPUs: int(size.cores), MemoryMiB: int64(size.memoryMiB),
		UUID: to(props.VMID), Disks: []providers.DiskInfo{}, NICs: []providers.NICInfo{}, Labels: labels,
	}
	controller := "scsi0"
	if sp := props.StorageProfile; sp != nil && sp.DiskControllerType != nil && *sp.DiskControllerType == armcompute.DiskControllerTypesNVMe {
		controller = "nvme0"
	}
	for _, ref := range rec.disks {
		d := providers.DiskInfo{Label: ref.label, Path: ref.id, Controller: controller}
		if controller == "nvme0" {
			d.ControllerModel = "nvme"
		}
		if ref.disk != nil {
			d.CapacityBytes = diskBytes(ref.disk)
			if ref.disk.SKU != nil && ref.disk.SKU.Name != nil {
				labels[LabelDiskSKU+ref.label] = string(*ref.disk.SKU.Name)
			}
		}
		vm.Disks = append(vm.Disks, d)
	}
	if np := props.NetworkProfile; np != nil {
		for i, n := range np.NetworkInterfaces {
			if n == nil || n.ID == nil {
				continue
			}
			name := *n.ID
			if r, err := arm.ParseResourceID(*n.ID); err == nil {
				name = r.Name
			}
			vm.NICs = append(vm.NICs, providers.NICInfo{Label: fmt.Sprintf("nic%d", i), Network: name, Type: "azure"})
		}
	}
	return vm, nil
}

// diskBytes is a disk's size in bytes.
func diskBytes(d *armcompute.Disk) int64 {
	if d.Properties == nil {
		return 0
	}
	if d.Properties.DiskSizeBytes != nil {
		return *d.Properties.DiskSizeBytes
	}
	return int64(deref32(d.Properties.DiskSizeGB)) << 30
}

// powerState maps the instance view's PowerState/… status.
func powerState(view *armcompute.VirtualMachineInstanceView) providers.PowerState {
	if view == nil {
		return providers.PowerUnknown
	}
	for _, s := range view.Statuses {
		code, ok := strings.CutPrefix(to(s.Code), "PowerState/")
		if !ok {
			continue
		}
		switch code {
		case "running":
			return providers.PowerOn
		case "deallocated", "stopped":
			// Stopped VMs keep their hardware (and their bill) but run
			// nothing: off either way.
			return providers.PowerOff
		default: // starting, stopping, deallocating
			return providers.PowerUnknown
		}
	}
	return providers.PowerUnknown
}

// guestOS is what the guest agent reports (OS name and version), else the
// OS type with the image it was made from.
func guestOS(view *armcompute.VirtualMachineInstanceView, osType, image string) string {
	if view != nil && view.OSName != nil && *view.OSName != "" {
		return strings.TrimSpace(*view.OSName + " " + to(view.OSVersion))
	}
	if image != "" {
		return osType + " (" + image + ")"
	}
	return osType
}

// firmware: Generation 2 VMs (and every Trusted Launch or confidential
// VM) boot UEFI, generation 1 BIOS.
func firmware(rec *vmRecord, security string) string {
	if security == string(armcompute.SecurityTypesTrustedLaunch) || security == string(armcompute.SecurityTypesConfidentialVM) {
		return "efi"
	}
	gen := ""
	if rec.view != nil && rec.view.HyperVGeneration != nil {
		gen = string(*rec.view.HyperVGeneration)
	} else if len(rec.disks) > 0 && rec.disks[0].disk != nil && rec.disks[0].disk.Properties != nil && rec.disks[0].disk.Properties.HyperVGeneration != nil {
		gen = string(*rec.disks[0].disk.Properties.HyperVGeneration)
	}
	switch gen {
	case "V2":
		return "efi"
	case "V1":
		return "bios"
	}
	return ""
}

// SearchVMs implements providers.Provider: a case-insensitive substring
// match over name, path, resource id, VM id, guest OS, size and region.
func (p *Provider) SearchVMs(ctx context.Context, query string) ([]*providers.VMInfo, error) {
	all, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(strings.TrimSpace(query))
	var out []*providers.VMInfo
	for _, vm := range all {
		hay := strings.ToLower(strings.Join([]string{vm.Name, vm.Path, vm.ID, vm.UUID, vm.GuestOS, vm.Labels[LabelVMSize], vm.Datacenter}, "\x00"))
		if strings.Contains(hay, q) {
			out = append(out, vm)
		}
	}
	return out, nil
}

// vmSizeInfo is what the VM sizes list says of a size.
type vmSizeInfo struct {
	cores, memoryMiB int32
}

// sizeCache remembers each region's VM sizes, which do not change.
type sizeCache struct {
	mu      sync.Mutex
	regions map[string]map[string]vmSizeInfo
}

// vmSize returns the size's vCPUs and memory from the region's VM sizes
// list (fetched once per region). A size the list lacks (retired) reports
// zeros.
func (p *Provider) vmSize(ctx context.Context, location, size string) (vmSizeInfo, error) {
	if location == "" || size == "" {
		return vmSizeInfo{}, nil
	}
	key := strings.ToLower(location)
	p.sizeCache.mu.Lock()
	defer p.sizeCache.mu.Unlock()
	if p.sizeCache.regions == nil {
		p.sizeCache.regions = map[string]map[string]vmSizeInfo{}
	}
	sizes, ok := p.sizeCache.regions[key]
	if !ok {
		c, err := p.clients()
		if err != nil {
			return vmSizeInfo{}, err
		}
		sizes = map[string]vmSizeInfo{}
		pages := c.sizes.NewListPager(location, nil)
		for pages.More() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return vmSizeInfo{}, p.armError("list the VM sizes of "+location, err)
			}
			for _, s := range page.Value {
				if s != nil && s.Name != nil {
					sizes[strings.ToLower(*s.Name)] = vmSizeInfo{cores: deref32(s.NumberOfCores), memoryMiB: deref32(s.MemoryInMB)}
				}
			}
		}
		p.sizeCache.regions[key] = sizes
	}
	info, ok := sizes[strings.ToLower(size)]
	if !ok {
		p.log.Debug("VM size not in the region's list", "size", size, "location", location, "known", len(sizes))
	}
	return info, nil
}
