package ovf

// XML namespaces used by OVF descriptors.
const (
	NamespaceOVF1  = "http://schemas.dmtf.org/ovf/envelope/1"
	NamespaceOVF2  = "http://schemas.dmtf.org/ovf/envelope/2"
	NamespaceRASD  = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
	NamespaceVSSD  = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
	NamespaceSASD  = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData"
	NamespaceEPASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData"
	NamespaceCIM   = "http://schemas.dmtf.org/wbem/wscim/1/common"
	NamespaceVMW   = "http://www.vmware.com/schema/ovf"
	NamespaceVBox  = "http://www.virtualbox.org/ovf/machine"
	NamespaceXSI   = "http://www.w3.org/2001/XMLSchema-instance"
)

// Disk format URIs (ovf:format of a Disk).
const (
	FormatVMDKStreamOptimized = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
	FormatVMDKSparse          = "http://www.vmware.com/interfaces/specifications/vmdk.html#sparse"
	FormatVMDKCompressed      = "http://www.vmware.com/interfaces/specifications/vmdk.html#compressed"
	// FormatVHD is the URI VirtualBox and Hyper-V tooling use for VHD.
	FormatVHD = "http://go.microsoft.com/fwlink/?LinkId=137171"
	// FormatQCOW2 is the URI VirtualBox uses for qcow images.
	FormatQCOW2 = "http://www.gnome.org/~markmc/qcow-image-format.html"
	// FormatRaw has no standard URI; this is the one oVirt uses for raw
	// images.
	FormatRaw = "http://en.wikipedia.org/wiki/Byte"
	// FormatISO is the URI VirtualBox uses for ISO 9660 images.
	FormatISO = "http://www.ecma-international.org/publications/standards/Ecma-119.htm"
)

// FormatName maps a disk format URI to a short name for display
// ("vmdk-streamOptimized", "vhd", ...); unknown URIs are returned unchanged.
func FormatName(uri string) string {
	switch uri {
	case FormatVMDKStreamOptimized:
		return "vmdk-streamOptimized"
	case FormatVMDKSparse, "http://www.vmware.com/specifications/vmdk.html#sparse":
		return "vmdk-sparse"
	case FormatVMDKCompressed, "http://www.vmware.com/specifications/vmdk.html#compressed":
		return "vmdk-compressed"
	case FormatVHD:
		return "vhd"
	case FormatQCOW2:
		return "qcow2"
	case FormatRaw:
		return "raw"
	case FormatISO:
		return "iso"
	case "":
		return ""
	}
	return uri
}
