package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hypersdk/hypersdk/internal/sshclient"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/vma"
)

// Labels the provider sets on every VMInfo.
const (
	LabelNode     = "proxmox:node"
	LabelVMID     = "proxmox:vmid"
	LabelType     = "proxmox:type" // qemu or lxc
	LabelTemplate = "proxmox:template"
	LabelOSType   = "proxmox:ostype"
	LabelTags     = "proxmox:tags"
	LabelMachine  = "proxmox:machine"
)

// resource is an entry of /cluster/resources?type=vm.
type resource struct {
	ID       string  `json:"id"`
	Type     string  `json:"type"`
	VMID     flexInt `json:"vmid"`
	Node     string  `json:"node"`
	Name     string  `json:"name"`
	Status   string  `json:"status"`
	Template flexInt `json:"template"`
	MaxCPU   float64 `json:"maxcpu"`
	MaxMem   flexInt `json:"maxmem"`
	MaxDisk  flexInt `json:"maxdisk"`
	Tags     string  `json:"tags"`
}

// flexInt reads an integer PVE sends as a number or a string.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%s is not a number", b)
	}
	*f = flexInt(v)
	return nil
}

// guest is a VM or container as discovery knows it: its resource entry
// and, for a QEMU VM, its configuration.
type guest struct {
	res resource
	cfg *vma.VMConfig // nil for containers
}

func (g *guest) vmid() int    { return int(g.res.VMID) }
func (g *guest) qemu() bool   { return g.res.Type == "qemu" }
func (g *guest) name() string { return cmpOr(g.res.Name, "VM "+strconv.Itoa(g.vmid())) }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// resources lists the cluster's VMs and containers.
func (p *Provider) resources(ctx context.Context) ([]resource, error) {
	a, err := p.client()
	if err != nil {
		return nil, err
	}
	var rs []resource
	if err := a.get(ctx, "/cluster/resources", url.Values{"type": {"vm"}}, &rs); err != nil {
		return nil, fmt.Errorf("proxmox %s: list VMs: %w", p.name, err)
	}
	out := rs[:0]
	for _, r := range rs {
		if (r.Type == "qemu" || r.Type == "lxc") && r.VMID > 0 && r.Node != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// vmConfig reads a QEMU VM's configuration through the API and parses it
// as qemu-server does (vma.ParseConfig reads the same file format).
func (p *Provider) vmConfig(ctx context.Context, node string, vmid int) (*vma.VMConfig, error) {
	a, err := p.client()
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := a.get(ctx, fmt.Sprintf("/nodes/%s/qemu/%d/config", url.PathEscape(node), vmid), nil, &raw); err != nil {
		return nil, fmt.Errorf("proxmox %s: configuration of VM %d: %w", p.name, vmid, err)
	}
	return parseAPIConfig(raw)
}

// parseAPIConfig turns the API's configuration (option to value, values
// strings or numbers) into the configuration file's lines and parses them.
func parseAPIConfig(raw map[string]json.RawMessage) (*vma.VMConfig, error) {
	var b strings.Builder
	var descr string
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		v := raw[k]
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			s = strings.TrimSpace(string(v)) // a number
		}
		switch k {
		case "digest":
			continue
		case "description":
			descr = s // may span lines: set after parsing
			continue
		}
		if strings.ContainsAny(s, "\r\n") {
			continue // not an option value
		}
		fmt.Fprintf(&b, "%s: %s\n", k, s)
	}
	cfg, err := vma.ParseConfig([]byte(b.String()))
	if err != nil {
		return nil, err
	}
	cfg.Description = descr
	return cfg, nil
}

// guests lists every guest with the configuration of each QEMU VM, read
// a few at a time.
func (p *Provider) guests(ctx context.Context) ([]*guest, error) {
	rs, err := p.resources(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*guest, len(rs))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, max(1, p.tune.discoveryConcurrency))
	for i, r := range rs {
		out[i] = &guest{res: r}
		if r.Type != "qemu" {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cfg, err := p.vmConfig(ctx, r.Node, int(r.VMID))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				// A VM migrated or deleted since the listing is left out.
				if errors.Is(err, providers.ErrNotFound) {
					out[i] = nil
					return
				}
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			out[i].cfg = cfg
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return slices.DeleteFunc(out, func(g *guest) bool { return g == nil }), nil
}

// ListVMs implements providers.Provider: QEMU VMs and LXC containers (the
// latter listed, never exported), sorted by path ("/node/name").
func (p *Provider) ListVMs(ctx context.Context, filter providers.VMFilter) ([]*providers.VMInfo, error) {
	if filter.Name != "" {
		if _, err := path.Match(filter.Name, ""); err != nil {
			return nil, fmt.Errorf("%w: name filter %q: %v", providers.ErrInvalidArgument, filter.Name, err)
		}
	}
	gs, err := p.guests(ctx)
	if err != nil {
		return nil, err
	}
	var out []*providers.VMInfo
	for _, g := range gs {
		if vm := p.vmInfo(g); filter.Matches(vm) {
			out = append(out, vm)
		}
	}
	sortVMs(out)
	return out, nil
}

func sortVMs(vms []*providers.VMInfo) {
	slices.SortFunc(vms, func(a, b *providers.VMInfo) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// GetVM implements providers.Provider: a VM is found by its VMID, its
// name, its path ("/node/name") or its SMBIOS UUID.
func (p *Provider) GetVM(ctx context.Context, identifier string) (*providers.VMInfo, error) {
	g, err := p.findGuest(ctx, identifier)
	if err != nil {
		return nil, err
	}
	return p.vmInfo(g), nil
}

// findGuest looks a guest up by VMID, name, path or UUID.
func (p *Provider) findGuest(ctx context.Context, identifier string) (*guest, error) {
	id := strings.TrimSpace(identifier)
	if id == "" {
		return nil, fmt.Errorf("%w: empty VM identifier", providers.ErrInvalidArgument)
	}
	rs, err := p.resources(ctx)
	if err != nil {
		return nil, err
	}
	var matches []resource
	if n, err := strconv.Atoi(id); err == nil {
		for _, r := range rs {
			if int(r.VMID) == n {
				matches = append(matches, r)
			}
		}
	}
	if len(matches) == 0 {
		for _, r := range rs {
			g := guest{res: r}
			if g.name() == id || guestPath(&g) == id {
				matches = append(matches, r)
			}
		}
	}
	switch len(matches) {
	case 1:
		g := &guest{res: matches[0]}
		if g.qemu() {
			if g.cfg, err = p.vmConfig(ctx, g.res.Node, g.vmid()); err != nil {
				return nil, err
			}
		}
		return g, nil
	case 0:
	default:
		var ids []string
		for _, m := range matches {
			ids = append(ids, strconv.Itoa(int(m.VMID)))
		}
		return nil, fmt.Errorf("proxmox %s: %q names VMs %s: %w", p.name, id, strings.Join(ids, ", "), providers.ErrAmbiguous)
	}
	// A UUID: only the configurations say.
	gs, err := p.guests(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		if g.cfg != nil && g.cfg.SMBIOSUUID != "" && strings.EqualFold(g.cfg.SMBIOSUUID, id) {
			return g, nil
		}
	}
	return nil, fmt.Errorf("proxmox %s: VM %q: %w", p.name, id, providers.ErrNotFound)
}

// SearchVMs implements providers.Provider.
func (p *Provider) SearchVMs(ctx context.Context, query string) ([]*providers.VMInfo, error) {
	all, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(query)
	var out []*providers.VMInfo
	for _, vm := range all {
		hay := strings.ToLower(strings.Join([]string{vm.Name, vm.Path, vm.ID, vm.GuestOS, vm.UUID, vm.Labels[LabelTags]}, " "))
		if strings.Contains(hay, q) {
			out = append(out, vm)
		}
	}
	return out, nil
}

func guestPath(g *guest) string { return "/" + g.res.Node + "/" + g.name() }

// vmInfo describes a guest.
func (p *Provider) vmInfo(g *guest) *providers.VMInfo {
	vm := &providers.VMInfo{
		ID: strconv.Itoa(g.vmid()), Name: g.name(), Provider: p.name, Path: guestPath(g),
		PowerState: powerState(g.res.Status),
		Labels:     map[string]string{LabelNode: g.res.Node, LabelVMID: strconv.Itoa(g.vmid()), LabelType: g.res.Type},
		Disks:      []providers.DiskInfo{}, NICs: []providers.NICInfo{},
	}
	if g.res.Template != 0 {
		vm.Labels[LabelTemplate] = "1"
	}
	if g.res.Tags != "" {
		vm.Labels[LabelTags] = g.res.Tags
	}
	if g.cfg == nil {
		// A container: what the listing says.
		vm.CPUs = max(1, int(g.res.MaxCPU))
		vm.MemoryMiB = int64(g.res.MaxMem) >> 20
		if g.res.MaxDisk > 0 {
			vm.Disks = append(vm.Disks, providers.DiskInfo{Label: "rootfs", CapacityBytes: int64(g.res.MaxDisk)})
		}
		return vm
	}
	describeConfig(vm, g.cfg)
	for _, d := range exportableDrives(g.cfg) {
		vm.Disks = append(vm.Disks, diskInfo(g.cfg, d, d.Size))
	}
	return vm
}

// describeConfig sets what a VM's configuration says: CPUs, memory,
// firmware, guest OS, UUID, NICs.
func describeConfig(vm *providers.VMInfo, cfg *vma.VMConfig) {
	vm.CPUs = cfg.CPUs()
	vm.MemoryMiB = cfg.MemoryMiB
	vm.Firmware = "bios"
	if cfg.UEFI() {
		vm.Firmware = "efi"
	}
	vm.GuestOS = guestOS(cfg.OSType)
	vm.Labels[LabelOSType] = cfg.OSType
	if cfg.Machine != "" {
		vm.Labels[LabelMachine] = cfg.Machine
	}
	vm.UUID = cfg.SMBIOSUUID
	vm.NICs = vm.NICs[:0]
	for _, n := range cfg.NICs {
		network := n.Bridge
		if n.VLAN != 0 && network != "" {
			network += "." + strconv.Itoa(n.VLAN)
		}
		vm.NICs = append(vm.NICs, providers.NICInfo{Label: n.Key, Network: network, MAC: n.MAC, Type: n.Model})
	}
}

// exportableDrives are the VM's disks: ide, sata, scsi and virtio drives
// that are not CD-ROMs. EFI variables and TPM state are firmware state,
// not disks an importing platform attaches, and are left out.
func exportableDrives(cfg *vma.VMConfig) []vma.Drive {
	var out []vma.Drive
	for _, d := range cfg.Disks {
		switch d.Bus {
		case "ide", "sata", "scsi", "virtio":
			if !d.CDROM() {
				out = append(out, d)
			}
		}
	}
	return out
}

// diskInfo describes drive d of capacity bytes.
func diskInfo(cfg *vma.VMConfig, d vma.Drive, capacity int64) providers.DiskInfo {
	di := providers.DiskInfo{Label: d.Key, CapacityBytes: capacity, Path: d.Volume, Controller: d.Key}
	switch d.Bus {
	case "sata":
		di.ControllerModel = "sata"
	case "ide":
		di.ControllerModel = "ide"
	case "scsi":
		switch cfg.SCSIHW {
		case "lsi", "lsi53c810":
			di.ControllerModel = "lsilogic"
		case "megasas":
			di.ControllerModel = "lsilogicsas"
		case "pvscsi":
			di.ControllerModel = "pvscsi"
		}
	}
	return di
}

func powerState(status string) providers.PowerState {
	switch status {
	case "running":
		return providers.PowerOn
	case "stopped":
		return providers.PowerOff
	case "paused", "suspended":
		return providers.PowerSuspend
	}
	return providers.PowerUnknown
}

// guestOS maps Proxmox's ostype to the VMware guest id the descriptor
// builder reads.
func guestOS(ostype string) string {
	switch ostype {
	case "l26":
		return "otherLinux64Guest"
	case "l24":
		return "otherLinuxGuest"
	case "win11":
		return "windows11_64Guest"
	case "win10":
		return "windows9_64Guest"
	case "win8":
		return "windows8_64Guest"
	case "win7":
		return "windows7_64Guest"
	case "wvista":
		return "winVistaGuest"
	case "w2k8":
		return "winLonghorn64Guest"
	case "w2k3":
		return "winNetEnterpriseGuest"
	case "w2k":
		return "win2000ServGuest"
	case "wxp":
		return "winXPProGuest"
	case "solaris":
		return "solaris11_64Guest"
	}
	return "otherGuest64"
}

// sshErr classifies an SSH failure: what internal/sshclient marks
// permanent (host key, authentication, configuration) is permanent here
// too, a refused login is an authentication error.
func sshErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sshclient.ErrAuth):
		return providers.Permanent(fmt.Errorf("%w: %w", providers.ErrAuth, err))
	case errors.Is(err, transfer.ErrPermanent):
		return providers.Permanent(err)
	}
	return err
}
