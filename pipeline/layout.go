package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/ovf"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// writeSmall writes a small generated file (descriptor, manifest,
// metadata) through the same temp + sync + rename as the disks.
func (r *run) writeSmall(ctx context.Context, name, kind string, data []byte) (providers.ExportedFile, error) {
	it := &item{name: name, kind: kind}
	if err := r.produce(ctx, it, 0, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return providers.ExportedFile{}, err
	}
	return providers.ExportedFile{Path: name, Size: it.size, SHA256: it.sha256, Kind: kind}, nil
}

func (r *run) exported(items []*item) []providers.ExportedFile {
	out := make([]providers.ExportedFile, 0, len(items))
	for _, it := range items {
		out = append(out, providers.ExportedFile{Path: it.name, Size: it.size, SHA256: it.sha256, Kind: it.kind})
	}
	return out
}

func (r *run) result(files []providers.ExportedFile, manifest string) *providers.ExportResult {
	res := &providers.ExportResult{VM: r.exp.VM, OutputDir: r.opts.OutputDir, Format: r.opts.Format, DiskFormat: r.opts.DiskFormat,
		Files: files, Manifest: manifest}
	if r.opts.Output != nil {
		res.OutputDir = r.opts.Output.Location()
	}
	for _, f := range files {
		res.Bytes += f.Size
	}
	res.ResumedBytes = r.resumed.Load()
	return res
}

// manifest writes the SHA-256 manifest of files as name: the OVF .mf
// syntax, "SHA256(file)= hex", which `sha256sum -c` also reads.
func (r *run) manifest(ctx context.Context, name string, files []providers.ExportedFile) (providers.ExportedFile, error) {
	mf := &ovf.Manifest{}
	for _, f := range files {
		if err := mf.Add(ovf.SHA256, f.Path, f.SHA256); err != nil {
			return providers.ExportedFile{}, err
		}
	}
	return r.writeSmall(ctx, name, "manifest", mf.Marshal())
}

// spec is the descriptor's view of the VM.
func (r *run) spec(items []*item) ovf.VMSpec {
	vm := r.exp.VM
	s := ovf.VMSpec{
		Name: vm.Name, GuestOS: ovf.GuestFromVMware(vm.GuestOS, vm.Labels["guest_full_name"]),
		CPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB,
	}
	if vm.Firmware == "bios" || vm.Firmware == "efi" {
		s.Firmware = vm.Firmware
	}
	nd := 0
	for _, it := range items {
		if it.disk == nil {
			key := ""
			if it.kind == "nvram" {
				key = "nvram"
			}
			s.Files = append(s.Files, ovf.ExtraFileSpec{File: it.name, Size: it.size, ConfigKey: key})
			continue
		}
		capacity := it.disk.Capacity
		var info providers.DiskInfo
		if nd < len(vm.Disks) {
			info = vm.Disks[nd]
		}
		if capacity <= 0 {
			capacity = info.CapacityBytes
		}
		nd++
		s.Disks = append(s.Disks, ovf.DiskSpec{File: it.name, CapacityBytes: capacity, FileSize: it.size, Controller: controllerModel(info)})
	}
	for _, n := range vm.NICs {
		if strings.TrimSpace(n.Network) == "" {
			r.log.Warn("network adapter without a network left out of the descriptor", "nic", n.Label)
			continue
		}
		s.NICs = append(s.NICs, ovf.NICSpec{Network: n.Network, Type: nicModel(n.Type), MAC: n.MAC})
	}
	return s
}

// controllerModel names d's controller as ovf.Build does.
func controllerModel(d providers.DiskInfo) string {
	if d.ControllerModel != "" {
		return d.ControllerModel
	}
	for _, k := range []string{"scsi", "sata", "ide", "nvme"} {
		if strings.HasPrefix(d.Controller, k) {
			return k
		}
	}
	return ""
}

// nicModel names an adapter type as OVF's ResourceSubType does.
func nicModel(t string) string {
	switch strings.ToLower(t) {
	case "vmxnet3":
		return "VmxNet3"
	case "vmxnet2":
		return "VmxNet2"
	case "e1000":
		return "E1000"
	case "e1000e":
		return "E1000e"
	case "pcnet32":
		return "PCNet32"
	}
	return ""
}

// layoutOVF writes the descriptor and the manifest next to the disks and,
// for FormatOVA, packs the folder.
func (r *run) layoutOVF(ctx context.Context, items []*item) (*providers.ExportResult, error) {
	desc, err := ovf.Build(r.spec(items))
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("descriptor for %s: %w", r.exp.VM.Name, err))
	}
	ovfName := r.base + ".ovf"
	df, err := r.writeSmall(ctx, ovfName, "ovf", desc.Marshal())
	if err != nil {
		return nil, err
	}
	files := append([]providers.ExportedFile{df}, r.exported(items)...)
	mf, err := r.manifest(ctx, ovf.ManifestName(ovfName), files)
	if err != nil {
		return nil, err
	}
	res := r.result(append(files, mf), mf.Path)
	res.Format = providers.FormatOVF
	if r.opts.Format == providers.FormatOVA {
		if err := r.pack(ctx, ovfName, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ovaCompression is the compression the export's OVA asks for.
func (r *run) ovaCompression() ova.Compression {
	switch {
	case !r.opts.Compress:
		return ova.CompressionNone
	case r.opts.Compression == "zstd":
		return ova.CompressionZstd
	}
	return ova.CompressionGzip
}

// pack turns the OVF folder into an OVA (compressed when asked). An OVA
// to object storage never gets here: it streams into its object (see
// archive).
func (r *run) pack(ctx context.Context, ovfName string, res *providers.ExportResult) error {
	comp := r.ovaCompression()
	name := r.base + comp.Extension()
	r.opts.Report(progress.Report{Phase: progress.PhasePackaging, BytesDone: 0, BytesTotal: res.Bytes})
	po := ova.Options{
		Compression: comp, Level: r.opts.CompressionLevel, CleanupOVF: r.opts.CleanupOVF,
		Progress: func(p progress.Report) {
			// The packer counts archive bytes without knowing their total:
			// the export's bytes are it (headers aside), so done is capped.
			r.opts.Report(progress.Report{Phase: progress.PhasePackaging, BytesDone: min(p.BytesDone, res.Bytes), BytesTotal: res.Bytes, Item: p.Item})
		},
	}
	pr, err := ova.PackIn(ctx, r.root, ovfName, r.root, name, po)
	if err != nil {
		return fmt.Errorf("pack %s: %w", name, err)
	}
	r.track(name)
	r.log.Info("packed OVA", "file", name, "bytes", pr.Size, "compression", string(pr.Compression), "ratio", fmt.Sprintf("%.2f", pr.Ratio),
		"throughput_mib_s", fmt.Sprintf("%.1f", pr.Throughput/(1<<20)))
	if r.opts.CleanupOVF {
		res.Files = nil
		res.Bytes = 0
	}
	res.Format = providers.FormatOVA
	res.OVAPath = name
	res.Packaging = &providers.Packaging{Compression: string(pr.Compression), Level: pr.Level, Ratio: pr.Ratio,
		Throughput: pr.Throughput, Duration: pr.Duration}
	for _, m := range pr.Members {
		res.Members = append(res.Members, providers.ExportedFile{Path: m.Name, Size: m.Size, SHA256: m.Digests[ovf.SHA256], Kind: string(m.Kind)})
	}
	res.Files = append(res.Files, providers.ExportedFile{Path: name, Size: pr.Size, SHA256: pr.SHA256, Kind: "ova"})
	res.Bytes += pr.Size
	return nil
}

// archiveTime returns the time recorded for the archive name by the
// first attempt (now, recorded, when none is).
func (r *run) archiveTime(name string) time.Time {
	rec := name + ".time"
	if b, err := r.root.ReadFile(rec); err == nil {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b))); err == nil {
			return t
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	if f, err := safepath.OpenFile(r.root, rec, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640); err == nil {
		_, err = f.WriteString(now.Format(time.RFC3339))
		if err == nil {
			err = f.Sync()
		}
		if f.Close() == nil && err == nil {
			r.notePartial(rec)
		}
	}
	return now
}

// Metadata is the JSON description of a VM written by FormatDisks
// exports ("<vm>.json"): what a descriptor would say, in plain terms.
type Metadata struct {
	Name       string              `json:"name"`
	Provider   string              `json:"provider,omitempty"`
	ID         string              `json:"id,omitempty"`
	Path       string              `json:"path,omitempty"`
	UUID       string              `json:"uuid,omitempty"`
	GuestOS    string              `json:"guest_os,omitempty"`
	Firmware   string              `json:"firmware,omitempty"`
	CPUs       int                 `json:"cpus"`
	MemoryMiB  int64               `json:"memory_mib"`
	Disks      []MetadataDisk      `json:"disks"`
	NICs       []providers.NICInfo `json:"nics"`
	Files      []MetadataFile      `json:"files,omitempty"`
	ExportedAt time.Time           `json:"exported_at"`
}

// MetadataDisk is one disk of Metadata.
type MetadataDisk struct {
	File          string `json:"file"`
	Format        string `json:"format"`
	CapacityBytes int64  `json:"capacity_bytes"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256"`
	Label         string `json:"label,omitempty"`
	Controller    string `json:"controller,omitempty"`
}

// MetadataFile is a non-disk file of Metadata (NVRAM).
type MetadataFile struct {
	File   string `json:"file"`
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// layoutDisks writes the JSON metadata and the manifest of the disks.
func (r *run) layoutDisks(ctx context.Context, items []*item) (*providers.ExportResult, error) {
	vm := r.exp.VM
	md := Metadata{Name: vm.Name, Provider: vm.Provider, ID: vm.ID, Path: vm.Path, UUID: vm.UUID, GuestOS: vm.GuestOS, Firmware: vm.Firmware,
		CPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB, NICs: vm.NICs, Disks: []MetadataDisk{}, ExportedAt: time.Now().UTC()}
	nd := 0
	for _, it := range items {
		if it.disk == nil {
			md.Files = append(md.Files, MetadataFile{File: it.name, Kind: it.kind, Size: it.size, SHA256: it.sha256})
			continue
		}
		d := MetadataDisk{File: it.name, Format: string(r.opts.DiskFormat), CapacityBytes: it.disk.Capacity, Size: it.size, SHA256: it.sha256}
		if nd < len(vm.Disks) {
			d.Label, d.Controller = vm.Disks[nd].Label, controllerModel(vm.Disks[nd])
		}
		nd++
		md.Disks = append(md.Disks, d)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(md); err != nil {
		return nil, err
	}
	jf, err := r.writeSmall(ctx, r.base+".json", "metadata", b.Bytes())
	if err != nil {
		return nil, err
	}
	files := append(r.exported(items), jf)
	mf, err := r.manifest(ctx, r.base+".sha256", files)
	if err != nil {
		return nil, err
	}
	return r.result(append(files, mf), mf.Path), nil
}
