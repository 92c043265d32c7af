package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/vma"
)

// The `vma` commands work on Proxmox VE dump files on this machine with
// package vma: no daemon, server or token, like `ova` and `disk`.

func (a *app) vmaCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vma",
		Short: "Inspect, verify and extract Proxmox VE backups (vzdump .vma files, local, no daemon)",
		Long: `Work with the VMA archives vzdump writes for Proxmox VE VMs
(vzdump-qemu-<vmid>-<time>.vma, .vma.zst, .vma.gz, .vma.lzo). These commands
need no daemon, server or token, and no Proxmox tools.

  info FILE          the archive's uuid, time, devices with sizes, configuration
                     files, and the VM from its qemu-server.conf (name, CPUs,
                     memory, firmware, disks, NICs); reads the header only
  verify FILE        read the whole archive: every checksum, every cluster of
                     every disk present exactly once
  extract FILE DIR   one sparse raw image per disk (disk-<device>.raw, as
                     Proxmox's vma extract names them) and the configuration
                     files, written only once the whole archive checked out

The compression is recognised by the file's first bytes, not by its name.`,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.vmaInfoCommand(), a.vmaVerifyCommand(), a.vmaExtractCommand())
	return cmd
}

// Output objects (snake_case, like the API).

type vmaDeviceOut struct {
	ID      uint8  `json:"id"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	VMState bool   `json:"vmstate,omitempty"`
	// Disk is the configuration's drive whose bytes the device holds.
	Disk string `json:"disk,omitempty"`
	// DataBytes and ZeroBytes are what verify and extract read.
	DataBytes *int64 `json:"data_bytes,omitempty"`
	ZeroBytes *int64 `json:"zero_bytes,omitempty"`
}

type vmaConfigOut struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

type vmaOut struct {
	File        string          `json:"file"`
	Compression vma.Compression `json:"compression"`
	FileSize    int64           `json:"file_size"`
	UUID        string          `json:"uuid"`
	Created     time.Time       `json:"created"`
	Devices     []vmaDeviceOut  `json:"devices"`
	Configs     []vmaConfigOut  `json:"configs"`
	// VM is the parsed qemu-server.conf; VMError says why there is none.
	VM      *vma.VMConfig `json:"vm,omitempty"`
	VMError string        `json:"vm_error,omitempty"`
	// Verified: the whole archive was read and found complete (verify,
	// extract).
	Verified     bool                `json:"verified"`
	ArchiveBytes int64               `json:"archive_bytes,omitempty"`
	Dir          string              `json:"dir,omitempty"`
	Files        []vma.ExtractedFile `json:"files,omitempty"`
}

func vmaReport(f *vma.File) *vmaOut {
	h := f.Header()
	out := &vmaOut{File: f.Path, Compression: f.Compression, FileSize: f.Size, UUID: h.UUID.String(), Created: h.Created,
		Devices: []vmaDeviceOut{}, Configs: []vmaConfigOut{}}
	for _, c := range h.Configs {
		out.Configs = append(out.Configs, vmaConfigOut{Name: c.Name, Size: len(c.Data)})
	}
	vm, err := h.VMConfig()
	if err != nil {
		out.VMError = err.Error()
	} else {
		out.VM = vm
	}
	for _, d := range h.Devices {
		do := vmaDeviceOut{ID: d.ID, Name: d.Name, Size: d.Size, VMState: d.VMState()}
		if vm != nil {
			if dr, ok := vm.DiskForDevice(d.Name); ok {
				do.Disk = dr.Key
			}
		}
		out.Devices = append(out.Devices, do)
	}
	return out
}

func (out *vmaOut) addStats(st *vma.Stats) {
	out.Verified, out.ArchiveBytes = true, st.ArchiveBytes
	for _, ds := range st.Devices {
		for i := range out.Devices {
			if out.Devices[i].ID == ds.Device.ID {
				out.Devices[i].DataBytes, out.Devices[i].ZeroBytes = &ds.DataBytes, &ds.ZeroBytes
			}
		}
	}
}

func (a *app) vmaInfoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "info FILE",
		Short: "Show a VMA archive's devices, configuration files and VM",
		Example: `  hyperctl vma info vzdump-qemu-101-2026_01_31-12_00_00.vma.zst
  hyperctl vma info backup.vma -o json`,
		Args: exactArgs("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			f, err := vma.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			out := vmaReport(f)
			return a.show(out, func(w io.Writer) error { return vmaTable(w, out) })
		}),
	}
}

func (a *app) vmaVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify FILE",
		Short: "Read a whole VMA archive and check it",
		Long: `Read FILE to its end as a restore would, writing nothing: the header's and
every extent's MD5, the archive's uuid in every extent, every cluster inside
its device and never repeated, and every cluster of every disk present (a
dump cut short is refused). Exits 1 on the first problem.`,
		Args: exactArgs("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			f, err := vma.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			out := vmaReport(f)
			bar := a.newByteBar("verifying", diskBytes(f.Header()))
			st, err := f.Extract(cmd.Context(), vma.ExtractOptions{
				Open:     func(vma.Device) (io.WriterAt, error) { return nil, nil },
				Progress: func(done, _ int64) { bar.update(progress.Report{BytesDone: done}) },
			})
			bar.done(err == nil)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out.addStats(st)
			return a.show(out, func(w io.Writer) error {
				fmt.Fprintf(w, "OK: %s: %s archive of %d disk(s), %s read, every checksum and cluster checked\n",
					out.File, compressionName(out.Compression), len(st.Devices), humanBytes(st.ArchiveBytes))
				return nil
			})
		}),
	}
}

func (a *app) vmaExtractCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "extract FILE DIR [--force]",
		Short: "Extract a VMA archive's disks (sparse raw images) and configuration files",
		Long: `Extract FILE into DIR, creating it if needed: each disk as a sparse raw
image named disk-<device>.raw (zero blocks stay holes), each configuration
file (qemu-server.conf, qemu-server.fw) under its name. Files are written as
NAME.part beneath DIR without following links, and renamed into place only
once the whole archive has been read and checked (checksums, every cluster
present); a damaged or truncated archive leaves nothing behind. Existing
files are replaced only with --force.

Convert the images on with 'hyperctl disk convert', e.g. to qcow2 or VMDK.`,
		Example: `  hyperctl vma extract vzdump-qemu-101-2026_01_31-12_00_00.vma.zst ./vm101
  hyperctl disk convert vm101/disk-drive-scsi0.raw vm101/scsi0.qcow2 --to qcow2`,
		Args: exactArgs("FILE", "DIR"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.vmaExtract(cmd, args[0], args[1], force)
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace files that already exist in DIR")
	return cmd
}

func (a *app) vmaExtract(cmd *cobra.Command, file, dir string, force bool) error {
	f, err := vma.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := openDir(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	out := vmaReport(f)
	bar := a.newByteBar("extracting", diskBytes(f.Header()))
	files, st, err := vma.ExtractToDir(cmd.Context(), f.Reader, root, vma.DirOptions{Overwrite: force,
		Progress: func(done, _ int64) { bar.update(progress.Report{BytesDone: done}) }})
	bar.done(err == nil)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	out.addStats(st)
	out.Dir, out.Files = dir, files
	return a.show(out, func(w io.Writer) error {
		fmt.Fprintf(w, "extracted %s (%s) into %s:\n", out.File, compressionName(out.Compression), dir)
		for _, fo := range files {
			fmt.Fprintf(w, "  %s\t%s\t%s\n", fo.Name, fo.Kind, humanBytes(fo.Size))
		}
		return nil
	})
}

// openDir creates dir if needed and opens it as the root every extracted
// file is created beneath (links inside it are never followed).
func openDir(dir string) (*os.Root, error) {
	base, rel := ".", filepath.Clean(dir)
	if filepath.IsAbs(rel) {
		vol := filepath.VolumeName(rel)
		base = vol + string(filepath.Separator)
		rel = strings.TrimLeft(rel[len(vol):], string(filepath.Separator))
		if rel == "" {
			rel = "."
		}
	}
	root, err := safepath.OpenPath(base, rel, 0o755)
	var ue *safepath.UnsafeError
	if errors.As(err, &ue) {
		return nil, fmt.Errorf("extract into %s: %s %s; refusing to extract through it (name the real directory)", dir, ue.Component, ue.Reason)
	}
	return root, err
}

func diskBytes(h *vma.Header) int64 {
	var n int64
	for _, d := range h.Disks() {
		n += d.Size
	}
	return n
}

func compressionName(c vma.Compression) string {
	if c == vma.CompressionNone {
		return "uncompressed"
	}
	return string(c) + "-compressed"
}

func vmaTable(w io.Writer, out *vmaOut) error {
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	row("file", fmt.Sprintf("%s (%s, %s)", out.File, compressionName(out.Compression), humanBytes(out.FileSize)))
	row("uuid", out.UUID)
	row("created", out.Created.Format("2006-01-02 15:04:05 MST"))
	if vm := out.VM; vm != nil {
		cpus := fmt.Sprintf("%d vCPU(s) (%d socket(s) × %d core(s))", vm.CPUs(), vm.Sockets, vm.Cores)
		fw := "BIOS (seabios)"
		if vm.UEFI() {
			fw = "UEFI (ovmf)"
		}
		row("vm", vm.Name)
		row("cpus", cpus)
		row("memory", humanBytes(vm.MemoryMiB<<20))
		row("firmware", fw)
		if vm.Machine != "" {
			row("machine", vm.Machine)
		}
		row("os type", vm.OSType)
		for _, n := range vm.NICs {
			row(n.Key, strings.TrimSpace(fmt.Sprintf("%s %s bridge=%s", n.Model, n.MAC, n.Bridge)))
		}
		for _, wn := range vm.Warnings {
			row("config warning", wn)
		}
	} else {
		row("vm", "unknown: "+out.VMError)
	}
	fmt.Fprintln(w, "devices:")
	for _, d := range out.Devices {
		what := d.Disk
		if d.VMState {
			what = "vmstate (RAM, skipped)"
		} else if out.VM != nil {
			if dr, ok := out.VM.DiskForDevice(d.Name); ok {
				what = fmt.Sprintf("%s %s", dr.Key, dr.Volume)
			}
		}
		line := fmt.Sprintf("  %d\t%s\t%s\t%s", d.ID, d.Name, sizeAndBytes(d.Size), what)
		if d.DataBytes != nil {
			line += "\tdata " + humanBytes(*d.DataBytes)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "configs:")
	for _, c := range out.Configs {
		fmt.Fprintf(w, "  %s\t%s\n", c.Name, humanBytes(int64(c.Size)))
	}
	return nil
}
