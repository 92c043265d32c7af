package proxmox

import (
	"archive/tar"
	"context"
	"errors"
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

// exportRaw exports vm as raw disks with cfg's method and checks each
// disk against its volume byte for byte, and the manifest.
func exportRaw(t *testing.T, f *fixture, p *Provider, vm, job string, volumes []string) *providers.ExportResult {
	t.Helper()
	dir := t.TempDir()
	res, err := pipeline.Export(context.Background(), p, vm, providers.ExportOptions{OutputDir: dir, Format: providers.FormatDisks,
		DiskFormat: providers.DiskRaw, JobID: job, ParallelDownloads: 2})
	if err != nil {
		t.Fatalf("%v\n%s", err, f.logs)
	}
	checkManifest(t, dir, res.Manifest)
	var disks []providers.ExportedFile
	for _, file := range res.Files {
		if file.Kind == "disk" {
			disks = append(disks, file)
		}
	}
	if len(disks) != len(volumes) {
		t.Fatalf("%d disks exported, want %d", len(disks), len(volumes))
	}
	for i, vol := range volumes {
		want := f.volumeFile(t, vol)
		if got, w := disktest.FileSHA256(t, filepath.Join(dir, disks[i].Path)), disktest.FileSHA256(t, want); got != w || disks[i].SHA256 != w {
			t.Errorf("%s: SHA-256 %s (result %s), volume %s", disks[i].Path, got, disks[i].SHA256, w)
		}
	}
	return res
}

// pvesm: a running VM's disks are exported one by one from a temporary
// snapshot named after the job, removed afterwards; a stopped VM's from
// its volumes, without a snapshot.
func TestPvesmExportsFromATemporarySnapshot(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	cfg := f.config()
	cfg.ExportMethod = MethodPvesm
	p := f.provider(t, cfg)
	exportRaw(t, f, p, "web-1", "job-pvesm", webVolumes)
	snap := snapshotName("job-pvesm")
	want := []string{
		"qm delsnapshot 100 " + snap, // an earlier attempt's, if any
		"qm snapshot 100 " + snap + " --description hypersdk-job=job-pvesm",
		"qm delsnapshot 100 " + snap,
	}
	if got := f.commands("qm "); !slices.Equal(got, want) {
		t.Errorf("qm commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	exports := f.commands("pvesm ")
	slices.Sort(exports)
	if len(exports) != 2 || exports[0] != "pvesm export local-lvm:vm-100-disk-0 raw+size - --snapshot "+snap {
		t.Errorf("pvesm commands %q", exports)
	}
	exportRaw(t, f, p, "db-1", "job-pvesm-stopped", []string{"local-lvm:vm-101-disk-0"})
	if got := f.commands("pvesm export local-lvm:vm-101"); !slices.Equal(got, []string{"pvesm export local-lvm:vm-101-disk-0 raw+size -"}) {
		t.Errorf("stopped VM: %q", got)
	}
	if n := len(f.commands("qm snapshot")); n != 1 {
		t.Errorf("%d snapshots taken, the stopped VM needs none", n)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left on the cluster: %v", left)
	}
}

// api: the backup runs as a PVE task into the storage (remove=0, the
// notes naming the job), the archive is fetched over SFTP and deleted.
func TestAPIMethodDumpsFetchesAndDeletes(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	cfg := f.config()
	cfg.ExportMethod = MethodAPI
	p := f.provider(t, cfg)
	exportRaw(t, f, p, "web-1", "job-api", webVolumes)
	var dumps []pvefake.Request
	for _, r := range f.srv.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/vzdump") {
			dumps = append(dumps, r)
		}
	}
	if len(dumps) != 1 {
		t.Fatalf("%d vzdump calls", len(dumps))
	}
	q := dumps[0].Params
	if dumps[0].Path != "/nodes/pve1/vzdump" || q.Get("remove") != "0" || q.Get("storage") != "local" || q.Get("vmid") != "100" ||
		q.Get("notes-template") != "hypersdk-job=job-api" || q.Get("mode") != "snapshot" || q.Get("compress") != "zstd" {
		t.Errorf("vzdump call %s %v", dumps[0].Path, q)
	}
	if len(f.commands("vzdump")) != 0 {
		t.Error("the api method ran vzdump over SSH")
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left on the cluster: %v", left)
	}
}

// A disk excluded from backups (backup=0) is not in vzdump's archive: the
// vzdump and api methods refuse the VM rather than export it without
// that disk; pvesm exports every disk.
func TestExcludedDiskRefusedByVzdumpExportedByPvesm(t *testing.T) {
	f := newFixture(t, pvefake.SampleOptions{})
	if err := f.st.Update(func(inv *pvefake.Inventory) error {
		vm := inv.VM(100)
		vm.Config["virtio1"] += ",backup=0"
		vm.Status = "stopped"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{MethodVzdump, MethodAPI} {
		cfg := f.config()
		cfg.ExportMethod = method
		p := f.provider(t, cfg)
		_, err := pipeline.Export(context.Background(), p, "web-1", providers.ExportOptions{OutputDir: t.TempDir(), JobID: "job-excluded"})
		if !errors.Is(err, providers.ErrUnsupported) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "backup=0: virtio1") {
			t.Errorf("%s: %v", method, err)
		}
	}
	if n := len(f.commands("vzdump")); n != 0 {
		t.Errorf("vzdump ran %d times for a refused VM", n)
	}
	cfg := f.config()
	cfg.ExportMethod = MethodPvesm
	exportRaw(t, f, f.provider(t, cfg), "web-1", "job-excluded-pvesm", webVolumes)
}
