package winrmfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hypersdk/hypersdk/providers/hyperv/internal/ps"
)

// VM is a virtual machine of the host's inventory.
type VM struct {
	ID         string // VMId, a GUID
	Name       string
	State      string // Running, Off, Saved…
	Generation int
	CPUs       int
	MemoryMiB  int64
	Notes      string
	NICs       []NIC
	Drives     []Drive
}

// NIC is a network adapter.
type NIC struct{ Name, Switch, MAC string }

// Drive is a hard drive: where it is attached and its VHD (a Windows path
// on the host, under the host's root).
type Drive struct {
	ControllerType     string // SCSI or IDE
	ControllerNumber   int
	ControllerLocation int
	Path               string
}

// Checkpoint is a VM checkpoint (Get-VMSnapshot).
type Checkpoint struct {
	ID, VMID, Name, Type string
	// Paths are the VHDs of the VM's drives at the checkpoint.
	Paths []string
}

// Invocation is one script the host ran, as it arrived.
type Invocation struct {
	// Name is the script's name (ps.Names), "" for an unknown script.
	Name string
	// Text is the whole decoded script text, input assignment included.
	Text string
	// Input is the JSON input as decoded by the script.
	Input json.RawMessage
	// CommandLine is the length of the command line that carried it.
	CommandLine int
}

// Host is the Hyper-V host the server plays: an inventory in memory and
// its files on disk under Root, where the Windows path C:\a\b is
// Root/C/a/b.
type Host struct {
	Root string

	mountMu sync.Mutex  // apart from mu: LocalPath runs under mu
	mounts  [][2]string // Windows folder, local directory

	mu          sync.Mutex
	vms         []*VM
	checkpoints []*Checkpoint
	calls       []Invocation
	// fail makes the next run of a script (by name) fail with a message.
	fail map[string]string
	// block makes runs of a script wait until their context ends
	// (a command that never finishes before the client gives up).
	block map[string]bool
}

// NewHost makes a host over root with vms.
func NewHost(root string, vms ...*VM) *Host {
	return &Host{Root: root, vms: vms, fail: map[string]string{}, block: map[string]bool{}}
}

// Calls returns the scripts run so far.
func (h *Host) Calls() []Invocation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// Checkpoints returns the checkpoints that exist.
func (h *Host) Checkpoints() []Checkpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Checkpoint
	for _, c := range h.checkpoints {
		out = append(out, *c)
	}
	return out
}

// FailNext makes the next run of the script named name (ps.Names) fail
// with message, as a cmdlet error.
func (h *Host) FailNext(name, message string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail[name] = message
}

// Block makes runs of the script named name hang until the client
// cancels them (Signal) or the shell is deleted.
func (h *Host) Block(name string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.block[name] = on
}

// LocalPath maps a Windows path on the host to its file under Root,
// refusing relative paths and . or .. elements.
func (h *Host) LocalPath(win string) (string, error) {
	if len(win) < 3 || win[1] != ':' || win[2] != '\\' {
		return "", fmt.Errorf("cannot find path '%s' because it does not exist", win)
	}
	parts := strings.Split(strings.TrimSuffix(win[3:], `\`), `\`)
	for _, p := range parts {
		if p == "." || p == ".." || strings.ContainsAny(p, "/:*?\"<>|\x00\n\r") {
			return "", fmt.Errorf("the filename, directory name, or volume label syntax is incorrect: '%s'", win)
		}
	}
	h.mountMu.Lock()
	mounts := h.mounts
	h.mountMu.Unlock()
	for _, m := range mounts {
		if strings.EqualFold(win, m[0]) {
			return m[1], nil
		}
		if len(win) > len(m[0]) && strings.EqualFold(win[:len(m[0])+1], m[0]+`\`) {
			return filepath.Join(append([]string{m[1]}, strings.Split(win[len(m[0])+1:], `\`)...)...), nil
		}
	}
	return filepath.Join(append([]string{h.Root, strings.ToUpper(win[:1])}, parts...)...), nil
}

// Mount makes the Windows folder win (C:\HyperSDK) the local directory
// dir (a Samba share's directory, say) instead of its place under Root.
func (h *Host) Mount(win, dir string) {
	h.mountMu.Lock()
	defer h.mountMu.Unlock()
	h.mounts = append(h.mounts, [2]string{strings.TrimSuffix(win, `\`), dir})
}

// run plays one script and answers what PowerShell would print.
func (h *Host) run(ctx context.Context, text string, lineLen int) (stdout, stderr string, exit int) {
	script, input, err := ps.Parse(text)
	inv := Invocation{Text: text, Input: input, CommandLine: lineLen}
	if err != nil {
		h.record(inv)
		return "", "winrmfake: " + err.Error() + "\r\n", 1
	}
	name, ok := ps.Names()[script]
	inv.Name = name
	h.record(inv)
	if !ok {
		return "", "winrmfake: the script is not one of the provider's scripts\r\n", 1
	}
	h.mu.Lock()
	msg, failing := h.fail[name]
	delete(h.fail, name)
	blocked := h.block[name]
	h.mu.Unlock()
	if blocked {
		<-ctx.Done()
		return "", "", 1
	}
	var result any
	if failing {
		err = errors.New(msg)
	} else {
		result, err = h.play(ctx, name, input)
	}
	var reply any
	if err != nil {
		reply = map[string]any{"ok": false, "error": map[string]string{
			"type": "Microsoft.HyperV.PowerShell.VirtualizationException", "message": err.Error(), "id": name + ",Microsoft.HyperV.PowerShell.Commands"}}
	} else {
		reply = map[string]any{"ok": true, "result": result}
	}
	b, err := json.Marshal(reply)
	if err != nil {
		return "", err.Error(), 1
	}
	return string(b) + "\r\n", "", 0
}

func (h *Host) record(inv Invocation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, inv)
}

// input is the union of every script's input.
type input struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Staging string   `json:"staging"`
	Folder  string   `json:"folder"`
	Files   []string `json:"files"`
	Prefix  string   `json:"prefix"`
}

func (h *Host) play(ctx context.Context, name string, raw []byte) (any, error) {
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("ConvertFrom-Json: %v", err)
	}
	switch name {
	case "list-vms":
		return h.listVMs(in)
	case "export-vm":
		return h.exportVM(in)
	case "checkpoint":
		return h.checkpoint(in)
	case "export-checkpoint":
		return h.exportCheckpoint(in)
	case "stage":
		return h.stage(ctx, in)
	case "staged":
		return h.staged(in)
	case "remove-checkpoint":
		return h.removeCheckpoint(in)
	case "remove-staging":
		return h.removeStaging(in)
	case "list-leftovers":
		return h.listLeftovers(in)
	}
	return nil, fmt.Errorf("no cmdlets for %s", name)
}

// AddVM adds a VM to the inventory.
func (h *Host) AddVM(vm *VM) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vms = append(h.vms, vm)
}

// VM returns a copy of the VM with id.
func (h *Host) VM(id string) (VM, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, err := h.vm(id)
	if err != nil {
		return VM{}, false
	}
	c := *v
	c.Drives = slices.Clone(v.Drives)
	return c, true
}
