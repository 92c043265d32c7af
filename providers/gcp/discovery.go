package gcp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/iterator"
	"google.golang.org/protobuf/proto"

	"github.com/hypersdk/hypersdk/providers"
)

// Labels the provider adds to an instance's labels in VMInfo.Labels (user
// label keys cannot contain ':').
const (
	LabelMachineType = "gce:machine-type"
	LabelZone        = "gce:zone"
	LabelStatus      = "gce:status"
)

// instanceLink matches an instance's self-link or relative resource name.
var instanceLink = regexp.MustCompile(`(?:^|/)projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$`)

// ListVMs implements providers.Provider: the instances of every configured
// zone, sorted by their resource path (zone, then name). Datacenter is the
// zone; Compute Engine has no folders, so a FolderPrefix matches nothing.
func (p *Provider) ListVMs(ctx context.Context, f providers.VMFilter) ([]*providers.VMInfo, error) {
	if f.Name != "" {
		if _, err := path.Match(f.Name, ""); err != nil {
			return nil, providers.Permanent(fmt.Errorf("%w: name pattern %q: %v", providers.ErrInvalidArgument, f.Name, err))
		}
	}
	if f.FolderPrefix != "" {
		return []*providers.VMInfo{}, nil
	}
	var out []*providers.VMInfo
	for _, z := range p.cfg.Zones {
		if f.Datacenter != "" && f.Datacenter != z {
			continue
		}
		vms, err := p.listZone(ctx, z)
		if err != nil {
			return nil, err
		}
		for _, vm := range vms {
			if f.Matches(vm) {
				out = append(out, vm)
			}
		}
	}
	sortVMs(out)
	if out == nil {
		out = []*providers.VMInfo{}
	}
	return out, nil
}

func sortVMs(vms []*providers.VMInfo) {
	slices.SortFunc(vms, func(a, b *providers.VMInfo) int { return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.ID, b.ID)) })
}

// listZone pages through the zone's instances.
func (p *Provider) listZone(ctx context.Context, zone string) ([]*providers.VMInfo, error) {
	c, err := p.clients()
	if err != nil {
		return nil, err
	}
	it := c.instances.List(ctx, &computepb.ListInstancesRequest{Project: p.cfg.Project, Zone: zone, MaxResults: proto.Uint32(p.tune.pageSize)})
	var out []*providers.VMInfo
	for {
		in, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, p.apiError("list instances of "+zone, err)
		}
		vm, err := p.vmInfo(ctx, zone, in)
		if err != nil {
			return nil, err
		}
		out = append(out, vm)
	}
	return out, nil
}

// GetVM implements providers.Provider: an instance's numeric id, its
// self-link or resource path (projects/P/zones/Z/instances/N), or its
// name when exactly one configured zone has an instance of that name.
func (p *Provider) GetVM(ctx context.Context, identifier string) (*providers.VMInfo, error) {
	vm, _, err := p.getInstance(ctx, identifier)
	return vm, err
}

// getInstance is GetVM returning the instance as Compute Engine
// describes it too.
func (p *Provider) getInstance(ctx context.Context, identifier string) (*providers.VMInfo, *computepb.Instance, error) {
	ident := strings.TrimSpace(identifier)
	if ident == "" {
		return nil, nil, providers.Permanent(fmt.Errorf("%w: empty instance identifier", providers.ErrInvalidArgument))
	}
	c, err := p.clients()
	if err != nil {
		return nil, nil, err
	}
	get := func(zone, name string) (*providers.VMInfo, *computepb.Instance, error) {
		in, err := c.instances.Get(ctx, &computepb.GetInstanceRequest{Project: p.cfg.Project, Zone: zone, Instance: name})
		if err != nil {
			return nil, nil, err
		}
		vm, err := p.vmInfo(ctx, zone, in)
		return vm, in, err
	}
	if m := instanceLink.FindStringSubmatch(ident); m != nil {
		if m[1] != p.cfg.Project || !slices.Contains(p.cfg.Zones, m[2]) {
			return nil, nil, fmt.Errorf("gcp %s: instance %q is not in project %s, zones %v: %w", p.name, ident, p.cfg.Project, p.cfg.Zones, providers.ErrNotFound)
		}
		vm, in, err := get(m[2], m[3])
		if isNotFound(err) {
			return nil, nil, fmt.Errorf("gcp %s: instance %q: %w", p.name, ident, providers.ErrNotFound)
		}
		if err != nil {
			return nil, nil, p.apiError("get instance "+ident, err)
		}
		return vm, in, nil
	}
	if _, err := strconv.ParseUint(ident, 10, 64); err == nil {
		for _, z := range p.cfg.Zones {
			vms, err := p.listZone(ctx, z)
			if err != nil {
				return nil, nil, err
			}
			for _, vm := range vms {
				if vm.ID == ident {
					return get(z, vm.Name)
				}
			}
		}
		return nil, nil, fmt.Errorf("gcp %s: no instance with id %s in zones %v: %w", p.name, ident, p.cfg.Zones, providers.ErrNotFound)
	}
	var found []*providers.VMInfo
	var insts []*computepb.Instance
	for _, z := range p.cfg.Zones {
		vm, in, err := get(z, ident)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, p.apiError("get instance "+ident+" in "+z, err)
		}
		found, insts = append(found, vm), append(insts, in)
	}
	switch len(found) {
	case 0:
		return nil, nil, fmt.Errorf("gcp %s: no instance named %q in zones %v: %w", p.name, ident, p.cfg.Zones, providers.ErrNotFound)
	case 1:
		return found[0], insts[0], nil
	}
	var paths []string
	for _, vm := range found {
		paths = append(paths, vm.Path)
	}
	return nil, nil, fmt.Errorf("gcp %s: %q names %d instances (%s); use the resource path or id: %w",
		p.name, ident, len(found), strings.Join(paths, ", "), providers.ErrAmbiguous)
}

// SearchVMs implements providers.Provider: a case-insensitive substring
// match over name, id, guest OS, machine type and zone.
func (p *Provider) SearchVMs(ctx context.Context, query string) ([]*providers.VMInfo, error) {
	all, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(strings.TrimSpace(query))
	out := []*providers.VMInfo{}
	for _, vm := range all {
		hay := strings.ToLower(strings.Join([]string{vm.Name, vm.ID, vm.GuestOS, vm.Labels[LabelMachineType], vm.Datacenter}, "\x00"))
		if strings.Contains(hay, q) {
			out = append(out, vm)
		}
	}
	return out, nil
}

// vmInfo maps an instance onto VMInfo.
func (p *Provider) vmInfo(ctx context.Context, zone string, in *computepb.Instance) (*providers.VMInfo, error) {
	mt := lastSegment(in.GetMachineType())
	size, err := p.machineType(ctx, zone, mt)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for k, v := range in.GetLabels() {
		labels[k] = v
	}
	labels[LabelMachineType], labels[LabelZone], labels[LabelStatus] = mt, zone, in.GetStatus()
	vm := &providers.VMInfo{
		ID:   strconv.FormatUint(in.GetId(), 10),
		Name: in.GetName(), Provider: p.name,
		Path:       "projects/" + p.cfg.Project + "/zones/" + zone + "/instances/" + in.GetName(),
		Datacenter: zone,
		PowerState: powerState(in.GetStatus()),
		CPUs:       int(size.cpus), MemoryMiB: int64(size.memMiB),
		Disks:  []providers.DiskInfo{},
		NICs:   []providers.NICInfo{},
		Labels: labels,
	}
	disks := slices.Clone(in.GetDisks())
	slices.SortStableFunc(disks, func(a, b *computepb.AttachedDisk) int {
		if a.GetBoot() != b.GetBoot() {
			if a.GetBoot() {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.GetIndex(), b.GetIndex())
	})
	for _, d := range disks {
		if d.GetType() == "SCRATCH" {
			continue // local SSDs have no snapshot and die with the VM
		}
		if d.GetBoot() {
			vm.GuestOS = guestOS(d.GetLicenses())
			vm.Firmware = "bios"
			for _, f := range d.GetGuestOsFeatures() {
				if f.GetType() == "UEFI_COMPATIBLE" {
					vm.Firmware = "efi"
				}
			}
		}
		ctrl := "scsi"
		if d.GetInterface() == "NVME" {
			ctrl = "nvme"
		}
		vm.Disks = append(vm.Disks, providers.DiskInfo{
			Label: d.GetDeviceName(), CapacityBytes: d.GetDiskSizeGb() << 30,
			Path: relativeName(d.GetSource()), Controller: fmt.Sprintf("%s%d", ctrl, 0), ControllerModel: controllerModel(d.GetInterface()),
		})
	}
	for _, n := range in.GetNetworkInterfaces() {
		vm.NICs = append(vm.NICs, providers.NICInfo{Label: n.GetName(), Network: lastSegment(n.GetNetwork()), Type: n.GetNicType()})
	}
	return vm, nil
}

func controllerModel(iface string) string {
	if iface == "NVME" {
		return "nvme"
	}
	return "pvscsi" // virtio-scsi: the closest model a descriptor knows
}

func powerState(status string) providers.PowerState {
	switch status {
	case "RUNNING":
		return providers.PowerOn
	case "TERMINATED", "STOPPED":
		return providers.PowerOff
	case "SUSPENDED":
		return providers.PowerSuspend
	}
	return providers.PowerUnknown // PROVISIONING, STAGING, STOPPING, SUSPENDING, REPAIRING
}

// guestOS is the boot disk's OS licence ("debian-12-bookworm",
// "windows-server-2022-dc"), the closest Compute Engine has to a guest OS.
func guestOS(licenses []string) string {
	for _, l := range licenses {
		if name := lastSegment(l); name != "" {
			return name
		}
	}
	return ""
}

func lastSegment(url string) string {
	return url[strings.LastIndexByte(url, '/')+1:]
}

// relativeName turns a self-link into its resource path
// (projects/P/zones/Z/disks/D).
func relativeName(link string) string {
	if i := strings.Index(link, "projects/"); i >= 0 {
		return link[i:]
	}
	return link
}

// machineSize is what MachineTypes says of a type.
type machineSize struct{ cpus, memMiB int32 }

// machineTypeCache remembers machine type sizes per zone.
type machineTypeCache struct {
	mu    sync.Mutex
	sizes map[string]machineSize
}

// machineType returns the vCPUs and memory of a machine type of zone
// (custom types included), asking MachineTypes.Get once per zone and type.
func (p *Provider) machineType(ctx context.Context, zone, name string) (machineSize, error) {
	key := zone + "/" + name
	p.types.mu.Lock()
	s, ok := p.types.sizes[key]
	p.types.mu.Unlock()
	if ok || name == "" {
		return s, nil
	}
	c, err := p.clients()
	if err != nil {
		return s, err
	}
	mt, err := c.mtypes.Get(ctx, &computepb.GetMachineTypeRequest{Project: p.cfg.Project, Zone: zone, MachineType: name})
	if isNotFound(err) {
		p.log.Debug("machine type unknown to Compute Engine", "machine_type", name, "zone", zone)
		return s, nil
	}
	if err != nil {
		return s, p.apiError("get machine type "+name, err)
	}
	s = machineSize{cpus: mt.GetGuestCpus(), memMiB: mt.GetMemoryMb()}
	p.types.mu.Lock()
	if p.types.sizes == nil {
		p.types.sizes = map[string]machineSize{}
	}
	p.types.sizes[key] = s
	p.types.mu.Unlock()
	return s, nil
}
