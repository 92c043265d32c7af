package awsfake

import (
	"fmt"
	"strings"
	"time"
)

// Spec is the fake account's inventory in one region.
type Spec struct {
	Instances []Instance
	Volumes   []*Volume
	// Images are the AMIs DescribeImages knows; an instance's ImageID names
	// one of them or none.
	Images []Image
	// InstanceTypes answers DescribeInstanceTypes; DefaultInstanceTypes
	// when empty.
	InstanceTypes []InstanceType
}

// An Image is an AMI as DescribeImages reports it.
type Image struct {
	ID   string // ami-…
	Name string
	// Platform is "windows" for Windows AMIs, empty otherwise.
	Platform string
	// PlatformDetails and UsageOperation are the AMI's billing fields
	// ("Linux/UNIX" and "RunInstances" when empty; "Windows with SQL
	// Server Standard" and "RunInstances:0006", …).
	PlatformDetails string
	UsageOperation  string
	// ProductCodes are the AMI's product codes (a Marketplace AMI has one
	// of type marketplace).
	ProductCodes []ProductCode
}

// A ProductCode is an instance's or an AMI's product code.
type ProductCode struct {
	ID   string
	Type string // marketplace or devpay
}

// An Instance is an EC2 instance as DescribeInstances reports it.
type Instance struct {
	ID string // i-…
	// Type is the instance type (m5.large, …); it should appear in the
	// spec's instance types so that DescribeInstanceTypes can size it.
	Type string
	// State is the instance-state-name: pending, running, shutting-down,
	// terminated, stopping or stopped. Empty means running.
	State string
	// Architecture is i386, x86_64, arm64, x86_64_mac or arm64_mac;
	// x86_64 when empty.
	Architecture string
	// Platform is "windows" for Windows instances, empty otherwise (as EC2
	// reports it).
	Platform string
	// PlatformDetails is e.g. "Linux/UNIX", "Windows", "Red Hat Enterprise
	// Linux"; "Linux/UNIX" when empty.
	PlatformDetails string
	// BootMode is legacy-bios, uefi or uefi-preferred; empty leaves it out,
	// as EC2 does for AMIs that set none.
	BootMode string
	// ImageID is the AMI the instance was launched from (an Image of the
	// spec, or one since deregistered: DescribeImages then knows none).
	ImageID string
	// UsageOperation is the billing code ("RunInstances" when empty;
	// "RunInstances:0002" for Windows, …).
	UsageOperation string
	// ProductCodes are the instance's product codes (Marketplace).
	ProductCodes []ProductCode
	// NetworkInterfaces is how many network interfaces are attached
	// (eth0…); 0 reports none.
	NetworkInterfaces int
	// RootDeviceName is e.g. /dev/xvda; the first device's name when empty.
	RootDeviceName string
	// Devices are the attached EBS volumes in block-device-mapping order.
	Devices    []Device
	Tags       map[string]string
	LaunchTime time.Time
}

// A Device attaches a volume of the spec to an instance.
type Device struct {
	Name     string // /dev/xvda, /dev/sdf, …
	VolumeID string
}

// An InstanceType is what DescribeInstanceTypes reports of a type.
type InstanceType struct {
	Name          string
	VCPUs         int32
	MemoryMiB     int64
	Architectures []string
}

// DefaultInstanceTypes returns a few common types with their published vCPU
// and memory sizes.
func DefaultInstanceTypes() []InstanceType {
	x86 := []string{"x86_64"}
	arm := []string{"arm64"}
	return []InstanceType{
		{Name: "t3.micro", VCPUs: 2, MemoryMiB: 1024, Architectures: x86},
		{Name: "t3.medium", VCPUs: 2, MemoryMiB: 4096, Architectures: x86},
		{Name: "m5.large", VCPUs: 2, MemoryMiB: 8192, Architectures: x86},
		{Name: "m5.xlarge", VCPUs: 4, MemoryMiB: 16384, Architectures: x86},
		{Name: "c5.2xlarge", VCPUs: 8, MemoryMiB: 16384, Architectures: x86},
		{Name: "t4g.small", VCPUs: 2, MemoryMiB: 2048, Architectures: arm},
		{Name: "m6g.large", VCPUs: 2, MemoryMiB: 8192, Architectures: arm},
	}
}

// instanceStateCodes are EC2's InstanceState codes (the low byte).
var instanceStateCodes = map[string]int{
	"pending": 0, "running": 16, "shutting-down": 32,
	"terminated": 48, "stopping": 64, "stopped": 80,
}

// validate refuses a spec the server could not answer consistently.
func (s *Spec) validate() error {
	vols := map[string]bool{}
	for _, v := range s.Volumes {
		if !strings.HasPrefix(v.ID, "vol-") {
			return fmt.Errorf("awsfake: volume id %q does not start with vol-", v.ID)
		}
		if v.SizeGiB < 1 {
			return fmt.Errorf("awsfake: volume %s: size %d GiB", v.ID, v.SizeGiB)
		}
		if vols[v.ID] {
			return fmt.Errorf("awsfake: volume %s listed twice", v.ID)
		}
		vols[v.ID] = true
	}
	images := map[string]bool{}
	for _, im := range s.Images {
		if !strings.HasPrefix(im.ID, "ami-") || images[im.ID] {
			return fmt.Errorf("awsfake: image id %q does not start with ami- or is listed twice", im.ID)
		}
		images[im.ID] = true
	}
	attached := map[string]string{}
	ids := map[string]bool{}
	for _, in := range s.Instances {
		if !strings.HasPrefix(in.ID, "i-") {
			return fmt.Errorf("awsfake: instance id %q does not start with i-", in.ID)
		}
		if ids[in.ID] {
			return fmt.Errorf("awsfake: instance %s listed twice", in.ID)
		}
		ids[in.ID] = true
		if _, ok := instanceStateCodes[in.state()]; !ok {
			return fmt.Errorf("awsfake: instance %s: unknown state %q", in.ID, in.State)
		}
		for _, d := range in.Devices {
			if !vols[d.VolumeID] {
				return fmt.Errorf("awsfake: instance %s: device %s: no volume %s in the spec", in.ID, d.Name, d.VolumeID)
			}
			if other, ok := attached[d.VolumeID]; ok {
				return fmt.Errorf("awsfake: volume %s attached to both %s and %s", d.VolumeID, other, in.ID)
			}
			attached[d.VolumeID] = in.ID
		}
	}
	return nil
}

func (in *Instance) state() string           { return orDefault(in.State, "running") }
func (in *Instance) usageOperation() string  { return orDefault(in.UsageOperation, "RunInstances") }
func (in *Instance) architecture() string    { return orDefault(in.Architecture, "x86_64") }
func (in *Instance) platformDetails() string { return orDefault(in.PlatformDetails, "Linux/UNIX") }

func (in *Instance) rootDeviceName() string {
	if in.RootDeviceName != "" || len(in.Devices) == 0 {
		return in.RootDeviceName
	}
	return in.Devices[0].Name
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
