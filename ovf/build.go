package ovf

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// GuestOS identifies the guest operating system in the three vocabularies
// importers read: the CIM OSType code (ovf:id, read by VirtualBox and
// Proxmox), VMware's guest id (vmw:osType, read first by vSphere) and a
// free-text description.
type GuestOS struct {
	CIMID       int
	VMwareID    string
	Description string
}

// GuestOther64 is the identity of an unspecified 64-bit guest, the default.
// (Functions rather than variables: no package-level mutable state.)
func GuestOther64() GuestOS {
	return GuestOS{CIMID: 102, VMwareID: "otherGuest64", Description: "Other (64-bit)"}
}

// VMSpec is the simple description of a VM from which Build generates a
// descriptor.
type VMSpec struct {
	Name string
	// OVFVersion is 1 (default, what vSphere exports and every importer
	// reads) or 2.
	OVFVersion int
	// GuestOS defaults to GuestOther64().
	GuestOS   GuestOS
	CPUs      int
	MemoryMiB int64
	// Firmware is "bios" (default) or "efi".
	Firmware string
	// SystemType is vssd:VirtualSystemType; default "vmx-13" (ESXi 6.5+),
	// which vSphere requires and other importers ignore.
	SystemType string
	// Controller is the disk controller of disks that name none: "scsi"
	// (LSI Logic, default), "lsilogicsas", "buslogic", "pvscsi", "sata",
	// "nvme" or "ide".
	Controller string
	Disks      []DiskSpec
	NICs       []NICSpec
	// Files are other files of the package referenced from the hardware
	// section as vmw:ExtraConfig (vSphere's NVRAM: key "nvram").
	Files      []ExtraFileSpec
	Annotation string
}

// ExtraFileSpec is a non-disk file of a VMSpec.
type ExtraFileSpec struct {
	File string
	Size int64
	// ConfigKey is the vmw:ExtraConfig key whose value points at the file.
	ConfigKey string
}

// DiskSpec describes one disk of a VMSpec.
type DiskSpec struct {
	// File is the disk file name in the package (the href).
	File string
	// CapacityBytes is the virtual disk size.
	CapacityBytes int64
	// PopulatedBytes is the guest data in use; 0 leaves it out.
	PopulatedBytes int64
	// FileSize is the size of File; 0 leaves ovf:size out until
	// SetFileSize is called after the download.
	FileSize int64
	// Format is the disk format URI; default FormatVMDKStreamOptimized.
	Format string
	// Controller overrides VMSpec.Controller for this disk; disks with the
	// same controller model share controllers of that model.
	Controller string
}

// NICSpec describes one network adapter of a VMSpec.
type NICSpec struct {
	Network string
	// Type is the adapter model: "E1000" (default), "E1000e", "VmxNet3",
	// "PCNet32".
	Type string
	MAC  string
}

type controllerKind struct {
	resourceType int
	subType      string
	label        string
	units        []int // usable unit numbers per controller
	max          int   // controllers of this kind
}

func controllerFor(name string) (controllerKind, error) {
	scsiUnits := []int{0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15} // 7 is the initiator
	switch strings.ToLower(name) {
	case "", "scsi", "lsilogic":
		return controllerKind{ResourceSCSIController, "lsilogic", "SCSI", scsiUnits, 4}, nil
	case "pvscsi", "virtualscsi":
		return controllerKind{ResourceSCSIController, "VirtualSCSI", "SCSI", scsiUnits, 4}, nil
	case "lsilogicsas", "lsilogic-sas":
		return controllerKind{ResourceSCSIController, "lsilogicsas", "SCSI", scsiUnits, 4}, nil
	case "buslogic":
		return controllerKind{ResourceSCSIController, "buslogic", "SCSI", scsiUnits, 4}, nil
	case "nvme":
		units := make([]int, 15)
		for i := range units {
			units[i] = i
		}
		return controllerKind{ResourceOtherStorage, "vmware.nvme.controller", "NVME", units, 4}, nil
	case "sata", "ahci":
		units := make([]int, 30)
		for i := range units {
			units[i] = i
		}
		return controllerKind{ResourceOtherStorage, "vmware.sata.ahci", "SATA", units, 4}, nil
	case "ide":
		return controllerKind{ResourceIDEController, "", "IDE", []int{0, 1}, 2}, nil
	}
	return controllerKind{}, fmt.Errorf("unknown disk controller %q", name)
}

func (s *VMSpec) validate() error {
	var errs []error
	str := func(field, v string) {
		if !validXMLString(v) {
			errs = append(errs, fmt.Errorf("%s %q contains characters XML cannot carry", field, v))
		}
	}
	if strings.TrimSpace(s.Name) == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	str("name", s.Name)
	str("annotation", s.Annotation)
	str("guest OS", s.GuestOS.VMwareID+s.GuestOS.Description)
	str("system type", s.SystemType)
	if s.OVFVersion != 0 && s.OVFVersion != 1 && s.OVFVersion != 2 {
		errs = append(errs, fmt.Errorf("OVF version %d (want 1 or 2)", s.OVFVersion))
	}
	if s.CPUs < 1 {
		errs = append(errs, fmt.Errorf("CPUs %d (want at least 1)", s.CPUs))
	}
	if s.MemoryMiB < 1 {
		errs = append(errs, fmt.Errorf("memory %d MiB (want at least 1)", s.MemoryMiB))
	}
	switch s.Firmware {
	case "", "bios", "efi":
	default:
		errs = append(errs, fmt.Errorf("firmware %q (want bios or efi)", s.Firmware))
	}
	perKind := map[string]int{}
	for _, d := range s.Disks {
		perKind[s.diskController(d)]++
	}
	for name, n := range perKind {
		ck, err := controllerFor(name)
		if err != nil {
			errs = append(errs, err)
		} else if n > len(ck.units)*ck.max {
			errs = append(errs, fmt.Errorf("%d disks do not fit on %d %s controllers", n, ck.max, ck.label))
		}
	}
	seen := map[string]bool{}
	for i, d := range s.Disks {
		if err := CheckPath(d.File); err != nil {
			errs = append(errs, fmt.Errorf("disk %d: %w", i+1, err))
		}
		if seen[strings.ToLower(d.File)] {
			errs = append(errs, fmt.Errorf("disk %d: file %q used twice", i+1, d.File))
		}
		seen[strings.ToLower(d.File)] = true
		if d.CapacityBytes <= 0 {
			errs = append(errs, fmt.Errorf("disk %d: capacity %d", i+1, d.CapacityBytes))
		}
		if d.FileSize < 0 || d.PopulatedBytes < 0 {
			errs = append(errs, fmt.Errorf("disk %d: negative size", i+1))
		}
		str(fmt.Sprintf("disk %d format", i+1), d.Format)
	}
	for i, f := range s.Files {
		if err := CheckPath(f.File); err != nil {
			errs = append(errs, fmt.Errorf("file %d: %w", i+1, err))
		}
		if seen[strings.ToLower(f.File)] {
			errs = append(errs, fmt.Errorf("file %d: %q used twice", i+1, f.File))
		}
		seen[strings.ToLower(f.File)] = true
		str(fmt.Sprintf("file %d key", i+1), f.ConfigKey)
	}
	for i, n := range s.NICs {
		if strings.TrimSpace(n.Network) == "" {
			errs = append(errs, fmt.Errorf("NIC %d: no network name", i+1))
		}
		str(fmt.Sprintf("NIC %d", i+1), n.Network+n.Type+n.MAC)
	}
	return errors.Join(errs...)
}

// diskController is the controller model of disk d.
func (s *VMSpec) diskController(d DiskSpec) string {
	if d.Controller != "" {
		return strings.ToLower(d.Controller)
	}
	return strings.ToLower(s.Controller)
}

// Build generates a descriptor for spec: References, DiskSection,
// NetworkSection and one VirtualSystem with OperatingSystemSection and a
// VirtualHardwareSection (CPU, memory, disk controllers, disks, NICs),
// written the way vSphere writes its own exports (RASD properties in
// schema order, vmw:osType and vmw:Config firmware) so that vSphere,
// VirtualBox, Proxmox `qm importovf` and virt-v2v accept it.
func Build(spec VMSpec) (*Descriptor, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("ovf: build: %w", err)
	}
	ns, version := NamespaceOVF1, "1.0"
	if spec.OVFVersion == 2 {
		ns, version = NamespaceOVF2, "2.0"
	}
	guest := spec.GuestOS
	if guest == (GuestOS{}) {
		guest = GuestOther64()
	}
	systemType := spec.SystemType
	if systemType == "" {
		systemType = "vmx-13"
	}

	root := &element{local: "Envelope", space: ns}
	for _, d := range [][2]string{
		{"", ns}, {"ovf", ns}, {"cim", NamespaceCIM}, {"rasd", NamespaceRASD},
		{"vmw", NamespaceVMW}, {"vssd", NamespaceVSSD}, {"xsi", NamespaceXSI},
	} {
		if d[0] == "" {
			root.attrs = append(root.attrs, attr{local: "xmlns", space: nsXMLNS, value: d[1]})
		} else {
			root.attrs = append(root.attrs, attr{prefix: "xmlns", local: d[0], space: nsXMLNS, value: d[1]})
		}
	}
	root.attrs = append(root.attrs,
		attr{prefix: "ovf", local: "version", space: ns, value: version},
		attr{prefix: "xml", local: "lang", space: nsXML, value: "en-US"})

	oa := func(e *element, local, value string) { // OVF-namespace attribute
		e.attrs = append(e.attrs, attr{prefix: "ovf", local: local, space: ns, value: value})
	}
	el := func(parent *element, local, text string) *element {
		return addElement(parent, "", local, ns, text)
	}

	refs := el(root, "References", "")
	diskSec := el(root, "DiskSection", "")
	el(diskSec, "Info", "Virtual disk information")
	for i, d := range spec.Disks {
		f := el(refs, "File", "")
		oa(f, "href", d.File)
		oa(f, "id", fmt.Sprintf("file%d", i+1))
		if d.FileSize > 0 {
			oa(f, "size", strconv.FormatInt(d.FileSize, 10))
		}
		k := el(diskSec, "Disk", "")
		c, u := capacityUnits(d.CapacityBytes)
		oa(k, "capacity", strconv.FormatInt(c, 10))
		oa(k, "capacityAllocationUnits", u)
		oa(k, "diskId", fmt.Sprintf("vmdisk%d", i+1))
		oa(k, "fileRef", fmt.Sprintf("file%d", i+1))
		format := d.Format
		if format == "" {
			format = FormatVMDKStreamOptimized
		}
		oa(k, "format", format)
		if d.PopulatedBytes > 0 {
			oa(k, "populatedSize", strconv.FormatInt(d.PopulatedBytes, 10))
		}
	}
	for i, f := range spec.Files {
		fe := el(refs, "File", "")
		oa(fe, "href", f.File)
		oa(fe, "id", fmt.Sprintf("file%d", len(spec.Disks)+i+1))
		if f.Size > 0 {
			oa(fe, "size", strconv.FormatInt(f.Size, 10))
		}
	}
	if len(spec.Disks) == 0 {
		root.children = slices.DeleteFunc(root.children, func(n node) bool { return n == diskSec })
	}

	var networks []string
	for _, n := range spec.NICs {
		if !slices.Contains(networks, n.Network) {
			networks = append(networks, n.Network)
		}
	}
	if len(networks) > 0 {
		sec := el(root, "NetworkSection", "")
		el(sec, "Info", "The list of logical networks")
		for _, n := range networks {
			ne := el(sec, "Network", "")
			oa(ne, "name", n)
			el(ne, "Description", fmt.Sprintf("The %s network", n))
		}
	}

	vs := el(root, "VirtualSystem", "")
	oa(vs, "id", spec.Name)
	el(vs, "Info", "A virtual machine")
	el(vs, "Name", spec.Name)

	oss := el(vs, "OperatingSystemSection", "")
	oa(oss, "id", strconv.Itoa(guest.CIMID))
	if guest.VMwareID != "" {
		oss.attrs = append(oss.attrs, attr{prefix: "vmw", local: "osType", space: NamespaceVMW, value: guest.VMwareID})
	}
	el(oss, "Info", "The kind of installed guest operating system")
	if guest.Description != "" {
		el(oss, "Description", guest.Description)
	}

	hw := el(vs, "VirtualHardwareSection", "")
	el(hw, "Info", "Virtual hardware requirements")
	sys := el(hw, "System", "")
	addElement(sys, "vssd", "ElementName", NamespaceVSSD, "Virtual Hardware Family")
	addElement(sys, "vssd", "InstanceID", NamespaceVSSD, "0")
	addElement(sys, "vssd", "VirtualSystemIdentifier", NamespaceVSSD, spec.Name)
	addElement(sys, "vssd", "VirtualSystemType", NamespaceVSSD, systemType)

	nextID := 0
	item := func(props map[string]string) string {
		nextID++
		id := strconv.Itoa(nextID)
		props["InstanceID"] = id
		it := el(hw, "Item", "")
		// RASD properties are an xs:sequence in alphabetical order; schema
		// validating importers (ovftool, vSphere) reject other orders.
		for _, k := range slices.Sorted(maps.Keys(props)) {
			addElement(it, "rasd", k, NamespaceRASD, props[k])
		}
		return id
	}
	item(map[string]string{
		"AllocationUnits": "hertz * 10^6",
		"Description":     "Number of Virtual CPUs",
		"ElementName":     fmt.Sprintf("%d virtual CPU(s)", spec.CPUs),
		"ResourceType":    strconv.Itoa(ResourceProcessor),
		"VirtualQuantity": strconv.Itoa(spec.CPUs),
	})
	item(map[string]string{
		"AllocationUnits": "byte * 2^20",
		"Description":     "Memory Size",
		"ElementName":     fmt.Sprintf("%dMB of memory", spec.MemoryMiB),
		"ResourceType":    strconv.Itoa(ResourceMemory),
		"VirtualQuantity": strconv.FormatInt(spec.MemoryMiB, 10),
	})
	// Disks go on controllers of their model in disk order: a new
	// controller of a model when the last one's units are used up.
	type ctrlState struct {
		kind  controllerKind
		id    string
		used  int // disks on the current controller
		buses int
	}
	ctrls := map[string]*ctrlState{}
	for i, d := range spec.Disks {
		name := spec.diskController(d)
		cs, ok := ctrls[name]
		if !ok {
			ck, _ := controllerFor(name) // validated above
			cs = &ctrlState{kind: ck}
			ctrls[name] = cs
		}
		ck := cs.kind
		if cs.id == "" || cs.used == len(ck.units) {
			bus := cs.buses
			cs.buses++
			cs.used = 0
			props := map[string]string{
				"Address":      strconv.Itoa(bus),
				"Description":  ck.label + " Controller",
				"ElementName":  fmt.Sprintf("%s Controller %d", ck.label, bus),
				"ResourceType": strconv.Itoa(ck.resourceType),
			}
			if ck.subType != "" {
				props["ResourceSubType"] = ck.subType
			}
			cs.id = item(props)
		}
		item(map[string]string{
			"AddressOnParent": strconv.Itoa(ck.units[cs.used]),
			"ElementName":     fmt.Sprintf("Hard Disk %d", i+1),
			"HostResource":    fmt.Sprintf("ovf:/disk/vmdisk%d", i+1),
			"Parent":          cs.id,
			"ResourceType":    strconv.Itoa(ResourceDisk),
		})
		cs.used++
	}
	for i, n := range spec.NICs {
		typ := n.Type
		if typ == "" {
			typ = "E1000"
		}
		props := map[string]string{
			"AutomaticAllocation": "true",
			"Connection":          n.Network,
			"Description":         fmt.Sprintf("%s ethernet adapter on %q", typ, n.Network),
			"ElementName":         fmt.Sprintf("Network adapter %d", i+1),
			"ResourceSubType":     typ,
			"ResourceType":        strconv.Itoa(ResourceEthernet),
		}
		if n.MAC != "" {
			props["Address"] = n.MAC
		}
		item(props)
	}
	for i, f := range spec.Files {
		if f.ConfigKey == "" {
			continue
		}
		cfg := addElement(hw, "vmw", "ExtraConfig", NamespaceVMW, "")
		cfg.attrs = append(cfg.attrs,
			attr{prefix: "ovf", local: "required", space: ns, value: "false"},
			attr{prefix: "vmw", local: "key", space: NamespaceVMW, value: f.ConfigKey},
			attr{prefix: "vmw", local: "value", space: NamespaceVMW, value: fmt.Sprintf("ovf:/file/file%d", len(spec.Disks)+i+1)})
	}
	if spec.Firmware != "" {
		cfg := addElement(hw, "vmw", "Config", NamespaceVMW, "")
		cfg.attrs = append(cfg.attrs,
			attr{prefix: "ovf", local: "required", space: ns, value: "false"},
			attr{prefix: "vmw", local: "key", space: NamespaceVMW, value: "firmware"},
			attr{prefix: "vmw", local: "value", space: NamespaceVMW, value: spec.Firmware})
	}
	if spec.Annotation != "" {
		an := el(vs, "AnnotationSection", "")
		el(an, "Info", "A human-readable annotation")
		el(an, "Annotation", spec.Annotation)
	}

	indent(root, 0)
	doc := &document{root: root}
	// Re-parse the serialized form so the returned Descriptor is exactly
	// what Marshal produces and passes the same checks as a parsed one.
	d, err := Parse(doc.marshal())
	if err != nil {
		return nil, fmt.Errorf("ovf: build produced an invalid descriptor: %w", err)
	}
	return d, nil
}

func addElement(parent *element, prefix, local, space, text string) *element {
	c := &element{parent: parent, prefix: prefix, local: local, space: space}
	if text != "" {
		c.children = []node{textNode(text)}
	}
	parent.children = append(parent.children, c)
	return c
}

// GuestFromVMware returns the guest identity for a vSphere guest ID
// ("rhel9_64Guest"): the ID itself as vmw:osType, the CIM OSType code of its
// family (Other / Other 64-Bit when no certain code exists) and description
// (the guest ID when empty).
func GuestFromVMware(id, description string) GuestOS {
	if id == "" {
		return GuestOther64()
	}
	g := strings.ToLower(id)
	is64 := strings.Contains(g, "64")
	pick := func(v32, v64 int) int {
		if is64 {
			return v64
		}
		return v32
	}
	cim := pick(1, 102)
	switch {
	case strings.HasPrefix(g, "ubuntu"):
		cim = pick(93, 94)
	case strings.HasPrefix(g, "debian"):
		cim = pick(95, 96)
	case strings.HasPrefix(g, "rhel"):
		cim = pick(79, 80)
	case strings.HasPrefix(g, "centos"):
		cim = pick(106, 107)
	case strings.HasPrefix(g, "oraclelinux"):
		cim = pick(108, 109)
	case strings.HasPrefix(g, "other") && strings.Contains(g, "linux"):
		cim = pick(36, 101)
	}
	if description == "" {
		description = id
	}
	return GuestOS{CIMID: cim, VMwareID: id, Description: description}
}
