package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/disk/formats"
)

// qemuMade are the options qemu-img convert takes to write each format
// the way other tools' images arrive (vSphere's streamOptimized VMDK,
// Azure's fixed VHD...).
var qemuMade = map[disk.Format][][]string{
	disk.QCOW2: {{"compat=1.1"}, {"compat=0.10"}},
	disk.VMDK:  {{"subformat=streamOptimized"}, {"subformat=monolithicSparse"}},
	disk.VHD:   {{"subformat=dynamic"}, {"subformat=fixed,force_size=on"}},
	disk.VHDX:  {{"subformat=dynamic"}, {"subformat=fixed"}},
}

// TestDiskConvertRoundTrips writes the test disk in every format through
// `hyperctl disk convert` and asks qemu-img whether it agrees: the format
// it sees, a clean check, identical contents, and the same virtual size
// as `hyperctl disk info`; then converts back to raw, byte for byte.
func TestDiskConvertRoundTrips(t *testing.T) {
	h := ovaHarness(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	size := int64(24<<20 + 4608)
	disktest.WriteImage(t, src, size, 11)
	want := sha256File(t, src)
	for _, spec := range formats.All() {
		subs := spec.Subformats
		if len(subs) == 0 {
			subs = []string{""}
		}
		for _, sub := range subs {
			name := string(spec.Format)
			if sub != "" {
				name += "-" + sub
			}
			t.Run(name, func(t *testing.T) {
				out := filepath.Join(dir, name+spec.Ext)
				args := []string{"disk", "convert", src, out, "--to", string(spec.Format), "-o", "json"}
				if sub != "" && spec.Format == disk.VHD {
					args = append(args, "--vhd-type", sub)
				}
				h.run(args...).expect(t, 0)

				var rep formats.Report
				r := h.run("disk", "info", out, "-o", "json").expect(t, 0)
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatalf("disk info -o json: %v\n%s", err, r.stdout)
				}
				qi := disktest.QemuInfo(t, out, spec.QemuName)
				if qi.Format != spec.QemuName || rep.Format != spec.Format {
					t.Fatalf("qemu-img sees %s, hyperctl %s; want %s", qi.Format, rep.Format, spec.Format)
				}
				if qi.VirtualSize != rep.VirtualSize || rep.VirtualSize < size {
					t.Fatalf("virtual size: qemu-img %d, hyperctl %d, source %d", qi.VirtualSize, rep.VirtualSize, size)
				}
				if spec.Format != disk.Raw && spec.Format != disk.VHD {
					disktest.Check(t, out, spec.QemuName)
				}
				disktest.Compare(t, src, "raw", out, spec.QemuName)
				h.run("disk", "check", out).expect(t, 0, "clean")

				back := filepath.Join(dir, name+".back.raw")
				h.run("disk", "convert", out, back, "--to", "raw").expect(t, 0)
				if rep.VirtualSize != size { // a fixed VHD rounded up: compare the source's part
					if err := os.Truncate(back, size); err != nil {
						t.Fatal(err)
					}
				}
				if got := sha256File(t, back); got != want {
					t.Fatalf("%s → raw differs from the source", out)
				}
				if a, b := disktest.Allocated(t, back), disktest.Allocated(t, src); a > b+b/8 {
					t.Fatalf("round trip allocates %d bytes, the source %d: holes were filled", a, b)
				}
			})
		}
	}
}

// TestDiskConvertReadsQemuImages converts images qemu-img made, in every
// format both know, back to raw: identical to their source.
func TestDiskConvertReadsQemuImages(t *testing.T) {
	h := ovaHarness(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	disktest.WriteImage(t, src, 20<<20+4608, 5)
	want := sha256File(t, src)
	for _, spec := range formats.All() {
		for i, opts := range qemuMade[spec.Format] {
			t.Run(string(spec.Format)+"-"+opts[0], func(t *testing.T) {
				img := filepath.Join(dir, string(spec.Format)+string(rune('a'+i))+spec.Ext)
				disktest.Convert(t, src, "raw", img, spec.QemuName, opts...)
				back := img + ".raw"
				h.run("disk", "convert", img, back, "--to", "raw").expect(t, 0)
				fi, _ := os.Stat(back)
				if fi.Size() > 20<<20+4608 { // a fixed VHD's size rounded by qemu-img
					os.Truncate(back, 20<<20+4608)
				}
				if got := sha256File(t, back); got != want {
					t.Fatalf("qemu-img's %s %v read back differs from its source", spec.Format, opts)
				}
			})
		}
	}
}

func TestDiskCommandsRefuse(t *testing.T) {
	h := ovaHarness(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "a.raw")
	disktest.WriteImage(t, src, 1<<20, 1)
	out := filepath.Join(dir, "b.raw")
	h.run("disk", "convert", src, out).expect(t, 2, "--to is required")
	h.run("disk", "convert", src, out, "--to", "vdi").expect(t, 2, `unknown disk format "vdi"`)
	h.run("disk", "convert", src, out, "--to", "raw", "--vhd-type", "fixed").expect(t, 2, "--vhd-type is for --to vhd")
	h.run("disk", "convert", src, src, "--to", "raw", "--force").expect(t, 2, "same file")
	h.run("disk", "convert", src, out, "--to", "raw", "--cluster-size", "lots").expect(t, 2, "--cluster-size")
	h.run("disk", "convert", src, out, "--to", "raw").expect(t, 0)
	before := sha256File(t, out)
	h.run("disk", "convert", src, out, "--to", "raw").expect(t, 1, "exists", "--force")
	if sha256File(t, out) != before {
		t.Fatal("a refused convert changed the existing output")
	}
	h.run("disk", "info", filepath.Join(dir, "missing.qcow2")).expect(t, 1, "missing.qcow2")
	if _, err := os.Stat(out + ".part"); !os.IsNotExist(err) {
		t.Fatalf("a .part file was left behind: %v", err)
	}
}
