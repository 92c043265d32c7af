package aws

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hypersdk/hypersdk/providers"
)

// Labels the provider adds to an instance's tags in VMInfo.Labels, for
// what VMInfo has no field for. User tags cannot start with "aws:"; these
// use "ec2:" so they do not pose as AWS's own tags.
const (
	LabelInstanceType     = "ec2:instance-type"
	LabelArchitecture     = "ec2:architecture"
	LabelPlatform         = "ec2:platform-details"
	LabelAvailabilityZone = "ec2:availability-zone"
)

// instanceIDPattern is the shape of an instance id (old 8-digit and
// current 17-digit forms).
var instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)

// ListVMs implements providers.Provider: every instance that is not
// terminated, sorted by name then id. Name, power state and availability
// zone (VMFilter.Datacenter) narrow the query on EC2's side too; EC2 has
// no folders, so a FolderPrefix matches nothing.
func (p *Provider) ListVMs(ctx context.Context, f providers.VMFilter) ([]*providers.VMInfo, error) {
	if f.Name != "" {
		if _, err := path.Match(f.Name, ""); err != nil {
			return nil, providers.Permanent(fmt.Errorf("%w: name pattern %q: %v", providers.ErrInvalidArgument, f.Name, err))
		}
	}
	if f.FolderPrefix != "" {
		return []*providers.VMInfo{}, nil
	}
	in := &ec2.DescribeInstancesInput{Filters: serverFilters(f), MaxResults: aws.Int32(p.tune.pageSize)}
	vms, err := p.describe(ctx, in)
	if err != nil {
		return nil, err
	}
	out := vms[:0]
	for _, vm := range vms {
		if f.Matches(vm) {
			out = append(out, vm)
		}
	}
	return out, nil
}

// serverFilters turns what EC2 can filter on into its filters; matches
// re-checks every field on our side.
func serverFilters(f providers.VMFilter) []ec2types.Filter {
	states := []string{"pending", "running", "shutting-down", "stopping", "stopped"}
	switch f.PowerState {
	case providers.PowerOn:
		states = []string{"running"}
	case providers.PowerOff:
		states = []string{"stopped"}
	case providers.PowerUnknown:
		states = []string{"pending", "shutting-down", "stopping"}
	}
	fs := []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: states}}
	// EC2's wildcards are * and ?; a pattern with classes or escapes is
	// left to our side alone.
	if f.Name != "" && !strings.ContainsAny(f.Name, `[\`) {
		fs = append(fs, ec2types.Filter{Name: aws.String("tag:Name"), Values: []string{f.Name}})
	}
	if f.Datacenter != "" {
		fs = append(fs, ec2types.Filter{Name: aws.String("availability-zone"), Values: []string{ec2Literal(f.Datacenter)}})
	}
	return fs
}

// ec2Literal escapes EC2's filter wildcards so that s matches itself.
func ec2Literal(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`).Replace(s)
}

// GetVM implements providers.Provider: an instance id, or the value of a
// Name tag that exactly one live instance carries.
func (p *Provider) GetVM(ctx context.Context, identifier string) (*providers.VMInfo, error) {
	ident := strings.TrimSpace(identifier)
	if ident == "" {
		return nil, providers.Permanent(fmt.Errorf("%w: empty instance identifier", providers.ErrInvalidArgument))
	}
	var in *ec2.DescribeInstancesInput
	if instanceIDPattern.MatchString(ident) {
		in = &ec2.DescribeInstancesInput{InstanceIds: []string{ident}}
	} else {
		in = &ec2.DescribeInstancesInput{
			Filters: []ec2types.Filter{
				{Name: aws.String("tag:Name"), Values: []string{ec2Literal(ident)}},
				{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "shutting-down", "stopping", "stopped"}},
			},
			MaxResults: aws.Int32(p.tune.pageSize),
		}
	}
	vms, err := p.describe(ctx, in)
	if apiCode(err) == "InvalidInstanceID.NotFound" || apiCode(err) == "InvalidInstanceID.Malformed" {
		return nil, fmt.Errorf("aws %s: instance %q: %w", p.name, ident, providers.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	switch len(vms) {
	case 0:
		return nil, fmt.Errorf("aws %s: no instance with id or Name tag %q: %w", p.name, ident, providers.ErrNotFound)
	case 1:
		return vms[0], nil
	default:
		ids := make([]string, len(vms))
		for i, vm := range vms {
			ids[i] = vm.ID
		}
		return nil, fmt.Errorf("aws %s: Name %q is carried by %d instances (%s); use the instance id: %w",
			p.name, ident, len(vms), strings.Join(ids, ", "), providers.ErrAmbiguous)
	}
}

// SearchVMs implements providers.Provider: a case-insensitive substring
// match over name, id, guest OS, instance type and availability zone.
func (p *Provider) SearchVMs(ctx context.Context, query string) ([]*providers.VMInfo, error) {
	all, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(strings.TrimSpace(query))
	var out []*providers.VMInfo
	for _, vm := range all {
		hay := strings.ToLower(strings.Join([]string{vm.Name, vm.ID, vm.GuestOS, vm.Labels[LabelInstanceType], vm.Datacenter}, "\x00"))
		if strings.Contains(hay, q) {
			out = append(out, vm)
		}
	}
	return out, nil
}

// describe runs DescribeInstances over all pages and returns the
// instances as VMInfo, with their sizes from DescribeInstanceTypes and
// their volumes from DescribeVolumes, sorted by name then id. Terminated
// instances, which EC2 still reports for a while (to a lookup by id too),
// are left out: they have nothing left to export.
func (p *Provider) describe(ctx context.Context, in *ec2.DescribeInstancesInput) ([]*providers.VMInfo, error) {
	c, _, err := p.clients()
	if err != nil {
		return nil, err
	}
	var instances []ec2types.Instance
	pages := ec2.NewDescribeInstancesPaginator(c, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, p.apiError("describe instances", err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				if inst.State == nil || inst.State.Name != ec2types.InstanceStateNameTerminated {
					instances = append(instances, inst)
				}
			}
		}
	}
	var typeNames []string
	var ids []string
	for _, inst := range instances {
		typeNames = append(typeNames, string(inst.InstanceType))
		ids = append(ids, aws.ToString(inst.InstanceId))
	}
	sizes, err := p.instanceTypes(ctx, c, typeNames)
	if err != nil {
		return nil, err
	}
	volumes, err := p.volumesOf(ctx, c, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*providers.VMInfo, 0, len(instances))
	for _, inst := range instances {
		out = append(out, p.vmInfo(inst, sizes[string(inst.InstanceType)], volumes))
	}
	slices.SortFunc(out, func(a, b *providers.VMInfo) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// volumesOf returns the EBS volumes attached to the given instances, by
// volume id.
func (p *Provider) volumesOf(ctx context.Context, c *ec2.Client, instanceIDs []string) (map[string]ec2types.Volume, error) {
	out := map[string]ec2types.Volume{}
	// A filter takes at most 200 values.
	for chunk := range slices.Chunk(instanceIDs, 200) {
		pages := ec2.NewDescribeVolumesPaginator(c, &ec2.DescribeVolumesInput{
			Filters:    []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: chunk}},
			MaxResults: aws.Int32(p.tune.pageSize),
		})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, p.apiError("describe volumes", err)
			}
			for _, v := range page.Volumes {
				out[aws.ToString(v.VolumeId)] = v
			}
		}
	}
	return out, nil
}

// vmInfo maps an instance onto VMInfo.
func (p *Provider) vmInfo(inst ec2types.Instance, size instanceSize, volumes map[string]ec2types.Volume) *providers.VMInfo {
	id := aws.ToString(inst.InstanceId)
	labels := map[string]string{}
	name := ""
	for _, t := range inst.Tags {
		k, v := aws.ToString(t.Key), aws.ToString(t.Value)
		labels[k] = v
		if k == "Name" {
			name = v
		}
	}
	if name == "" {
		name = id
	}
	az := ""
	if inst.Placement != nil {
		az = aws.ToString(inst.Placement.AvailabilityZone)
	}
	labels[LabelInstanceType] = string(inst.InstanceType)
	labels[LabelArchitecture] = string(inst.Architecture)
	labels[LabelAvailabilityZone] = az
	if inst.PlatformDetails != nil {
		labels[LabelPlatform] = aws.ToString(inst.PlatformDetails)
	}
	state := ""
	if inst.State != nil {
		state = string(inst.State.Name)
	}
	vm := &providers.VMInfo{
		ID: id, Name: name, Provider: p.name, Datacenter: az,
		PowerState: powerState(state),
		GuestOS:    guestOS(inst),
		Firmware:   firmware(inst),
		CPUs:       int(size.vcpus), MemoryMiB: size.memoryMiB,
		Disks:  disks(inst, volumes),
		NICs:   nics(inst),
		Labels: labels,
	}
	return vm
}

func powerState(state string) providers.PowerState {
	switch ec2types.InstanceStateName(state) {
	case ec2types.InstanceStateNameRunning:
		return providers.PowerOn
	case ec2types.InstanceStateNameStopped:
		return providers.PowerOff
	default: // pending, stopping, shutting-down: on their way
		return providers.PowerUnknown
	}
}

// guestOS is EC2's platform details ("Linux/UNIX", "Windows", "Red Hat
// Enterprise Linux"…), the closest EC2 has to a guest OS.
func guestOS(inst ec2types.Instance) string {
	if d := aws.ToString(inst.PlatformDetails); d != "" {
		return d
	}
	if inst.Platform == ec2types.PlatformValuesWindows {
		return "Windows"
	}
	return ""
}

// firmware maps the boot mode the instance runs with (or, before its first
// start, the one its AMI asks for) to "bios" or "efi". Graviton (arm64)
// instances boot UEFI only.
func firmware(inst ec2types.Instance) string {
	mode := string(inst.CurrentInstanceBootMode)
	if mode == "" {
		mode = string(inst.BootMode)
	}
	switch mode {
	case "uefi":
		return "efi"
	case "legacy-bios":
		return "bios"
	}
	if inst.Architecture == ec2types.ArchitectureValuesArm64 || inst.Architecture == ec2types.ArchitectureValuesArm64Mac {
		return "efi"
	}
	return "" // uefi-preferred or unset: decided by the instance type at launch
}

// disks lists the instance's EBS volumes, the root device first, then by
// device name.
func disks(inst ec2types.Instance, volumes map[string]ec2types.Volume) []providers.DiskInfo {
	root := aws.ToString(inst.RootDeviceName)
	mappings := slices.Clone(inst.BlockDeviceMappings)
	slices.SortStableFunc(mappings, func(a, b ec2types.InstanceBlockDeviceMapping) int {
		an, bn := aws.ToString(a.DeviceName), aws.ToString(b.DeviceName)
		if (an == root) != (bn == root) {
			if an == root {
				return -1
			}
			return 1
		}
		return cmp.Compare(an, bn)
	})
	out := []providers.DiskInfo{}
	for _, m := range mappings {
		if m.Ebs == nil {
			continue
		}
		volID := aws.ToString(m.Ebs.VolumeId)
		d := providers.DiskInfo{Label: aws.ToString(m.DeviceName), Path: volID}
		if v, ok := volumes[volID]; ok {
			d.CapacityBytes = int64(aws.ToInt32(v.Size)) << 30
		}
		out = append(out, d)
	}
	return out
}

func nics(inst ec2types.Instance) []providers.NICInfo {
	out := []providers.NICInfo{}
	for _, n := range inst.NetworkInterfaces {
		idx := int32(0)
		if n.Attachment != nil {
			idx = aws.ToInt32(n.Attachment.DeviceIndex)
		}
		out = append(out, providers.NICInfo{
			Label: fmt.Sprintf("eth%d", idx), Network: aws.ToString(n.SubnetId),
			MAC: aws.ToString(n.MacAddress), Type: aws.ToString(n.InterfaceType),
		})
	}
	return out
}

// instanceSize is what DescribeInstanceTypes says of a type.
type instanceSize struct {
	vcpus     int32
	memoryMiB int64
}

// instanceTypeCache remembers instance type sizes, which do not change.
type instanceTypeCache struct {
	mu    sync.Mutex
	sizes map[string]instanceSize
}

// instanceTypes returns the sizes of the named types, asking EC2 for those
// not cached. A type EC2 does not know (retired, or not offered in the
// region) is left out: its instances report 0 CPUs and memory.
func (p *Provider) instanceTypes(ctx context.Context, c *ec2.Client, names []string) (map[string]instanceSize, error) {
	p.types.mu.Lock()
	if p.types.sizes == nil {
		p.types.sizes = map[string]instanceSize{}
	}
	var missing []string
	for _, n := range names {
		if _, ok := p.types.sizes[n]; !ok && n != "" && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	p.types.mu.Unlock()

	// At most 100 types per call.
	for chunk := range slices.Chunk(missing, 100) {
		found, err := p.describeInstanceTypes(ctx, c, chunk)
		if apiCode(err) == "InvalidInstanceType" && len(chunk) > 1 {
			// One unknown type fails the whole call: ask one by one.
			found = map[string]instanceSize{}
			for _, n := range chunk {
				one, err := p.describeInstanceTypes(ctx, c, []string{n})
				if apiCode(err) == "InvalidInstanceType" {
					p.log.Debug("instance type unknown to EC2", "instance_type", n)
					continue
				}
				if err != nil {
					return nil, err
				}
				found[n] = one[n]
			}
		} else if apiCode(err) == "InvalidInstanceType" {
			p.log.Debug("instance type unknown to EC2", "instance_type", chunk[0])
			continue
		} else if err != nil {
			return nil, err
		}
		p.types.mu.Lock()
		for n, s := range found {
			p.types.sizes[n] = s
		}
		p.types.mu.Unlock()
	}

	p.types.mu.Lock()
	defer p.types.mu.Unlock()
	out := make(map[string]instanceSize, len(names))
	for _, n := range names {
		if s, ok := p.types.sizes[n]; ok {
			out[n] = s
		}
	}
	return out, nil
}

func (p *Provider) describeInstanceTypes(ctx context.Context, c *ec2.Client, names []string) (map[string]instanceSize, error) {
	types := make([]ec2types.InstanceType, len(names))
	for i, n := range names {
		types[i] = ec2types.InstanceType(n)
	}
	out := map[string]instanceSize{}
	// InstanceTypes with MaxResults is refused; the ids fit one answer.
	res, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: types})
	if err != nil {
		if apiCode(err) == "InvalidInstanceType" {
			return nil, err
		}
		return nil, p.apiError("describe instance types", err)
	}
	for _, it := range res.InstanceTypes {
		s := instanceSize{}
		if it.VCpuInfo != nil {
			s.vcpus = aws.ToInt32(it.VCpuInfo.DefaultVCpus)
		}
		if it.MemoryInfo != nil {
			s.memoryMiB = aws.ToInt64(it.MemoryInfo.SizeInMiB)
		}
		out[string(it.InstanceType)] = s
	}
	return out, nil
}
