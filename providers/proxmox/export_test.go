package proxmox

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/proxmox/pvefake"
)

// webVolumes are web-1's volumes in its disks' order (scsi0, virtio1).
var webVolumes = []string{"local-lvm:vm-100-disk-0", "local-lvm:vm-100-disk-1"}

// checkManifest runs sha256sum -c on an export's manifest.
func checkManifest(t *testing.T, dir, manifest string) {
	t.Helper()
	cmd := exec.Command("sha256sum", "--strict", "-c", manifest)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c %s: %v\n%s", manifest, err, out)
	}
}

// The must-show case: web-1, a running VM with two disks (holes,
// partial clusters, sizes that are not cluster multiples), exported by
// streaming `vzdump --stdout` through a real sshd, to an OVA (it
// validates, its .ovf first, its disks identical to the volumes) and to
// qcow2 disks (the manifest verifies, qemu-img check is clean, qemu-img
// compare finds them identical to the volumes). Nothing is left on the
// cluster, and no archive was written to disk.
func TestVzdumpExportsTwoDisksThroughSSHD(t *testing.T) {
	disktest.QemuImg(t)
	f := newFixture(t, pvefake.SampleOptions{})
	p := f.provider(t, f.config())
	ctx := context.Background()

	t.Run("ova", func(t *testing.T) {
		dir := t.TempDir()
		res, err := pipeline.Export(ctx, p, "web-1", providers.ExportOptions{OutputDir: dir, Format: providers.FormatOVA, CleanupOVF: true, JobID: "job-ova"})
		if err != nil {
			t.Fatalf("%v\n%s", err, f.logs)
		}
		archive := filepath.Join(dir, res.OVAPath)
		rep, err := ova.Validate(ctx, archive, ova.ReadOptions{})
		if err != nil || !rep.Verified {
			t.Fatalf("ova validate: %v (verified %v)", err, rep != nil && rep.Verified)
		}
		names := tarNames(t, archive)
		if want := []string{"web-1.ovf", "web-1.mf", "web-1-disk-0.vmdk", "web-1-disk-1.vmdk"}; !slices.Equal(names, want) {
			t.Errorf("OVA members %v, want %v (the .ovf first)", names, want)
		}
		out := t.TempDir()
		if _, err := ova.Extract(ctx, archive, out, ova.ExtractOptions{}); err != nil {
			t.Fatal(err)
		}
		for i, vol := range webVolumes {
			disktest.Compare(t, filepath.Join(out, "web-1-disk-"+string(rune('0'+i))+".vmdk"), "vmdk", f.volumeFile(t, vol), "raw")
		}
		if vm := res.VM; vm.CPUs != 2 || vm.MemoryMiB != 2048 || vm.Firmware != "efi" || len(vm.NICs) != 2 || len(vm.Disks) != 2 {
			t.Errorf("VM metadata %+v", vm)
		}
	})

	t.Run("qcow2", func(t *testing.T) {
		dir := t.TempDir()
		res, err := pipeline.Export(ctx, p, "100", providers.ExportOptions{OutputDir: dir, Format: providers.FormatDisks,
			DiskFormat: providers.DiskQCOW2, JobID: "job-qcow2", ParallelDownloads: 2})
		if err != nil {
			t.Fatalf("%v\n%s", err, f.logs)
		}
		checkManifest(t, dir, res.Manifest)
		for i, vol := range webVolumes {
			img := filepath.Join(dir, "web-1-disk-"+string(rune('0'+i))+".qcow2")
			disktest.Check(t, img, "qcow2")
			disktest.Compare(t, img, "qcow2", f.volumeFile(t, vol), "raw")
			info := disktest.QemuInfo(t, img, "qcow2")
			if want := f.inv.Volume(vol).Size; info.VirtualSize != want {
				t.Errorf("%s: virtual size %d, want %d", img, info.VirtualSize, want)
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 4 {
			t.Errorf("output %v: want two disks, the JSON and the manifest", entries)
		}
	})

	if got := f.commands("vzdump"); len(got) != 2 || got[0] != "vzdump 100 --stdout --mode snapshot --compress zstd" {
		t.Errorf("vzdump commands %q", got)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left on the cluster: %v", left)
	}
	if strings.Contains(f.logs.String(), testSecret) {
		t.Error("the token secret is in the log")
	}
}

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	tr := tar.NewReader(fh)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}
