package hyperv

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/hyperv/internal/ps"
)

// vmJSON is a VM as ps.ListVMs reports it.
type vmJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	State      string     `json:"state"`
	Generation int        `json:"gen"`
	CPUs       int        `json:"cpus"`
	Memory     int64      `json:"mem"`
	Notes      string     `json:"notes"`
	Disks      []diskJSON `json:"disks"`
	NICs       []nicJSON  `json:"nics"`
}

// diskJSON is a hard drive with its VHD (Get-VMHardDiskDrive + Get-VHD).
type diskJSON struct {
	ControllerType     string   `json:"ct"`
	ControllerNumber   int      `json:"cn"`
	ControllerLocation int      `json:"cl"`
	Path               string   `json:"path"`
	Format             string   `json:"format"` // VHD, VHDX
	Type               string   `json:"type"`   // Fixed, Dynamic, Differencing
	Size               int64    `json:"size"`
	FileSize           int64    `json:"file"`
	Chain              []string `json:"chain"` // parents, nearest first
}

type nicJSON struct {
	Name   string `json:"name"`
	Switch string `json:"switch"`
	MAC    string `json:"mac"`
}

// listVMs runs the listing (of every VM, or of the VM with id).
func (p *Provider) listVMs(ctx context.Context, id string) ([]*providers.VMInfo, error) {
	raw, err := p.listRaw(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]*providers.VMInfo, 0, len(raw))
	for _, v := range raw {
		out = append(out, p.vmInfo(v))
	}
	slices.SortFunc(out, func(a, b *providers.VMInfo) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (p *Provider) listRaw(ctx context.Context, id string) ([]vmJSON, error) {
	var raw []vmJSON
	if err := p.run(ctx, ps.ListVMs, map[string]string{"id": id}, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// vmInfo maps a VM: Generation 2 boots UEFI, 1 BIOS; Running is on, Off
// off, Saved and Paused suspended, the rest unknown; each drive a DiskInfo with its VHD path, controller
// (IDE/SCSI) and type.
func (p *Provider) vmInfo(v vmJSON) *providers.VMInfo {
	vm := &providers.VMInfo{
		ID: strings.ToLower(v.ID), Name: v.Name, Provider: p.name,
		Path: p.cfg.Host + "/" + v.Name, Datacenter: p.cfg.Host,
		CPUs: v.CPUs, MemoryMiB: v.Memory >> 20, UUID: strings.ToLower(v.ID),
		Firmware: "bios",
		Labels: map[string]string{
			"hyperv:generation": strconv.Itoa(v.Generation),
			"hyperv:state":      v.State,
		},
		Disks: []providers.DiskInfo{}, NICs: []providers.NICInfo{},
	}
	if v.Notes != "" {
		vm.Labels["hyperv:notes"] = v.Notes
	}
	if v.Generation == 2 {
		vm.Firmware = "efi"
	}
	switch v.State {
	case "Running":
		vm.PowerState = providers.PowerOn
	case "Off":
		vm.PowerState = providers.PowerOff
	case "Saved", "Paused":
		vm.PowerState = providers.PowerSuspend
	default:
		vm.PowerState = providers.PowerUnknown
	}
	for _, d := range v.Disks {
		ct := strings.ToLower(d.ControllerType)
		di := providers.DiskInfo{
			Label:         fmt.Sprintf("%s %d:%d", d.ControllerType, d.ControllerNumber, d.ControllerLocation),
			CapacityBytes: d.Size, Path: d.Path,
			Provisioning: strings.ToLower(d.Type), Controller: fmt.Sprintf("%s%d", ct, d.ControllerNumber),
		}
		if ct == "ide" {
			di.ControllerModel = "ide"
		}
		vm.Disks = append(vm.Disks, di)
	}
	for _, n := range v.NICs {
		vm.NICs = append(vm.NICs, providers.NICInfo{Label: n.Name, Network: n.Switch, MAC: formatMAC(n.MAC), Type: "hyperv-synthetic"})
	}
	return vm
}

// formatMAC writes Hyper-V's 00155D010203 as 00:15:5d:01:02:03.
func formatMAC(m string) string {
	if len(m) != 12 {
		return m
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToLower(m[i : i+2]))
	}
	return b.String()
}
