package pvefake

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VM is a guest of the fake cluster.
type VM struct {
	VMID int    `json:"vmid"`
	Node string `json:"node"`
	Name string `json:"name"`
	// Type is "qemu" or "lxc".
	Type string `json:"type"`
	// Status is "running" or "stopped".
	Status   string `json:"status"`
	Template bool   `json:"template,omitempty"`
	// Config are the VM's options as the API returns them
	// (/nodes/{node}/qemu/{vmid}/config), values as strings. Drives name
	// volumes of the inventory ("local-lvm:vm-100-disk-0,size=…").
	Config map[string]string `json:"config"`
}

// Volume is a disk volume: its bytes are a sparse raw file in the state
// directory.
type Volume struct {
	// ID is the volume id ("local-lvm:vm-100-disk-0").
	ID   string `json:"id"`
	Size int64  `json:"size"`
	// File is the raw image's path.
	File string `json:"file"`
}

// Snapshot is a VM snapshot (qm snapshot).
type Snapshot struct {
	VMID        int    `json:"vmid"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Time        int64  `json:"snaptime"`
}

// Faults make the fake misbehave, for tests.
type Faults struct {
	// StreamDelay is slept after every MiB a vzdump or pvesm command
	// writes, so that a test can act while a stream runs.
	StreamDelay time.Duration `json:"stream_delay,omitempty"`
	// FailStreamAfter, when > 0, makes vzdump and pvesm commands fail
	// (exit 1, a message on stderr) once they wrote that many bytes.
	FailStreamAfter int64 `json:"fail_stream_after,omitempty"`
	// FailSnapshot makes qm snapshot fail after creating the snapshot (a
	// lost answer: the snapshot exists, the caller heard an error).
	FailSnapshot bool `json:"fail_snapshot,omitempty"`
}

// Inventory is what the fake cluster holds.
type Inventory struct {
	// Storages are the storages of every node: id to directory path
	// (absolute). Backups of the api method are written to a dir
	// storage's "dump" subdirectory.
	Storages  map[string]string `json:"storages"`
	VMs       []VM              `json:"vms"`
	Volumes   []Volume          `json:"volumes"`
	Snapshots []Snapshot        `json:"snapshots"`
	Faults    Faults            `json:"faults"`
}

// State is the fake cluster's state in a directory, shared by the API
// server and the node commands (which sshd runs as other processes): a
// JSON inventory read and replaced under an flock, the volumes' raw
// images, a log of the commands run, and the backup storages' files.
type State struct {
	Dir string
}

const (
	inventoryFile = "inventory.json"
	lockFile      = "lock"
	commandLog    = "commands.log"
)

// NewState creates a state directory holding inv (its volumes' files
// must already be in dir) and returns it.
func NewState(dir string, inv Inventory) (*State, error) {
	st := &State{Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if inv.Storages == nil {
		inv.Storages = map[string]string{}
	}
	for id, p := range inv.Storages {
		if err := os.MkdirAll(filepath.Join(p, "dump"), 0o700); err != nil {
			return nil, fmt.Errorf("storage %s: %w", id, err)
		}
	}
	return st, st.Update(func(cur *Inventory) error { *cur = inv; return nil })
}

// OpenState returns the state in dir.
func OpenState(dir string) *State { return &State{Dir: dir} }

// lock takes the state's lock, exclusive or shared.
func (s *State) lock(exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Read returns the inventory.
func (s *State) Read() (*Inventory, error) {
	unlock, err := s.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.read()
}

func (s *State) read() (*Inventory, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, inventoryFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Inventory{Storages: map[string]string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var inv Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return nil, fmt.Errorf("pvefake state: %w", err)
	}
	return &inv, nil
}

// Update changes the inventory under the lock.
func (s *State) Update(change func(*Inventory) error) error {
	unlock, err := s.lock(true)
	if err != nil {
		return err
	}
	defer unlock()
	inv, err := s.read()
	if err != nil {
		return err
	}
	if err := change(inv); err != nil {
		return err
	}
	b, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.Dir, inventoryFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.Dir, inventoryFile))
}

// SetFaults replaces the faults.
func (s *State) SetFaults(f Faults) error {
	return s.Update(func(inv *Inventory) error { inv.Faults = f; return nil })
}

// SetStatus sets a VM's status ("running", "stopped").
func (s *State) SetStatus(vmid int, status string) error {
	return s.Update(func(inv *Inventory) error {
		vm := inv.VM(vmid)
		if vm == nil {
			return fmt.Errorf("VM %d does not exist", vmid)
		}
		vm.Status = status
		return nil
	})
}

// VM returns the VM vmid, nil when there is none.
func (inv *Inventory) VM(vmid int) *VM {
	for i := range inv.VMs {
		if inv.VMs[i].VMID == vmid {
			return &inv.VMs[i]
		}
	}
	return nil
}

// Volume returns the volume id, nil when there is none.
func (inv *Inventory) Volume(id string) *Volume {
	for i := range inv.Volumes {
		if inv.Volumes[i].ID == id {
			return &inv.Volumes[i]
		}
	}
	return nil
}

// Drive is a disk drive of a VM's configuration, as vzdump backs it up.
type Drive struct {
	Key    string // "scsi0"
	Volume *Volume
}

// Drives returns the VM's disk drives whose volumes the inventory holds,
// sorted as vzdump registers them (by key), excluding CD-ROMs, drives
// with backup=0 and unused volumes.
func (inv *Inventory) Drives(vm *VM) []Drive {
	var out []Drive
	for _, key := range slices.Sorted(maps.Keys(vm.Config)) {
		if !isDriveKey(key) {
			continue
		}
		opts := strings.Split(vm.Config[key], ",")
		if slices.Contains(opts, "media=cdrom") || slices.Contains(opts, "backup=0") {
			continue
		}
		if v := inv.Volume(strings.TrimPrefix(opts[0], "file=")); v != nil {
			out = append(out, Drive{Key: key, Volume: v})
		}
	}
	return out
}

func isDriveKey(k string) bool {
	for _, bus := range []string{"ide", "sata", "scsi", "virtio", "efidisk", "tpmstate"} {
		if n, ok := strings.CutPrefix(k, bus); ok {
			if _, err := strconv.Atoi(n); err == nil {
				return true
			}
		}
	}
	return false
}

// Snapshots returns the snapshots of vmid, by name.
func (inv *Inventory) SnapshotsOf(vmid int) []Snapshot {
	var out []Snapshot
	for _, s := range inv.Snapshots {
		if s.VMID == vmid {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// logCommand appends a command line to the command log.
func (s *State) logCommand(line string) {
	f, err := os.OpenFile(filepath.Join(s.Dir, commandLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, strings.ReplaceAll(line, "\n", " "))
}

// Commands returns the node commands run so far, in order.
func (s *State) Commands() []string {
	b, err := os.ReadFile(filepath.Join(s.Dir, commandLog))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// backupName is the name vzdump gives a VM's archive.
var backupName = regexp.MustCompile(`^vzdump-qemu-(\d+)-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.vma(\.zst|\.gz|\.lzo)?$`)

// Backup is a backup archive in a storage.
type Backup struct {
	Storage string
	// VolID is "storage:backup/<file name>".
	VolID string
	Path  string
	Notes string
	Size  int64
	VMID  int
	CTime int64
}

// Backups lists the backup archives of every storage.
func (s *State) Backups() ([]Backup, error) {
	inv, err := s.Read()
	if err != nil {
		return nil, err
	}
	var out []Backup
	for _, id := range slices.Sorted(maps.Keys(inv.Storages)) {
		dir := filepath.Join(inv.Storages[id], "dump")
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name := e.Name()
			m := backupName.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			b := Backup{Storage: id, VolID: id + ":backup/" + name, Path: filepath.Join(dir, name), Size: fi.Size(), CTime: fi.ModTime().Unix()}
			b.VMID, _ = strconv.Atoi(m[1])
			if notes, err := os.ReadFile(b.Path + ".notes"); err == nil {
				b.Notes = string(notes)
			}
			out = append(out, b)
		}
	}
	return out, nil
}
