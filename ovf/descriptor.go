package ovf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// MaxDescriptorSize bounds what Parse and ReadFile accept. Real descriptors
// are well under a megabyte even with hundreds of vApp properties.
const MaxDescriptorSize = 16 << 20

// Descriptor is a parsed OVF envelope (.ovf file). It keeps the whole XML
// tree so that elements and namespaces it does not model round-trip through
// Marshal; the typed accessors (Files, Disks, ...) read from that tree and
// the Set methods edit it in place.
//
// A Descriptor is not safe for concurrent mutation.
type Descriptor struct {
	doc *document
	ns  string // envelope namespace: NamespaceOVF1 or NamespaceOVF2
}

// File is an ovf:File entry of the References section.
type File struct {
	ID   string
	Href string
	// Size is ovf:size in bytes, -1 when the descriptor gives none.
	Size int64
	// Compression is ovf:compression ("gzip", "bzip2") or "".
	Compression string
	// ChunkSize is ovf:chunkSize, 0 when the file is not chunked.
	ChunkSize int64
}

// Disk is a Disk entry of the DiskSection.
type Disk struct {
	ID      string // ovf:diskId
	FileRef string // ovf:fileRef, "" for a blank disk
	// Capacity is the virtual capacity in bytes, -1 when it cannot be
	// computed (e.g. it refers to a property "${size}").
	Capacity      int64
	CapacityRaw   string // ovf:capacity as written
	CapacityUnits string // ovf:capacityAllocationUnits as written
	// PopulatedSize is ovf:populatedSize in bytes, -1 when absent.
	PopulatedSize int64
	Format        string // ovf:format URI
	ParentRef     string // ovf:parentRef
}

// Network is a Network entry of the NetworkSection.
type Network struct {
	Name        string
	Description string
}

// OperatingSystem is a VirtualSystem's OperatingSystemSection.
type OperatingSystem struct {
	// ID is the CIM_OperatingSystem OSType code (ovf:id), -1 when absent.
	ID          int
	Version     string
	Description string
	// OSType is the vendor guest identifier (vmw:osType) when present.
	OSType string
}

// Item is one resource of a VirtualHardwareSection (CIM RASD, or in OVF 2
// a StorageItem or EthernetPortItem).
type Item struct {
	// Element is the element name: "Item", "StorageItem" or
	// "EthernetPortItem".
	Element         string
	ResourceType    int // CIM ResourceType, -1 when absent
	ResourceSubType string
	InstanceID      string
	ElementName     string
	Description     string
	Parent          string
	AddressOnParent string
	Address         string
	// VirtualQuantity is -1 when absent.
	VirtualQuantity int64
	AllocationUnits string
	HostResource    []string
	Connection      []string
	// Configuration is ovf:configuration: the deployment options this item
	// applies to, space separated; "" means all.
	Configuration string
	// Required is ovf:required (default true).
	Required bool
}

// CIM ResourceType codes used by OVF descriptors.
const (
	ResourceOther          = 1
	ResourceProcessor      = 3
	ResourceMemory         = 4
	ResourceIDEController  = 5
	ResourceSCSIController = 6
	ResourceEthernet       = 10
	ResourceFloppy         = 14
	ResourceCDDrive        = 15
	ResourceDVDDrive       = 16
	ResourceDisk           = 17
	ResourceUSBController  = 23
	ResourceOtherStorage   = 20 // SATA, NVMe
	ResourceSound          = 35
)

// Product is a ProductSection.
type Product struct {
	Class       string
	Instance    string
	Product     string
	Vendor      string
	Version     string
	FullVersion string
	ProductURL  string
	VendorURL   string
}

// VirtualSystem is one VirtualSystem of the envelope (nested
// VirtualSystemCollections are flattened).
type VirtualSystem struct {
	ID   string
	Name string // the Name element, or ID when there is none
	Info string
	OS   OperatingSystem
	// SystemType is vssd:VirtualSystemType of the first hardware section
	// ("vmx-13", "virtualbox-2.2").
	SystemType string
	// Items are the resources of the first VirtualHardwareSection.
	Items []Item
	// Firmware is "efi" or "bios" when the descriptor says (vmw:Config
	// firmware, or VirtualBox's machine section), "" otherwise.
	Firmware   string
	Products   []Product
	Annotation string
}

// Parse parses an OVF 1.x or 2.x descriptor. It rejects XML that is not
// well formed, DTDs, non-OVF roots, and References or DiskSection entries
// whose sizes or cross references are malformed; everything else, including
// unknown elements and extension namespaces, is kept as is.
func Parse(data []byte) (*Descriptor, error) {
	if len(data) > MaxDescriptorSize {
		return nil, fmt.Errorf("ovf: descriptor larger than %d bytes", MaxDescriptorSize)
	}
	doc, err := parseXML(data)
	if err != nil {
		return nil, fmt.Errorf("ovf: %w", err)
	}
	root := doc.root
	if root.local != "Envelope" || (root.space != NamespaceOVF1 && root.space != NamespaceOVF2) {
		return nil, fmt.Errorf("ovf: root element <%s> in namespace %q is not an OVF 1.x/2.x Envelope", root.local, root.space)
	}
	d := &Descriptor{doc: doc, ns: root.space}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

// ReadFile reads and parses the descriptor at path.
func ReadFile(path string) (*Descriptor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read one byte past the limit so an oversized file is detected without
	// reading all of it.
	data, err := io.ReadAll(io.LimitReader(f, MaxDescriptorSize+1))
	if err != nil {
		return nil, err
	}
	d, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// check validates what the typed accessors and the OVA code rely on.
func (d *Descriptor) check() error {
	var errs []error
	ids := map[string]bool{}
	if refs := d.doc.root.child(d.ns, "References"); refs != nil {
		for _, f := range refs.childrenNamed(d.ns, "File") {
			id, _ := f.ovfAttr(d.ns, "id")
			href, _ := f.ovfAttr(d.ns, "href")
			if id == "" || href == "" {
				errs = append(errs, errors.New("References: File without ovf:id or ovf:href"))
				continue
			}
			if ids[id] {
				errs = append(errs, fmt.Errorf("References: duplicate file id %q", id))
			}
			ids[id] = true
			for _, a := range []string{"size", "chunkSize"} {
				if v, ok := f.ovfAttr(d.ns, a); ok {
					n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					if err != nil || n < 0 || (a == "chunkSize" && n == 0) {
						errs = append(errs, fmt.Errorf("References: file %q: bad ovf:%s %q", id, a, v))
					}
				}
			}
		}
	}
	if ds := d.doc.root.child(d.ns, "DiskSection"); ds != nil {
		diskIDs := map[string]bool{}
		for _, e := range ds.childrenNamed(d.ns, "Disk") {
			id, _ := e.ovfAttr(d.ns, "diskId")
			if id == "" {
				errs = append(errs, errors.New("DiskSection: Disk without ovf:diskId"))
				continue
			}
			if diskIDs[id] {
				errs = append(errs, fmt.Errorf("DiskSection: duplicate disk id %q", id))
			}
			diskIDs[id] = true
			if ref, ok := e.ovfAttr(d.ns, "fileRef"); ok && ref != "" && !ids[ref] {
				errs = append(errs, fmt.Errorf("DiskSection: disk %q refers to unknown file %q", id, ref))
			}
			capa, _ := e.ovfAttr(d.ns, "capacity")
			if capa == "" {
				errs = append(errs, fmt.Errorf("DiskSection: disk %q has no ovf:capacity", id))
			} else if !strings.HasPrefix(strings.TrimSpace(capa), "${") {
				if n, err := strconv.ParseInt(strings.TrimSpace(capa), 10, 64); err != nil || n < 0 {
					errs = append(errs, fmt.Errorf("DiskSection: disk %q: bad ovf:capacity %q", id, capa))
				}
			}
			if u, ok := e.ovfAttr(d.ns, "capacityAllocationUnits"); ok {
				if _, err := ParseByteUnits(u); err != nil {
					errs = append(errs, fmt.Errorf("DiskSection: disk %q: %w", id, err))
				}
			}
			if v, ok := e.ovfAttr(d.ns, "populatedSize"); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil || n < 0 {
					errs = append(errs, fmt.Errorf("DiskSection: disk %q: bad ovf:populatedSize %q", id, v))
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ovf: invalid descriptor: %w", errors.Join(errs...))
	}
	return nil
}

// Marshal serializes the descriptor. Unmodified content is preserved
// except for XML-level normalization (quote style, character references,
// empty-element tags, the XML declaration).
func (d *Descriptor) Marshal() []byte { return d.doc.marshal() }

// Version returns the OVF major version, 1 or 2, from the envelope
// namespace.
func (d *Descriptor) Version() int {
	if d.ns == NamespaceOVF2 {
		return 2
	}
	return 1
}

// Files lists the References section in document order.
func (d *Descriptor) Files() []File {
	refs := d.doc.root.child(d.ns, "References")
	if refs == nil {
		return nil
	}
	var out []File
	for _, e := range refs.childrenNamed(d.ns, "File") {
		out = append(out, d.fileOf(e))
	}
	return out
}

func (d *Descriptor) fileOf(e *element) File {
	f := File{Size: -1}
	f.ID, _ = e.ovfAttr(d.ns, "id")
	f.Href, _ = e.ovfAttr(d.ns, "href")
	f.Compression, _ = e.ovfAttr(d.ns, "compression")
	if v, ok := e.ovfAttr(d.ns, "size"); ok {
		f.Size = parseIntOr(v, -1)
	}
	if v, ok := e.ovfAttr(d.ns, "chunkSize"); ok {
		f.ChunkSize = parseIntOr(v, 0)
	}
	return f
}

func parseIntOr(s string, def int64) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return def
	}
	return n
}

// FileByHref returns the References entry with the given href.
func (d *Descriptor) FileByHref(href string) (File, bool) {
	for _, f := range d.Files() {
		if f.Href == href {
			return f, true
		}
	}
	return File{}, false
}

func (d *Descriptor) fileElement(href string) *element {
	refs := d.doc.root.child(d.ns, "References")
	if refs == nil {
		return nil
	}
	for _, e := range refs.childrenNamed(d.ns, "File") {
		if h, _ := e.ovfAttr(d.ns, "href"); h == href {
			return e
		}
	}
	return nil
}

// SetFileSize sets ovf:size of the file with the given href, e.g. once its
// download has finished and the size is known.
func (d *Descriptor) SetFileSize(href string, size int64) error {
	if size < 0 {
		return fmt.Errorf("ovf: negative size %d for %q", size, href)
	}
	e := d.fileElement(href)
	if e == nil {
		return fmt.Errorf("ovf: no file %q in References", href)
	}
	d.setOVFAttr(e, "size", strconv.FormatInt(size, 10))
	return nil
}

// RenameFile changes the href of a referenced file. The new name must be a
// safe package-relative path (see CheckPath) not used by another file.
func (d *Descriptor) RenameFile(oldHref, newHref string) error {
	if err := CheckPath(newHref); err != nil {
		return fmt.Errorf("ovf: rename %q: %w", oldHref, err)
	}
	e := d.fileElement(oldHref)
	if e == nil {
		return fmt.Errorf("ovf: no file %q in References", oldHref)
	}
	if oldHref == newHref {
		return nil
	}
	if d.fileElement(newHref) != nil {
		return fmt.Errorf("ovf: rename %q: %q is already referenced", oldHref, newHref)
	}
	d.setOVFAttr(e, "href", newHref)
	return nil
}

// setOVFAttr sets an OVF attribute, reusing an unqualified attribute of the
// same name when that is what the document uses.
func (d *Descriptor) setOVFAttr(e *element, local, value string) {
	if _, ok := e.attrValue(d.ns, local); !ok {
		_, unq := e.attrValue("", local)
		_, unqHref := e.attrValue("", "href")
		if unq || unqHref {
			e.setAttr("", local, value, "")
			return
		}
	}
	e.setAttr(d.ns, local, value, "ovf")
}

// PackageFile is one file an OVF package must contain for a References
// entry: the file itself or, for a chunked file, one of its chunks.
type PackageFile struct {
	Name   string // file name in the package / member name in the OVA
	FileID string // ovf:id of the References entry
	Href   string
	// Size is the exact size the member must have, -1 when the descriptor
	// does not say.
	Size int64
	// Chunk is the chunk index for chunked files, -1 otherwise.
	Chunk int
}

// maxChunks bounds chunk expansion so a hostile size/chunkSize pair cannot
// make PackageFiles allocate without limit.
const maxChunks = 1 << 16

// chunkCount is ceil(size/chunk) without the overflow of size+chunk-1; an
// empty chunked file still has one (empty) chunk.
func chunkCount(size, chunk int64) int64 {
	n := size / chunk
	if size%chunk != 0 || n == 0 {
		n++
	}
	return n
}

// PackageFiles lists the files of the package in References order,
// expanding chunked files into their chunks (href.000000000, ...) as
// DSP0243 names them. It fails when a reference is not a safe local path
// (see ValidatePackage).
func (d *Descriptor) PackageFiles() ([]PackageFile, error) {
	if err := d.ValidatePackage(); err != nil {
		return nil, err
	}
	var out []PackageFile
	for _, f := range d.Files() {
		if f.ChunkSize <= 0 {
			out = append(out, PackageFile{Name: f.Href, FileID: f.ID, Href: f.Href, Size: f.Size, Chunk: -1})
			continue
		}
		n := chunkCount(f.Size, f.ChunkSize)
		for i := range n {
			size := f.ChunkSize
			if i == n-1 {
				size = f.Size - i*f.ChunkSize
			}
			out = append(out, PackageFile{
				Name: fmt.Sprintf("%s.%09d", f.Href, i), FileID: f.ID, Href: f.Href, Size: size, Chunk: int(i),
			})
		}
	}
	return out, nil
}

// ValidatePackage checks that the descriptor can describe a self-contained
// package (an OVA or a local OVF folder): every href is a safe relative
// path (CheckPath), hrefs are unique (ignoring case, for case-insensitive
// file systems), and chunked files declare their size. It returns all
// problems joined.
func (d *Descriptor) ValidatePackage() error {
	var errs []error
	seen := map[string]string{}
	for _, f := range d.Files() {
		if err := CheckPath(f.Href); err != nil {
			errs = append(errs, fmt.Errorf("file %q: %w", f.ID, err))
			continue
		}
		names := []string{f.Href}
		if f.ChunkSize > 0 {
			if f.Size < 0 {
				errs = append(errs, fmt.Errorf("file %q: chunked (ovf:chunkSize) without ovf:size", f.ID))
				continue
			}
			if chunkCount(f.Size, f.ChunkSize) > maxChunks {
				errs = append(errs, fmt.Errorf("file %q: more than %d chunks", f.ID, maxChunks))
				continue
			}
			names = []string{f.Href + ".000000000"}
		}
		for _, n := range names {
			k := strings.ToLower(n)
			if prev, dup := seen[k]; dup {
				errs = append(errs, fmt.Errorf("file %q: name %q collides with file %q", f.ID, n, prev))
			}
			seen[k] = f.ID
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ovf: descriptor cannot describe a local package: %w", errors.Join(errs...))
	}
	return nil
}

// Disks lists the DiskSection in document order.
func (d *Descriptor) Disks() []Disk {
	ds := d.doc.root.child(d.ns, "DiskSection")
	if ds == nil {
		return nil
	}
	var out []Disk
	for _, e := range ds.childrenNamed(d.ns, "Disk") {
		k := Disk{Capacity: -1, PopulatedSize: -1}
		k.ID, _ = e.ovfAttr(d.ns, "diskId")
		k.FileRef, _ = e.ovfAttr(d.ns, "fileRef")
		k.CapacityRaw, _ = e.ovfAttr(d.ns, "capacity")
		k.CapacityUnits, _ = e.ovfAttr(d.ns, "capacityAllocationUnits")
		k.Format, _ = e.ovfAttr(d.ns, "format")
		k.ParentRef, _ = e.ovfAttr(d.ns, "parentRef")
		if v, ok := e.ovfAttr(d.ns, "populatedSize"); ok {
			k.PopulatedSize = parseIntOr(v, -1)
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(k.CapacityRaw), 10, 64); err == nil {
			if u, err := ParseByteUnits(k.CapacityUnits); err == nil {
				if c, ok := mulInt64(n, u); ok {
					k.Capacity = c
				}
			}
		}
		out = append(out, k)
	}
	return out
}

// Networks lists the NetworkSection.
func (d *Descriptor) Networks() []Network {
	ns := d.doc.root.child(d.ns, "NetworkSection")
	if ns == nil {
		return nil
	}
	var out []Network
	for _, e := range ns.childrenNamed(d.ns, "Network") {
		n := Network{Description: e.childText(d.ns, "Description")}
		n.Name, _ = e.ovfAttr(d.ns, "name")
		out = append(out, n)
	}
	return out
}

// DefaultConfiguration returns the id of the default deployment option
// (DeploymentOptionSection), or "" when the descriptor has none.
func (d *Descriptor) DefaultConfiguration() string {
	s := d.doc.root.child(d.ns, "DeploymentOptionSection")
	if s == nil {
		return ""
	}
	first := ""
	for _, c := range s.childrenNamed(d.ns, "Configuration") {
		id, _ := c.ovfAttr(d.ns, "id")
		if first == "" {
			first = id
		}
		if v, _ := c.ovfAttr(d.ns, "default"); v == "true" || v == "1" {
			return id
		}
	}
	return first
}

// VirtualSystems lists the virtual systems in document order, descending
// into VirtualSystemCollections.
func (d *Descriptor) VirtualSystems() []VirtualSystem {
	var out []VirtualSystem
	var walk func(e *element)
	walk = func(e *element) {
		for _, c := range e.elements() {
			if c.space != d.ns {
				continue
			}
			switch c.local {
			case "VirtualSystem":
				out = append(out, d.virtualSystem(c))
			case "VirtualSystemCollection":
				walk(c)
			}
		}
	}
	walk(d.doc.root)
	return out
}

func (d *Descriptor) virtualSystem(e *element) VirtualSystem {
	vs := VirtualSystem{OS: OperatingSystem{ID: -1}}
	vs.ID, _ = e.ovfAttr(d.ns, "id")
	vs.Name = e.childText(d.ns, "Name")
	if vs.Name == "" {
		vs.Name = vs.ID
	}
	vs.Info = e.childText(d.ns, "Info")
	if oss := e.child(d.ns, "OperatingSystemSection"); oss != nil {
		if v, ok := oss.ovfAttr(d.ns, "id"); ok {
			vs.OS.ID = int(parseIntOr(v, -1))
		}
		vs.OS.Version, _ = oss.ovfAttr(d.ns, "version")
		vs.OS.OSType, _ = oss.attrValue(NamespaceVMW, "osType")
		vs.OS.Description = oss.childText(d.ns, "Description")
	}
	if hw := e.child(d.ns, "VirtualHardwareSection"); hw != nil {
		if sys := hw.child(d.ns, "System"); sys != nil {
			if t := sys.childLocal("VirtualSystemType"); t != nil {
				vs.SystemType = strings.TrimSpace(t.text())
			}
		}
		for _, it := range hw.elements() {
			if it.space != d.ns {
				if it.space == NamespaceVMW && it.local == "Config" {
					if k, _ := it.attrValue(NamespaceVMW, "key"); k == "firmware" {
						vs.Firmware, _ = it.attrValue(NamespaceVMW, "value")
					}
				}
				continue
			}
			switch it.local {
			case "Item", "StorageItem", "EthernetPortItem":
				vs.Items = append(vs.Items, d.item(it))
			}
		}
	}
	if vs.Firmware == "" {
		vs.Firmware = vboxFirmware(e)
	}
	for _, p := range e.childrenNamed(d.ns, "ProductSection") {
		pr := Product{
			Product:     p.childText(d.ns, "Product"),
			Vendor:      p.childText(d.ns, "Vendor"),
			Version:     p.childText(d.ns, "Version"),
			FullVersion: p.childText(d.ns, "FullVersion"),
			ProductURL:  p.childText(d.ns, "ProductUrl"),
			VendorURL:   p.childText(d.ns, "VendorUrl"),
		}
		pr.Class, _ = p.ovfAttr(d.ns, "class")
		pr.Instance, _ = p.ovfAttr(d.ns, "instance")
		vs.Products = append(vs.Products, pr)
	}
	if a := e.child(d.ns, "AnnotationSection"); a != nil {
		vs.Annotation = a.childText(d.ns, "Annotation")
	}
	return vs
}

// vboxFirmware reads <vbox:Machine>…<Hardware><Firmware type="EFI"/>.
func vboxFirmware(vs *element) string {
	m := vs.child(NamespaceVBox, "Machine")
	if m == nil {
		return ""
	}
	hw := m.childLocal("Hardware")
	if hw == nil {
		return ""
	}
	fw := hw.childLocal("Firmware")
	if fw == nil {
		return ""
	}
	t, _ := fw.attrLocal("type")
	switch strings.ToUpper(t) {
	case "EFI", "EFI32", "EFI64", "EFIDUAL":
		return "efi"
	case "BIOS":
		return "bios"
	}
	return ""
}

func (d *Descriptor) item(e *element) Item {
	it := Item{Element: e.local, ResourceType: -1, VirtualQuantity: -1, Required: true}
	for _, c := range e.elements() {
		v := strings.TrimSpace(c.text())
		switch c.local {
		case "ResourceType":
			it.ResourceType = int(parseIntOr(v, -1))
		case "ResourceSubType":
			it.ResourceSubType = v
		case "InstanceID":
			it.InstanceID = v
		case "ElementName":
			it.ElementName = v
		case "Description":
			it.Description = v
		case "Parent":
			it.Parent = v
		case "AddressOnParent":
			it.AddressOnParent = v
		case "Address":
			it.Address = v
		case "VirtualQuantity":
			it.VirtualQuantity = parseIntOr(v, -1)
		case "AllocationUnits":
			it.AllocationUnits = v
		case "HostResource":
			it.HostResource = append(it.HostResource, v)
		case "Connection":
			it.Connection = append(it.Connection, v)
		}
	}
	it.Configuration, _ = e.ovfAttr(d.ns, "configuration")
	if v, ok := e.ovfAttr(d.ns, "required"); ok && (v == "false" || v == "0") {
		it.Required = false
	}
	return it
}
