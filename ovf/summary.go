package ovf

import (
	"slices"
	"strings"
)

// Summary is what `hyperctl ova inspect` shows about a descriptor.
type Summary struct {
	OVFVersion int
	Systems    []SystemSummary
	Files      []File
	Networks   []Network
}

// Name returns the name of the first virtual system, "" if there is none.
func (s Summary) Name() string {
	if len(s.Systems) == 0 {
		return ""
	}
	return s.Systems[0].Name
}

// SystemSummary describes one virtual system. Resources that apply only to
// non-default deployment options are left out.
type SystemSummary struct {
	ID         string
	Name       string
	OS         OperatingSystem
	SystemType string
	Firmware   string
	CPUs       int
	// MemoryBytes is -1 when the descriptor does not say.
	MemoryBytes int64
	Disks       []DiskSummary
	NICs        []NICSummary
	Annotation  string
}

// DiskSummary describes one virtual disk attached to a system.
type DiskSummary struct {
	DiskID string
	FileID string
	Href   string // file in the package, "" for a blank disk
	// CapacityBytes is -1 when unknown.
	CapacityBytes int64
	// PopulatedBytes is -1 when unknown.
	PopulatedBytes int64
	// FileSize is the declared size of the file in the package, -1 when
	// unknown.
	FileSize   int64
	Format     string // format URI
	FormatName string // short name, see FormatName
	Controller string // e.g. "SCSI lsilogic", "IDE"
	Address    string // unit on the controller
}

// NICSummary describes one network adapter.
type NICSummary struct {
	Name    string
	Network string
	Type    string // ResourceSubType, e.g. "E1000", "VmxNet3"
	MAC     string
}

// Summary extracts the facts an operator checks before importing.
func (d *Descriptor) Summary() Summary {
	s := Summary{OVFVersion: d.Version(), Files: d.Files(), Networks: d.Networks()}
	files := map[string]File{}
	for _, f := range s.Files {
		files[f.ID] = f
	}
	disks := map[string]Disk{}
	for _, k := range d.Disks() {
		disks[k.ID] = k
	}
	config := d.DefaultConfiguration()
	for _, vs := range d.VirtualSystems() {
		ss := SystemSummary{
			ID: vs.ID, Name: vs.Name, OS: vs.OS, SystemType: vs.SystemType,
			Firmware: vs.Firmware, MemoryBytes: -1, Annotation: vs.Annotation,
		}
		var items []Item
		for _, it := range vs.Items {
			if it.Configuration == "" || slices.Contains(strings.Fields(it.Configuration), config) {
				items = append(items, it)
			}
		}
		byID := map[string]Item{}
		for _, it := range items {
			byID[it.InstanceID] = it
		}
		for _, it := range items {
			switch it.ResourceType {
			case ResourceProcessor:
				if ss.CPUs == 0 && it.VirtualQuantity > 0 {
					ss.CPUs = int(it.VirtualQuantity)
				}
			case ResourceMemory:
				if ss.MemoryBytes < 0 && it.VirtualQuantity >= 0 {
					units := it.AllocationUnits
					if units == "" {
						units = "byte * 2^20" // the unit every producer means when it omits one
					}
					if u, err := ParseByteUnits(units); err == nil {
						if b, ok := mulInt64(it.VirtualQuantity, u); ok {
							ss.MemoryBytes = b
						}
					}
				}
			case ResourceDisk:
				ss.Disks = append(ss.Disks, diskSummary(it, byID, disks, files))
			case ResourceEthernet:
				n := NICSummary{Name: it.ElementName, Type: it.ResourceSubType, MAC: it.Address}
				if len(it.Connection) > 0 {
					n.Network = it.Connection[0]
				}
				ss.NICs = append(ss.NICs, n)
			}
		}
		s.Systems = append(s.Systems, ss)
	}
	return s
}

func diskSummary(it Item, byID map[string]Item, disks map[string]Disk, files map[string]File) DiskSummary {
	ds := DiskSummary{CapacityBytes: -1, PopulatedBytes: -1, FileSize: -1, Address: it.AddressOnParent}
	for _, hr := range it.HostResource {
		// "ovf:/disk/ID" per DSP0243; VirtualBox and OVF 0.9 wrote "/disk/ID".
		ref := strings.TrimPrefix(hr, "ovf:")
		switch {
		case strings.HasPrefix(ref, "/disk/"):
			k, ok := disks[strings.TrimPrefix(ref, "/disk/")]
			if !ok {
				continue
			}
			ds.DiskID, ds.FileID = k.ID, k.FileRef
			ds.CapacityBytes, ds.PopulatedBytes, ds.Format = k.Capacity, k.PopulatedSize, k.Format
		case strings.HasPrefix(ref, "/file/"):
			ds.FileID = strings.TrimPrefix(ref, "/file/")
		}
	}
	if f, ok := files[ds.FileID]; ok {
		ds.Href, ds.FileSize = f.Href, f.Size
	}
	ds.FormatName = FormatName(ds.Format)
	if p, ok := byID[it.Parent]; ok && it.Parent != "" {
		ds.Controller = controllerName(p)
	}
	return ds
}

func controllerName(p Item) string {
	var kind string
	switch p.ResourceType {
	case ResourceIDEController:
		kind = "IDE"
	case ResourceSCSIController:
		kind = "SCSI"
	case ResourceOtherStorage:
		kind = "SATA"
		if strings.Contains(strings.ToLower(p.ResourceSubType), "nvme") {
			kind = "NVMe"
		}
	default:
		kind = p.ElementName
	}
	if p.ResourceSubType != "" && p.ResourceType != ResourceOtherStorage {
		return kind + " " + p.ResourceSubType
	}
	return kind
}
