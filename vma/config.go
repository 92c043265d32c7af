package vma

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// VMConfig is a Proxmox VE VM configuration (qemu-server.conf, the format
// of /etc/pve/qemu-server/<vmid>.conf) as vzdump stores it in a VMA
// archive: what an OVF descriptor needs (name, CPUs, memory, firmware,
// machine, guest OS, disks with their volumes and sizes, NICs), plus every
// option of the main section as written. Defaults are qemu-server's:
// 1 socket, 1 core, 512 MiB, SeaBIOS, ostype "other".
type VMConfig struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	// Sockets × Cores is the vCPU count the VM starts with the hardware
	// for; VCPUs, when set, is how many of them are online.
	Sockets int `json:"sockets"`
	Cores   int `json:"cores"`
	VCPUs   int `json:"vcpus,omitempty"`
	// CPUModel is the cpu option's model ("host", "x86-64-v2-AES").
	CPUModel  string `json:"cpu_model,omitempty"`
	MemoryMiB int64  `json:"memory_mib"`
	// BIOS is "seabios" or "ovmf" (UEFI).
	BIOS string `json:"bios"`
	// Machine is the QEMU machine type ("q35", "pc-i440fx-9.1"); "" is
	// the default i440fx.
	Machine string `json:"machine,omitempty"`
	// OSType is Proxmox's guest OS type: l26, l24, win11, win10, win8,
	// win7, wvista, w2k8, w2k3, w2k, wxp, solaris or other.
	OSType string `json:"ostype"`
	// SCSIHW is the SCSI controller model ("virtio-scsi-pci",
	// "virtio-scsi-single", "lsi", "lsi53c810", "megasas", "pvscsi").
	SCSIHW string `json:"scsihw"`
	// SMBIOSUUID is the VM's SMBIOS uuid (smbios1: uuid=…).
	SMBIOSUUID string   `json:"smbios_uuid,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Disks      []Drive  `json:"disks"`
	NICs       []NIC    `json:"nics"`
	// Snapshots are the names of the snapshot sections the file holds
	// (vzdump leaves them out; a configuration file read from a node may
	// have them). Their options are not read.
	Snapshots []string `json:"snapshots,omitempty"`
	// Options are the main section's options as written, key to value.
	Options map[string]string `json:"options"`
	// Warnings are lines or values that could not be read; qemu-server
	// too skips such lines with a warning.
	Warnings []string `json:"warnings,omitempty"`
}

// CPUs is the number of virtual CPUs: sockets × cores.
func (c *VMConfig) CPUs() int { return c.Sockets * c.Cores }

// UEFI reports whether the VM boots with OVMF.
func (c *VMConfig) UEFI() bool { return c.BIOS == "ovmf" }

// Drive is a disk or CD-ROM drive of the configuration (ideN, sataN,
// scsiN, virtioN, efidisk0, tpmstate0).
type Drive struct {
	// Key is the option's name ("scsi0").
	Key string `json:"key"`
	// Bus is "ide", "sata", "scsi", "virtio", "efidisk" or "tpmstate".
	Bus   string `json:"bus"`
	Index int    `json:"index"`
	// Volume is the volume id ("local-lvm:vm-100-disk-0"), a path, or
	// "none" (an empty CD-ROM drive).
	Volume string `json:"volume"`
	// Size is the size the configuration records, in bytes; 0 when it
	// records none. The archive's device size is authoritative.
	Size int64 `json:"size,omitempty"`
	// Media is "disk" or "cdrom".
	Media  string `json:"media"`
	Format string `json:"format,omitempty"`
	// Backup is false for drives excluded from backups (backup=0): the
	// archive has no device for them.
	Backup bool `json:"backup"`
	// Device is the name of the archive device holding the drive's bytes
	// ("drive-scsi0"), from vzdump's "#qmdump#map" lines; "" when none
	// names the drive.
	Device string `json:"device,omitempty"`
	// Storage and StorageFormat are the storage and format the drive had
	// when it was backed up (from the map line).
	Storage       string `json:"storage,omitempty"`
	StorageFormat string `json:"storage_format,omitempty"`
	// Options are the drive's other properties as written.
	Options map[string]string `json:"options,omitempty"`
}

// CDROM reports whether the drive is a CD-ROM.
func (d *Drive) CDROM() bool { return d.Media == "cdrom" }

// NIC is a network device (netN).
type NIC struct {
	Key    string `json:"key"`
	Model  string `json:"model"`
	MAC    string `json:"mac,omitempty"`
	Bridge string `json:"bridge,omitempty"`
	// VLAN is the tag option, 0 when untagged.
	VLAN     int               `json:"vlan,omitempty"`
	Firewall bool              `json:"firewall,omitempty"`
	LinkDown bool              `json:"link_down,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
}

// DiskForDevice returns the drive whose bytes the archive device named
// device holds.
func (c *VMConfig) DiskForDevice(device string) (*Drive, bool) {
	for i := range c.Disks {
		if c.Disks[i].Device == device {
			return &c.Disks[i], true
		}
	}
	return nil, false
}

// maxConfigSize bounds what ParseConfig reads; a config blob is at most
// 64 KiB in a VMA header anyway.
const maxConfigSize = 1 << 20

var (
	optionLine = regexp.MustCompile(`^([a-z][a-z_\-]*\d*):\s*(.+?)\s*$`)
	driveKey   = regexp.MustCompile(`^(ide|sata|scsi|virtio|efidisk|tpmstate)(\d+)$`)
	netKey     = regexp.MustCompile(`^net(\d+)$`)
	sectionRE  = regexp.MustCompile(`^\[([^\]]*)\]\s*$`)
	sizeRE     = regexp.MustCompile(`^(\d+(?:\.\d+)?)([KMGT](?:iB)?)?$`)
)

// nicModels are qemu-server's NIC models: "model=MAC" names both.
var nicModels = []string{"e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b",
	"i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3"}

// ParseConfig reads a qemu-server configuration the way qemu-server's
// parse_vm_config does: "key: value" lines in the main section until the
// first "[section]" (a snapshot, [PENDING] or [special:…]), "#" lines as
// the description (percent-decoded) except vzdump's "#qmdump#map:" lines,
// which map drives to archive devices. A line or value it cannot read is a
// warning, not an error, as in qemu-server; only text that is not a
// configuration at all (binary, oversized) is refused.
func ParseConfig(data []byte) (*VMConfig, error) {
	if len(data) > maxConfigSize {
		return nil, formatErr(-1, VMConfigName, "%d bytes is not a VM configuration (at most %d)", len(data), maxConfigSize)
	}
	if !utf8.Valid(data) || slices.Contains(data, 0) {
		return nil, formatErr(-1, VMConfigName, "not text (invalid UTF-8 or NUL bytes)")
	}
	c := &VMConfig{Sockets: 1, Cores: 1, MemoryMiB: 512, BIOS: "seabios", OSType: "other", SCSIHW: "lsi",
		Options: map[string]string{}, Disks: []Drive{}, NICs: []NIC{}}
	warn := func(line int, f string, args ...any) {
		c.Warnings = append(c.Warnings, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(f, args...))
	}
	type mapping struct{ device, storage, format string }
	maps := map[string]mapping{}
	var descr []string
	inMain := true
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			inMain = false
			name := m[1]
			if !strings.EqualFold(name, "PENDING") && !strings.HasPrefix(name, "special:") && !slices.Contains(c.Snapshots, name) {
				c.Snapshots = append(c.Snapshots, name)
			}
			continue
		}
		if !inMain {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "#qmdump#map:"); ok {
			// virtdev:qmdevice:storeid:format:
			f := strings.Split(rest, ":")
			if len(f) < 2 || f[0] == "" || f[1] == "" {
				warn(n, "unreadable map line %q", line)
				continue
			}
			m := mapping{device: f[1]}
			if len(f) > 2 {
				m.storage = f[2]
			}
			if len(f) > 3 {
				m.format = f[3]
			}
			maps[f[0]] = m
			continue
		}
		if strings.HasPrefix(line, "#vzdump#") || strings.HasPrefix(line, "#qmdump#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "#"); ok {
			descr = append(descr, decodeText(rest)+"\n")
			continue
		}
		m := optionLine.FindStringSubmatch(line)
		if m == nil {
			warn(n, "not an option: %q", line)
			continue
		}
		key, value := m[1], m[2]
		if key == "description" {
			descr = append(descr, decodeText(value))
			continue
		}
		if key == "cdrom" { // qemu-server's alias
			key = "ide2"
			value += ",media=cdrom"
		}
		c.Options[key] = value
		if err := c.apply(key, value); err != nil {
			warn(n, "%s: %v", key, err)
		}
	}
	c.Description = strings.TrimRight(strings.Join(descr, ""), " \t\r\n")
	for i := range c.Disks {
		d := &c.Disks[i]
		if m, ok := maps[d.Key]; ok {
			d.Device, d.Storage, d.StorageFormat = m.device, m.storage, m.format
		}
	}
	slices.SortFunc(c.Disks, func(a, b Drive) int {
		if a.Bus != b.Bus {
			return strings.Compare(a.Bus, b.Bus)
		}
		return a.Index - b.Index
	})
	slices.SortFunc(c.NICs, func(a, b NIC) int { return a.index() - b.index() })
	return c, nil
}

func (n NIC) index() int {
	i, _ := strconv.Atoi(strings.TrimPrefix(n.Key, "net"))
	return i
}

// decodeText is PVE's decode_text: percent-decoding of a description.
func decodeText(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// apply reads the options an OVF descriptor needs.
func (c *VMConfig) apply(key, value string) error {
	positive := func() (int, error) {
		v, err := strconv.Atoi(value)
		if err != nil || v < 1 || v > 4096 {
			return 0, fmt.Errorf("%q is not a count", value)
		}
		return v, nil
	}
	switch {
	case key == "name":
		c.Name = value
	case key == "sockets" || key == "cores" || key == "vcpus":
		v, perr := positive()
		if perr != nil {
			return perr
		}
		*map[string]*int{"sockets": &c.Sockets, "cores": &c.Cores, "vcpus": &c.VCPUs}[key] = v
	case key == "cpu":
		c.CPUModel = defaultKey(propertyString(value), "cputype")
	case key == "memory":
		// "4096" or, since PVE 8, "current=4096".
		v := defaultKey(propertyString(value), "current")
		mib, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || mib < 16 || mib > 64<<20 {
			return fmt.Errorf("%q is not a memory size in MiB", value)
		}
		c.MemoryMiB = mib
	case key == "bios":
		if value != "seabios" && value != "ovmf" {
			return fmt.Errorf("unknown bios %q", value)
		}
		c.BIOS = value
	case key == "machine":
		c.Machine = defaultKey(propertyString(value), "type")
	case key == "ostype":
		c.OSType = value
	case key == "scsihw":
		c.SCSIHW = value
	case key == "smbios1":
		c.SMBIOSUUID = propertyString(value)["uuid"]
	case key == "tags":
		c.Tags = strings.FieldsFunc(value, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
	case driveKey.MatchString(key):
		d, derr := parseDrive(key, value)
		if derr != nil {
			return derr
		}
		c.Disks = append(c.Disks, d)
	case netKey.MatchString(key):
		c.NICs = append(c.NICs, parseNIC(key, value))
	}
	return nil
}

// propertyString splits PVE's "a=1,b=2,default" strings; a part without
// "=" is stored under "" (the format's default key).
func propertyString(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if k, v, ok := strings.Cut(part, "="); ok {
			out[k] = v
		} else {
			out[""] = part
		}
	}
	return out
}

// defaultKey is the value given without a key, or under name.
func defaultKey(p map[string]string, name string) string {
	if v, ok := p[""]; ok {
		return v
	}
	return p[name]
}

func parseDrive(key, value string) (Drive, error) {
	m := driveKey.FindStringSubmatch(key)
	idx, _ := strconv.Atoi(m[2])
	p := propertyString(value)
	d := Drive{Key: key, Bus: m[1], Index: idx, Media: "disk", Backup: true, Options: map[string]string{}}
	d.Volume = defaultKey(p, "file")
	if d.Volume == "" {
		d.Volume = p["volume"]
	}
	if d.Volume == "" {
		return Drive{}, fmt.Errorf("drive %q names no volume", value)
	}
	for k, v := range p {
		switch k {
		case "", "file", "volume":
		case "size":
			n, ok := parseSize(v)
			if !ok {
				return Drive{}, fmt.Errorf("drive size %q", v)
			}
			d.Size = n
		case "media":
			d.Media = v
		case "format":
			d.Format = v
		case "backup":
			d.Backup = !slices.Contains([]string{"0", "no", "off", "false"}, strings.ToLower(v))
		default:
			d.Options[k] = v
		}
	}
	if len(d.Options) == 0 {
		d.Options = nil
	}
	return d, nil
}

// parseSize is PVE's parse_size: a number with an optional K, M, G or T
// (or KiB…) suffix, powers of 1024; no suffix is bytes.
func parseSize(s string) (int64, bool) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	switch strings.TrimSuffix(m[2], "iB") {
	case "K":
		v *= 1 << 10
	case "M":
		v *= 1 << 20
	case "G":
		v *= 1 << 30
	case "T":
		v *= 1 << 40
	}
	if v > 1<<62 {
		return 0, false
	}
	return int64(v), true
}

func parseNIC(key, value string) NIC {
	n := NIC{Key: key, Options: map[string]string{}}
	for _, part := range strings.Split(value, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case k == "":
		case slices.Contains(nicModels, k): // "virtio=BC:24:11:…"
			n.Model, n.MAC = k, v
		case k == "model":
			n.Model = v
		case k == "macaddr":
			n.MAC = v
		case k == "bridge":
			n.Bridge = v
		case k == "tag":
			n.VLAN, _ = strconv.Atoi(v)
		case k == "firewall":
			n.Firewall = v == "1"
		case k == "link_down":
			n.LinkDown = v == "1"
		default:
			n.Options[k] = v
		}
	}
	if len(n.Options) == 0 {
		n.Options = nil
	}
	return n
}
