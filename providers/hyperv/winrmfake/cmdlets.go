package winrmfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/vhdx"
)

func (h *Host) vm(id string) (*VM, error) {
	for _, v := range h.vms {
		if strings.EqualFold(v.ID, id) {
			return v, nil
		}
	}
	return nil, fmt.Errorf("Hyper-V was unable to find a virtual machine with id '%s'", id)
}

// vhd is what Get-VHD reports.
type vhd struct {
	format, typ string
	size, file  int64
	parent      string // Windows path, "" without
}

// getVHD plays Get-VHD: the image read by the disk package's VHDX
// reader (parents beside it).
func (h *Host) getVHD(win string) (*vhd, error) {
	local, err := h.LocalPath(win)
	if err != nil {
		return nil, err
	}
	f, err := disk.OpenFile(local)
	if err != nil {
		return nil, fmt.Errorf("Getting the mounted storage instance for the path '%s' failed: %v", win, err)
	}
	defer f.Close()
	img, err := vhdx.Open(f)
	if err != nil {
		return nil, fmt.Errorf("The file '%s' is not a virtual hard disk file: %v", win, err)
	}
	defer img.Close()
	info := img.Info()
	v := &vhd{format: "VHDX", size: info.VirtualSize, file: f.Size}
	switch info.Subformat {
	case "differencing":
		v.typ = "Differencing"
		v.parent = win[:strings.LastIndex(win, `\`)+1] + windowsBase(info.Parent)
	case "fixed":
		v.typ = "Fixed"
	default:
		v.typ = "Dynamic"
	}
	return v, nil
}

func windowsBase(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}

func (h *Host) listVMs(in input) (any, error) {
	h.mu.Lock()
	vms := h.vms
	h.mu.Unlock()
	out := []any{}
	for _, vm := range vms {
		if in.ID != "" && !strings.EqualFold(vm.ID, in.ID) {
			continue
		}
		disks := []any{}
		for _, d := range vm.Drives {
			v, err := h.getVHD(d.Path)
			if err != nil {
				return nil, err
			}
			chain := []string{}
			for q := v.parent; q != ""; {
				chain = append(chain, q)
				pv, err := h.getVHD(q)
				if err != nil {
					return nil, err
				}
				q = pv.parent
			}
			disks = append(disks, map[string]any{"ct": d.ControllerType, "cn": d.ControllerNumber, "cl": d.ControllerLocation,
				"path": d.Path, "format": v.format, "type": v.typ, "size": v.size, "file": v.file, "chain": chain})
		}
		nics := []any{}
		for _, n := range vm.NICs {
			nics = append(nics, map[string]any{"name": n.Name, "switch": n.Switch, "mac": n.MAC})
		}
		out = append(out, map[string]any{"id": strings.ToLower(vm.ID), "name": vm.Name, "state": vm.State, "gen": vm.Generation,
			"cpus": vm.CPUs, "mem": vm.MemoryMiB << 20, "notes": vm.Notes, "disks": disks, "nics": nics})
	}
	if in.ID != "" && len(out) == 0 {
		return nil, fmt.Errorf("Hyper-V was unable to find a virtual machine with id '%s'", in.ID)
	}
	return out, nil
}

// folder is Join-Path $p.staging $p.folder.
func (h *Host) folder(in input) (win, local string, err error) {
	if in.Folder == "" || strings.ContainsAny(in.Folder, `\/`) {
		return "", "", fmt.Errorf("the folder name '%s' is not valid", in.Folder)
	}
	win = strings.TrimSuffix(in.Staging, `\`) + `\` + in.Folder
	local, err = h.LocalPath(win)
	return win, local, err
}

// exportTo plays Export-VM / Export-VMSnapshot: <folder>\<VM name>\
// with Virtual Hard Disks (each drive's VHD and its parents) and Virtual
// Machines (the configuration).
func (h *Host) exportTo(in input, vm *VM, paths []string) error {
	_, local, err := h.folder(in)
	if err != nil {
		return err
	}
	if vm.Name == "" || strings.ContainsAny(vm.Name, `\/:*?"<>|`+"\n\r\x00") {
		return fmt.Errorf("Failed to create the folder for the export of '%s': the filename, directory name, or volume label syntax is incorrect", vm.Name)
	}
	base := filepath.Join(local, vm.Name)
	if _, err := os.Lstat(base); err == nil {
		return fmt.Errorf("Failed to copy file during export: the destination '%s' already exists", base)
	}
	disks := filepath.Join(base, "Virtual Hard Disks")
	if err := os.MkdirAll(disks, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(base, "Virtual Machines"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(base, "Virtual Machines", strings.ToUpper(vm.ID)+".vmcx"), []byte("winrmfake configuration of "+vm.ID), 0o644); err != nil {
		return err
	}
	for _, p := range paths {
		for q := p; q != ""; {
			v, err := h.getVHD(q)
			if err != nil {
				return err
			}
			src, err := h.LocalPath(q)
			if err != nil {
				return err
			}
			if err := copyFile(src, filepath.Join(disks, windowsBase(q))); err != nil {
				return err
			}
			q = v.parent
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (h *Host) exportVM(in input) (any, error) {
	h.mu.Lock()
	vm, err := h.vm(in.ID)
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, d := range vm.Drives {
		paths = append(paths, d.Path)
	}
	win, _, _ := h.folder(in)
	return map[string]string{"folder": win}, h.exportTo(in, vm, paths)
}

// checkpoint plays Checkpoint-VM as Hyper-V does it: a Production
// checkpoint keeps the drives' current VHDs as they are, and the VM goes
// on writing to a new differencing disk (<name>_<guid>.avhdx) beside each.
func (h *Host) checkpoint(in input) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	vm, err := h.vm(in.ID)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{ID: strings.ToLower(newUUID()), VMID: strings.ToLower(vm.ID), Name: in.Name, Type: "Production"}
	var made []string
	for i, d := range vm.Drives {
		parent, err := h.LocalPath(d.Path)
		if err != nil {
			return nil, err
		}
		base := windowsBase(d.Path)
		child := d.Path[:len(d.Path)-len(base)] + strings.TrimSuffix(base, filepath.Ext(base)) + "_" + strings.ToUpper(newUUID()) + ".avhdx"
		local, err := h.LocalPath(child)
		if err != nil {
			return nil, err
		}
		if err := WriteDifferencing(local, parent, nil); err != nil {
			for _, m := range made {
				os.Remove(m)
			}
			return nil, fmt.Errorf("Checkpoint operation failed: %v", err)
		}
		made = append(made, local)
		c.Paths = append(c.Paths, d.Path)
		vm.Drives[i].Path = child
	}
	h.checkpoints = append(h.checkpoints, c)
	return map[string]string{"id": c.ID, "type": c.Type}, nil
}

func (h *Host) exportCheckpoint(in input) (any, error) {
	h.mu.Lock()
	vm, err := h.vm(in.ID)
	var cp *Checkpoint
	for _, c := range h.checkpoints {
		if strings.EqualFold(c.VMID, in.ID) && c.Name == in.Name {
			cp = c
		}
	}
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if cp == nil {
		return nil, fmt.Errorf("Hyper-V was unable to find a checkpoint named '%s'", in.Name)
	}
	win, _, _ := h.folder(in)
	return map[string]string{"folder": win}, h.exportTo(in, vm, cp.Paths)
}

// stage plays the staging script: each file found once under the job's
// folder; a differencing one merged by Convert-VHD (the chain read by the
// disk package, written as a dynamic VHDX).
func (h *Host) stage(ctx context.Context, in input) (any, error) {
	win, local, err := h.folder(in)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, name := range in.Files {
		var found []string
		err := filepath.WalkDir(local, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && d.Name() == name {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) != 1 {
			return nil, fmt.Errorf("staged disk %s found %d times", name, len(found))
		}
		rel, _ := filepath.Rel(local, found[0])
		srcWin := win + `\` + strings.ReplaceAll(rel, string(filepath.Separator), `\`)
		v, err := h.getVHD(srcWin)
		if err != nil {
			return nil, err
		}
		if v.parent != "" {
			dstWin := srcWin[:strings.LastIndex(srcWin, `\`)+1] + "merged-" + strings.TrimSuffix(name, filepath.Ext(name)) + ".vhdx"
			if err := h.convertVHD(ctx, srcWin, dstWin); err != nil {
				return nil, err
			}
			srcWin = dstWin
			if v, err = h.getVHD(dstWin); err != nil {
				return nil, err
			}
		}
		lp, _ := h.LocalPath(srcWin)
		fi, err := os.Stat(lp)
		if err != nil {
			return nil, err
		}
		out = append(out, map[string]any{"path": strings.TrimPrefix(srcWin[len(win):], `\`), "size": v.size, "file": fi.Size(), "format": v.format})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(local, "staged.json"), b, 0o644); err != nil {
		return nil, err
	}
	return out, nil
}

// staged plays the reuse check: staged.json of the job's folder, if the
// job's checkpoint (when named) still exists.
func (h *Host) staged(in input) (any, error) {
	_, local, err := h.folder(in)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(local, "staged.json"))
	if err != nil {
		return []any{}, nil
	}
	if in.Name != "" {
		n := 0
		h.mu.Lock()
		for _, c := range h.checkpoints {
			if strings.EqualFold(c.VMID, in.ID) && c.Name == in.Name {
				n++
			}
		}
		h.mu.Unlock()
		if n != 1 {
			return []any{}, nil
		}
	}
	var out []any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// convertVHD plays Convert-VHD -VHDType Dynamic.
func (h *Host) convertVHD(ctx context.Context, srcWin, dstWin string) error {
	src, err := h.LocalPath(srcWin)
	if err != nil {
		return err
	}
	dst, err := h.LocalPath(dstWin)
	if err != nil {
		return err
	}
	return h.convertLocal(ctx, src, dst)
}

// convertLocal writes the image at src (its chain read by the disk
// package) as a new dynamic VHDX at dst.
func (h *Host) convertLocal(ctx context.Context, src, dst string) error {
	f, err := disk.OpenFile(src)
	if err != nil {
		return err
	}
	defer f.Close()
	img, err := vhdx.Open(f)
	if err != nil {
		return err
	}
	defer img.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("Convert-VHD: %v", err)
	}
	if err := vhdx.Write(ctx, out, disk.FromImage(img), disk.WriteOptions{}); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// removeCheckpoint plays Remove-VMSnapshot: the checkpoint goes and each
// drive's differencing disk made by it is merged into its parent, which the
// VM uses again.
func (h *Host) removeCheckpoint(in input) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	kept := h.checkpoints[:0]
	for _, c := range h.checkpoints {
		if !strings.EqualFold(c.VMID, in.ID) || c.Name != in.Name {
			kept = append(kept, c)
			continue
		}
		n++
		vm, err := h.vm(c.VMID)
		if err != nil {
			return nil, err
		}
		for i, d := range vm.Drives {
			if i >= len(c.Paths) || !strings.HasSuffix(d.Path, ".avhdx") {
				continue
			}
			if err := h.mergeInto(d.Path, c.Paths[i]); err != nil {
				return nil, fmt.Errorf("The merge of the checkpoint's disks failed: %v", err)
			}
			vm.Drives[i].Path = c.Paths[i]
		}
	}
	h.checkpoints = kept
	return map[string]int{"removed": n}, nil
}

// mergeInto merges the differencing disk child, made by a checkpoint,
// into its parent (what Remove-VMSnapshot does) and removes child. Nothing
// writes to a VM's disks in this host, so the child holds no block and the
// merge carries nothing: the child is checked to be the empty child of
// parent and removed.
func (h *Host) mergeInto(child, parent string) error {
	v, err := h.getVHD(child)
	if err != nil {
		return err
	}
	if !strings.EqualFold(v.parent, parent) {
		return fmt.Errorf("the parent of %s is %s, not %s", child, v.parent, parent)
	}
	lc, err := h.LocalPath(child)
	if err != nil {
		return err
	}
	return os.Remove(lc)
}

func (h *Host) removeStaging(in input) (any, error) {
	_, local, err := h.folder(in)
	if err != nil {
		return nil, err
	}
	_, serr := os.Lstat(local)
	exists := serr == nil
	if exists {
		if err := os.RemoveAll(local); err != nil {
			return nil, err
		}
	}
	return map[string]bool{"removed": exists}, nil
}

func (h *Host) listLeftovers(in input) (any, error) {
	h.mu.Lock()
	cps := []any{}
	for _, c := range h.checkpoints {
		if strings.HasPrefix(c.Name, in.Prefix) {
			cps = append(cps, map[string]string{"vm": c.VMID, "name": c.Name})
		}
	}
	h.mu.Unlock()
	folders := []string{}
	local, err := h.LocalPath(in.Staging)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(local)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), in.Prefix) {
			folders = append(folders, e.Name())
		}
	}
	return map[string]any{"checkpoints": cps, "folders": folders}, nil
}

// StagingFolders lists the folders left under the staging path (a
// Windows path).
func (h *Host) StagingFolders(staging string) ([]string, error) {
	local, err := h.LocalPath(staging)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(local)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}
