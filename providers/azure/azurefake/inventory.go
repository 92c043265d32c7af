package azurefake

import (
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Spec is the subscription the server starts with.
type Spec struct {
	// Location is every resource's region unless it names its own
	// ("westeurope" when empty).
	Location string
	// Sizes are the VM sizes of the location (VirtualMachineSizes list).
	Sizes []Size
	Disks []*Disk
	VMs   []*VM
}

// Size is one VM size.
type Size struct {
	Name      string
	Cores     int32
	MemoryMiB int32
}

// DefaultSizes are a few real sizes, for specs that name no sizes.
var DefaultSizes = []Size{
	{Name: "Standard_B2s", Cores: 2, MemoryMiB: 4096},
	{Name: "Standard_D2s_v5", Cores: 2, MemoryMiB: 8192},
	{Name: "Standard_D4s_v5", Cores: 4, MemoryMiB: 16384},
	{Name: "Standard_E8s_v5", Cores: 8, MemoryMiB: 65536},
}

// Disk is a managed disk.
type Disk struct {
	Name, ResourceGroup string
	// Location defaults to the spec's.
	Location string
	// SKU is the storage account type ("Premium_LRS" when empty);
	// PremiumV2_LRS and UltraSSD_LRS disks take incremental snapshots
	// only, as in Azure.
	SKU string
	// HyperVGeneration is "V1" or "V2" ("V1" when empty).
	HyperVGeneration string
	// OSType is "Linux" or "Windows" for OS disks.
	OSType string
	Tags   map[string]string
	// Content is the disk's bytes; its size is the disk's.
	Content *Content
}

// VM is a virtual machine.
type VM struct {
	Name, ResourceGroup string
	// VMID is Azure's unique id of the VM (a GUID; made up when empty).
	VMID string
	// Location defaults to the spec's.
	Location string
	Size     string
	// PowerState is running, stopped (still allocated: its disks stay
	// attached) or deallocated ("running" when empty).
	PowerState string
	// OSType is "Linux" or "Windows"; OSName and OSVersion are what the
	// guest agent reports in the instance view.
	OSType, OSName, OSVersion string
	// Image is the marketplace image (publisher:offer:sku:version).
	Image string
	// SecurityType is "" (standard), "TrustedLaunch" or "ConfidentialVM".
	SecurityType string
	Zone         string
	Tags         map[string]string
	// OSDisk and DataDisks name managed disks of the spec; data disks get
	// LUNs 0, 1, … in order.
	OSDisk    string
	DataDisks []string
	// NICs name the network interfaces (resource names).
	NICs []string
}

// Power states of VM.PowerState.
const (
	PowerRunning     = "running"
	PowerStopped     = "stopped"
	PowerDeallocated = "deallocated"
)

// disk is a managed disk's state.
type disk struct {
	spec      *Disk
	id        string // resource id
	uniqueID  string
	location  string
	tags      map[string]string
	created   time.Time
	ownership time.Time
	vm        *vm // attached to, nil when unattached
	grant     *grant
}

// vm is a VM's state.
type vm struct {
	spec  *VM
	id    string
	vmID  string
	power string
	disks []*disk // OS disk first, then data disks in LUN order
}

// snapshot is a snapshot made through the API.
type snapshot struct {
	id, name, rg, location, uniqueID string
	tags                             map[string]string
	source                           *disk
	sourceID                         string
	sku                              string
	incremental                      bool
	// pendingPolls: Gets left before an incremental snapshot's background
	// copy reports complete.
	pendingPolls int
	content      *Content
	created      time.Time
	grant        *grant
}

// grant is an active SAS grant on a disk or snapshot.
type grant struct {
	resourceID string
	blobName   string
	expires    time.Time
}

// active reports whether g is live (not revoked, not expired).
func (g *grant) active(now time.Time) bool { return g != nil && now.Before(g.expires) }

func (s *Server) location(l string) string {
	if l != "" {
		return l
	}
	if s.spec.Location != "" {
		return s.spec.Location
	}
	return "westeurope"
}

// load builds the inventory from the spec.
func (s *Server) load(spec Spec) error {
	if len(spec.Sizes) == 0 {
		spec.Sizes = DefaultSizes
	}
	s.spec = spec
	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for _, d := range spec.Disks {
		if d.Name == "" || d.ResourceGroup == "" || d.Content == nil {
			return fmt.Errorf("azurefake: disk %q needs a name, a resource group and content", d.Name)
		}
		key := resourceKey(d.ResourceGroup, "disks", d.Name)
		if _, dup := s.disks[key]; dup {
			return fmt.Errorf("azurefake: disk %s/%s twice", d.ResourceGroup, d.Name)
		}
		s.disks[key] = &disk{
			spec: d, id: s.resourceID(d.ResourceGroup, "disks", d.Name), uniqueID: newGUID(),
			location: s.location(d.Location), tags: maps.Clone(d.Tags), created: now, ownership: now,
		}
	}
	for _, v := range spec.VMs {
		if v.Name == "" || v.ResourceGroup == "" || v.OSDisk == "" {
			return fmt.Errorf("azurefake: VM %q needs a name, a resource group and an OS disk", v.Name)
		}
		key := resourceKey(v.ResourceGroup, "virtualMachines", v.Name)
		if _, dup := s.vms[key]; dup {
			return fmt.Errorf("azurefake: VM %s/%s twice", v.ResourceGroup, v.Name)
		}
		st := &vm{spec: v, id: s.resourceID(v.ResourceGroup, "virtualMachines", v.Name), vmID: v.VMID, power: v.PowerState}
		if st.vmID == "" {
			st.vmID = newGUID()
		}
		if st.power == "" {
			st.power = PowerRunning
		}
		switch st.power {
		case PowerRunning, PowerStopped, PowerDeallocated:
		default:
			return fmt.Errorf("azurefake: VM %s: power state %q is none of running, stopped, deallocated", v.Name, v.PowerState)
		}
		for _, name := range append([]string{v.OSDisk}, v.DataDisks...) {
			d := s.findDisk(name)
			if d == nil {
				return fmt.Errorf("azurefake: VM %s: no disk %q in the spec", v.Name, name)
			}
			if d.vm != nil {
				return fmt.Errorf("azurefake: disk %s is attached to %s and %s", name, d.vm.spec.Name, v.Name)
			}
			d.vm = st
			st.disks = append(st.disks, d)
		}
		s.vms[key] = st
	}
	return nil
}

// findDisk finds a disk of the spec by name (any resource group).
func (s *Server) findDisk(name string) *disk {
	for _, d := range s.disks {
		if strings.EqualFold(d.spec.Name, name) {
			return d
		}
	}
	return nil
}

// diskState is what Azure reports of d.
func (d *disk) state(now time.Time) string {
	switch {
	case d.grant.active(now):
		return "ActiveSAS"
	case d.vm == nil:
		return "Unattached"
	case d.vm.power == PowerDeallocated:
		return "Reserved"
	default:
		return "Attached"
	}
}

func (s *Server) resourceID(rg, kind, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/%s/%s", s.opts.SubscriptionID, rg, kind, name)
}

// resourceKey is the case-insensitive key of a resource, as ARM compares
// names.
func resourceKey(rg, kind, name string) string {
	return strings.ToLower(rg + "/" + kind + "/" + name)
}

// keyOfID returns the key of a resource id of this subscription.
func (s *Server) keyOfID(id string) (string, bool) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	if len(parts) != 8 || !strings.EqualFold(parts[0], "subscriptions") || !strings.EqualFold(parts[1], s.opts.SubscriptionID) ||
		!strings.EqualFold(parts[2], "resourceGroups") || !strings.EqualFold(parts[4], "providers") || !strings.EqualFold(parts[5], "Microsoft.Compute") {
		return "", false
	}
	return resourceKey(parts[3], parts[6], parts[7]), true
}

func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// SnapshotInfo describes a snapshot made through the API.
type SnapshotInfo struct {
	ID, Name, ResourceGroup string
	Source                  string // the source disk's resource id
	Incremental             bool
	Tags                    map[string]string
	// Granted: a SAS grant on it is active.
	Granted bool
}

// GrantInfo is an active SAS grant.
type GrantInfo struct {
	ResourceID string
	Expires    time.Time
}

// Snapshots lists the snapshots alive, made through the API.
func (s *Server) Snapshots() []SnapshotInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []SnapshotInfo
	for _, sn := range s.snapshots {
		out = append(out, SnapshotInfo{
			ID: sn.id, Name: sn.name, ResourceGroup: sn.rg, Source: sn.sourceID, Incremental: sn.incremental,
			Tags: maps.Clone(sn.tags), Granted: sn.grant.active(now),
		})
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Grants lists the active (neither revoked nor expired) SAS grants.
func (s *Server) Grants() []GrantInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []GrantInfo
	add := func(g *grant) {
		if g.active(now) {
			out = append(out, GrantInfo{ResourceID: g.resourceID, Expires: g.expires})
		}
	}
	for _, d := range s.disks {
		add(d.grant)
	}
	for _, sn := range s.snapshots {
		add(sn.grant)
	}
	slices.SortFunc(out, func(a, b GrantInfo) int { return strings.Compare(a.ResourceID, b.ResourceID) })
	return out
}

// Leftovers says what clients left on the subscription: every snapshot
// made through the API still alive, every active grant, every disk whose
// tags are no longer those of the spec. An export that cleaned up leaves
// nothing.
func (s *Server) Leftovers() []string {
	var out []string
	for _, sn := range s.Snapshots() {
		out = append(out, fmt.Sprintf("snapshot %s (tags %v)", sn.ID, sn.Tags))
	}
	for _, g := range s.Grants() {
		out = append(out, "grant on "+g.ResourceID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.disks {
		if !maps.Equal(d.tags, d.spec.Tags) && !(len(d.tags) == 0 && len(d.spec.Tags) == 0) {
			out = append(out, fmt.Sprintf("disk %s tagged %v", d.id, d.tags))
		}
	}
	slices.Sort(out)
	return out
}

// SetPowerState changes a VM's power state (running, stopped,
// deallocated), as starting or deallocating it in Azure would.
func (s *Server) SetPowerState(rg, name, state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vms[resourceKey(rg, "virtualMachines", name)]
	if v == nil {
		return fmt.Errorf("azurefake: no VM %s/%s", rg, name)
	}
	now := time.Now()
	for _, d := range v.disks {
		if state != PowerDeallocated && d.grant.active(now) {
			return fmt.Errorf("azurefake: VM %s cannot start: disk %s has an active SAS", name, d.spec.Name)
		}
		d.ownership = now.UTC()
	}
	v.power = state
	return nil
}

// powerStatus maps a power state to Azure's instance view code.
func powerStatus(p string) string {
	return "PowerState/" + p
}
