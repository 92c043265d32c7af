package formats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/qcow2"
	"github.com/hypersdk/hypersdk/disk/vhd"
	"github.com/hypersdk/hypersdk/disk/vhdx"
	"github.com/hypersdk/hypersdk/vmdk"
)

// Spec is one format: how to recognise, open and write it.
type Spec struct {
	Format disk.Format
	// QemuName is what qemu-img calls the format (vpc for VHD).
	QemuName string
	// Ext is the file name extension, with its dot.
	Ext string
	// Detect reports whether head (the file's first bytes) and tail (its
	// last 512, or fewer when the file is shorter) carry the format's
	// magic.
	Detect func(head, tail []byte) bool
	Open   func(f *disk.File) (disk.Image, error)
	Write  func(ctx context.Context, t disk.Target, src disk.Source, o disk.WriteOptions) error
	// Appends is true when Write only appends (never seeks back): its
	// output can be hashed or uploaded as it streams.
	Appends bool
	// Subformats are the values WriteOptions.Subformat may take; the first
	// is the default.
	Subformats []string
}

// headSize is how much of a file Detect sees from its start.
const headSize = 4096

// specs lists the formats in detection order: formats with a magic number
// at offset 0 first, the VHD footer at the end next, raw last.
var specs = []Spec{
	{
		Format: disk.QCOW2, QemuName: "qcow2", Ext: ".qcow2",
		Detect: func(head, _ []byte) bool { return qcow2.Detect(head) },
		Open:   func(f *disk.File) (disk.Image, error) { return qcow2.Open(f) },
		Write:  qcow2.Write,
	},
	{
		Format: disk.VMDK, QemuName: "vmdk", Ext: ".vmdk",
		Detect: func(head, _ []byte) bool { return vmdk.Detect(head) },
		Open:   vmdk.Open, Write: vmdk.Write, Appends: true,
		Subformats: []string{"streamOptimized"},
	},
	{
		Format: disk.VHDX, QemuName: "vhdx", Ext: ".vhdx",
		Detect: func(head, _ []byte) bool { return vhdx.Detect(head) },
		Open:   func(f *disk.File) (disk.Image, error) { return vhdx.Open(f) },
		Write:  vhdx.Write, Subformats: []string{"dynamic"},
	},
	{
		Format: disk.VHD, QemuName: "vpc", Ext: ".vhd",
		Detect: vhd.Detect,
		Open:   func(f *disk.File) (disk.Image, error) { return vhd.Open(f) },
		Write:  vhd.Write, Subformats: []string{"dynamic", "fixed"},
	},
	{
		Format: disk.Raw, QemuName: "raw", Ext: ".raw",
		Detect: func(_, _ []byte) bool { return true },
		Open:   disk.OpenRaw, Write: disk.WriteRaw,
	},
}

// All returns every format, raw last.
func All() []Spec { return slices.Clone(specs) }

// Names lists the formats' names, for flags and messages.
func Names() []string {
	var out []string
	for _, s := range specs {
		out = append(out, string(s.Format))
	}
	slices.Sort(out)
	return out
}

// Lookup finds a format by its name or qemu-img's name for it.
func Lookup(name string) (Spec, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, s := range specs {
		if string(s.Format) == n || s.QemuName == n {
			return s, nil
		}
	}
	return Spec{}, fmt.Errorf("unknown disk format %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Detect says which format f is, from its first and last bytes; a file
// with no known magic is raw.
func Detect(f *disk.File) (Spec, error) {
	head := make([]byte, min(headSize, f.Size))
	if _, err := f.R.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return Spec{}, fmt.Errorf("%s: %w", f.Name, err)
	}
	tail := make([]byte, min(disk.SectorSize, f.Size))
	if _, err := f.R.ReadAt(tail, f.Size-int64(len(tail))); err != nil && !errors.Is(err, io.EOF) {
		return Spec{}, fmt.Errorf("%s: %w", f.Name, err)
	}
	for _, s := range specs {
		if s.Format != disk.Raw && s.Detect(head, tail) {
			return s, nil
		}
	}
	return Lookup(string(disk.Raw))
}

// Open opens the image at path as format (empty: detected). The caller
// closes both the image and the file.
func Open(path string, format string) (disk.Image, *disk.File, error) {
	f, err := disk.OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	var s Spec
	if format != "" {
		s, err = Lookup(format)
	} else {
		s, err = Detect(f)
	}
	if err == nil {
		var img disk.Image
		if img, err = s.Open(f); err == nil {
			return img, f, nil
		}
	}
	f.Close()
	return nil, nil, err
}

// hasPrefix is the usual magic-number test.
func hasPrefix(b []byte, magic string) bool { return bytes.HasPrefix(b, []byte(magic)) }
