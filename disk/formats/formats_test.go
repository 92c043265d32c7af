package formats_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/disk/formats"
)

// testSize is the standard test disk's size here: a multiple of 512 but
// not of 64 KiB, so every format's tail handling is in play.
const testSize = 8<<20 + 4608

// qemuImage is an image qemu-img made from the standard test disk.
type qemuImage struct {
	name     string      // file name, also the test name
	format   disk.Format // what Detect must say
	qemuName string      // what qemu-img calls the format
	options  []string    // qemu-img convert -o
	// mapsHoles is false where qemu-img (7.2) has no block status for
	// the format and maps the whole disk as data (vhdx, fixed vpc).
	mapsHoles bool
}

var qemuImages = []qemuImage{
	{"disk.qcow2", disk.QCOW2, "qcow2", nil, true},
	{"stream.vmdk", disk.VMDK, "vmdk", []string{"subformat=streamOptimized"}, true},
	{"sparse.vmdk", disk.VMDK, "vmdk", []string{"subformat=monolithicSparse"}, true},
	{"dynamic.vhd", disk.VHD, "vpc", []string{"subformat=dynamic"}, true},
	{"fixed.vhd", disk.VHD, "vpc", []string{"subformat=fixed"}, false},
	{"disk.vhdx", disk.VHDX, "vhdx", nil, false},
}

// makeImages writes the standard test disk to dir as disk.raw and every
// qemuImage beside it, returning the raw file's path.
func makeImages(t *testing.T, dir string) string {
	t.Helper()
	raw := filepath.Join(dir, "disk.raw")
	disktest.WriteImage(t, raw, testSize, 9)
	for _, im := range qemuImages {
		disktest.Convert(t, raw, "raw", filepath.Join(dir, im.name), im.qemuName, im.options...)
	}
	return raw
}

func TestDetectFindsEachFormatQemuImgWrites(t *testing.T) {
	dir := t.TempDir()
	raw := makeImages(t, dir)
	detect := func(path string) disk.Format {
		f, err := disk.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s, err := formats.Detect(f)
		if err != nil {
			t.Fatalf("Detect %s: %v", path, err)
		}
		return s.Format
	}
	for _, im := range qemuImages {
		if got := detect(filepath.Join(dir, im.name)); got != im.format {
			t.Errorf("%s: detected %s, want %s", im.name, got, im.format)
		}
	}
	if got := detect(raw); got != disk.Raw {
		t.Errorf("a plain file: detected %s, want raw", got)
	}
}

func TestLookup(t *testing.T) {
	for name, want := range map[string]disk.Format{"vpc": disk.VHD, "vhd": disk.VHD, " QCOW2 ": disk.QCOW2, "raw": disk.Raw, "vhdx": disk.VHDX, "vmdk": disk.VMDK} {
		s, err := formats.Lookup(name)
		if err != nil || s.Format != want {
			t.Errorf("Lookup(%q) = %s, %v; want %s", name, s.Format, err, want)
		}
	}
	_, err := formats.Lookup("vdi")
	if err == nil {
		t.Fatal(`Lookup("vdi") succeeded`)
	}
	for _, known := range []string{"raw", "qcow2", "vmdk", "vhd", "vhdx"} {
		if !strings.Contains(err.Error(), known) {
			t.Errorf("the refusal %q does not name %s", err, known)
		}
	}
}

func TestConvertRefusals(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	disktest.WriteImage(t, raw, testSize, 9)
	src := disktest.OpenImage(t, raw, disk.OpenRaw)
	vhd, err := formats.Lookup("vhd")
	if err != nil {
		t.Fatal(err)
	}
	noPart := func(out string) {
		t.Helper()
		if _, err := os.Lstat(out + ".part"); !os.IsNotExist(err) {
			t.Fatalf("%s.part is left behind (%v)", out, err)
		}
	}

	t.Run("bad subformat", func(t *testing.T) {
		out := filepath.Join(dir, "sub.vhd")
		_, err := formats.Convert(context.Background(), src, out, formats.ConvertOptions{To: vhd, Write: disk.WriteOptions{Subformat: "sparse"}})
		if err == nil {
			t.Fatal("Convert with subformat sparse succeeded")
		}
		for _, want := range []string{`"sparse"`, "dynamic", "fixed"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal %q does not name %s", err, want)
			}
		}
		if _, err := os.Lstat(out); !os.IsNotExist(err) {
			t.Errorf("the output exists after a refusal (%v)", err)
		}
		noPart(out)
	})

	t.Run("existing output", func(t *testing.T) {
		out := filepath.Join(dir, "exists.vhd")
		const before = "not to be overwritten"
		if err := os.WriteFile(out, []byte(before), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := formats.Convert(context.Background(), src, out, formats.ConvertOptions{To: vhd})
		if err == nil || !strings.Contains(err.Error(), "exists") {
			t.Fatalf("Convert over an existing file without Force: %v", err)
		}
		if b, err := os.ReadFile(out); err != nil || string(b) != before {
			t.Fatalf("the existing output changed: %q, %v", b, err)
		}
		noPart(out)

		res, err := formats.Convert(context.Background(), src, out, formats.ConvertOptions{To: vhd, Force: true})
		if err != nil {
			t.Fatalf("Convert with Force: %v", err)
		}
		if res.Format != disk.VHD || res.Subformat != "dynamic" || res.VirtualSize != testSize {
			t.Errorf("result %+v", res)
		}
		disktest.Compare(t, raw, "raw", out, "vpc")
		noPart(out)
	})
}

// qemuDataSize is the bytes `qemu-img map` reports as data in the image.
func qemuDataSize(t *testing.T, path, format string) int64 {
	t.Helper()
	var runs []struct {
		Length int64 `json:"length"`
		Data   bool  `json:"data"`
	}
	out := disktest.Run(t, "map", "--output", "json", "-f", format, path)
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("qemu-img map %s: %v\n%s", path, err, out)
	}
	var n int64
	for _, r := range runs {
		if r.Data {
			n += r.Length
		}
	}
	return n
}

func TestInspectAgreesWithQemuImg(t *testing.T) {
	dir := t.TempDir()
	raw := makeImages(t, dir)
	// The source's data: its sectors that are not all zeros.
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	var sourceData int64
	for off := 0; off < len(b); off += disk.SectorSize {
		if !disk.IsZero(b[off:min(off+disk.SectorSize, len(b))]) {
			sourceData += disk.SectorSize
		}
	}
	all := append([]qemuImage{{"disk.raw", disk.Raw, "raw", nil, true}}, qemuImages...)
	for _, im := range all {
		t.Run(im.name, func(t *testing.T) {
			path := filepath.Join(dir, im.name)
			if im.name == "disk.raw" {
				path = raw
			}
			r, err := formats.Inspect(path, "")
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			info := disktest.QemuInfo(t, path, im.qemuName)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if r.Format != im.format || r.VirtualSize != info.VirtualSize || r.FileSize != fi.Size() || r.AllocatedSize != info.ActualSize {
				t.Errorf("Inspect: format %s, virtual size %d, file size %d, allocated %d; qemu-img: %s, %d, file %d, disk size %d",
					r.Format, r.VirtualSize, r.FileSize, r.AllocatedSize, im.format, info.VirtualSize, fi.Size(), info.ActualSize)
			}
			// Where qemu-img sees holes, the data sizes agree; elsewhere
			// ours lies between the source's data and the whole disk.
			mapped := qemuDataSize(t, path, im.qemuName)
			if im.mapsHoles && r.DataSize != mapped || !im.mapsHoles && (r.DataSize < sourceData || r.DataSize > mapped) {
				t.Errorf("Inspect: data size %d; qemu-img map: %d (holes seen: %v), of the source: %d", r.DataSize, mapped, im.mapsHoles, sourceData)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	disktest.WriteImage(t, raw, testSize, 9)
	clean := filepath.Join(dir, "clean.qcow2")
	disktest.Convert(t, raw, "raw", clean, "qcow2")

	res, err := formats.Check(context.Background(), clean, "")
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || len(res.Problems) != 0 || res.Format != "qcow2" {
		t.Fatalf("a clean image: %+v", res)
	}
	if r, err := formats.Inspect(clean, ""); err != nil || res.DataChecked != r.DataSize {
		t.Errorf("checked %d bytes of data; Inspect: %+v, %v", res.DataChecked, r, err)
	}

	// Point the first L1 entry (the L2 table for the first 512 MiB) far
	// past the end of the file.
	b, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	l1 := binary.BigEndian.Uint64(b[40:48])
	binary.BigEndian.PutUint64(b[l1:], 1<<63|1<<40)
	damaged := filepath.Join(dir, "damaged.qcow2")
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(disktest.QemuImg(t), "check", "-f", "qcow2", damaged).CombinedOutput(); err == nil {
		t.Fatalf("qemu-img check finds the damaged image clean: the damage is not damage\n%s", out)
	}
	res, err = formats.Check(context.Background(), damaged, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || len(res.Problems) == 0 {
		t.Fatalf("a damaged image: %+v", res)
	}
	if p := strings.Join(res.Problems, "\n"); !strings.Contains(p, "L1") {
		t.Errorf("the problems do not name the L1 table:\n%s", p)
	}
}
