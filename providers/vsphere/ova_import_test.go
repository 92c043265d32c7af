package vsphere

import (
	"cmp"
	"context"
	"crypto/sha1" //nolint:gosec // the NFC lease manifest reports SHA-1
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/ovf/importer"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

// importedDisk is what an import must reproduce of a disk.
type importedDisk struct {
	capacity   int64
	controller string // device type of the controller, e.g. "pvscsi"
}

// vmShape reads what a VM's disks, CPUs and memory are.
func vmShape(t *testing.T, ctx context.Context, c *vim25.Client, ref types.ManagedObjectReference) (name string, cpus int32, memMB int32, disks []importedDisk) {
	t.Helper()
	var vm mo.VirtualMachine
	if err := object.NewVirtualMachine(c, ref).Properties(ctx, ref, []string{"name", "config.hardware"}, &vm); err != nil {
		t.Fatal(err)
	}
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
		disk := d.(*types.VirtualDisk)
		capacity := max(disk.CapacityInBytes, disk.CapacityInKB*1024)
		ctrl := devices.FindByKey(disk.ControllerKey)
		if ctrl == nil {
			t.Fatalf("%s: disk %d has no controller", vm.Name, disk.Key)
		}
		disks = append(disks, importedDisk{capacity: capacity, controller: devices.Type(ctrl)})
	}
	slices.SortFunc(disks, func(a, b importedDisk) int {
		return cmp.Or(cmp.Compare(a.capacity, b.capacity), strings.Compare(a.controller, b.controller))
	})
	return vm.Name, vm.Config.Hardware.NumCPU, vm.Config.Hardware.MemoryMB, disks
}

func hashFile(t *testing.T, path string) (sha1Hex, sha256Hex string, size int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h1, h256 := sha1.New(), sha256.New() //nolint:gosec // compared with the lease manifest
	n, err := io.Copy(io.MultiWriter(h1, h256), f)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h1.Sum(nil)), hex.EncodeToString(h256.Sum(nil)), n
}

// newImporter sets up govmomi's ovf/importer as `govc import.ova` does
// (cli/importx/ova.go): a TapeArchive over the .ova, the default
// datacenter, datastore, resource pool and VM folder.
func newImporter(t *testing.T, ctx context.Context, c *vim25.Client, ovaPath string) *importer.Importer {
	t.Helper()
	finder := find.NewFinder(c, true)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	finder.SetDatacenter(dc)
	ds, err := finder.DefaultDatastore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := finder.DefaultResourcePool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	archive := &importer.TapeArchive{Path: ovaPath}
	archive.Client = c
	return &importer.Importer{
		Log:    func(s string) (int, error) { t.Log(strings.TrimSpace(s)); return len(s), nil },
		Client: c, Finder: finder, Datacenter: dc, Datastore: ds, ResourcePool: pool, Folder: folders.VmFolder,
		Archive: archive,
	}
}

// An OVA exported by the provider from the demo inventory (what
// "hypervisord --demo" serves) is what vSphere tooling imports: plain tar
// lists the descriptor first and unpacks it, sha256sum accepts its
// manifest, and the simulator's import path (OvfManager.CreateImportSpec,
// ResourcePool.ImportVApp, an upload of each disk to the lease, lease
// complete — govmomi's ovf/importer, which `govc import.ova` runs) creates
// a VM with the same disks, controllers, CPUs and memory. The lease's own
// manifest proves the server received every disk byte for byte.
func TestOVAImportsBackIntoVSphere(t *testing.T) {
	for _, tool := range []string{"tar", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install the Debian packages tar and coreutils", tool)
		}
	}
	ctx := context.Background()
	sim := startSim(t, vcsim.DemoSpec())
	p := sim.provider(t, PoolConfig{})
	c, err := sim.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(context.Background())
	for _, tc := range []struct {
		vm       string
		snapshot bool
	}{
		{vm: "db-01"},                  // two disks on one pvscsi controller, EFI
		{vm: "app-win-01"},             // LSI Logic SAS
		{vm: "web-01", snapshot: true}, // powered on: exported from a snapshot
	} {
		t.Run(tc.vm, func(t *testing.T) {
			dir := t.TempDir()
			res, err := pipeline.Export(ctx, p, tc.vm, providers.ExportOptions{OutputDir: dir, Format: providers.FormatOVA,
				CleanupOVF: true, Snapshot: tc.snapshot})
			if err != nil {
				t.Fatal(err)
			}
			importOVA(t, ctx, sim, c.Client, tc.vm, filepath.Join(dir, res.OVAPath), tc.vm == "db-01")
		})
	}
	vms, err := find.NewFinder(c.Client, true).VirtualMachineList(ctx, "/DC0/vm/*-imported")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, vm := range vms {
		names = append(names, vm.Name())
	}
	slices.Sort(names)
	if fmt.Sprint(names) != "[app-win-01-imported db-01-copy-imported db-01-imported web-01-imported]" {
		t.Errorf("VMs after import: %v", names)
	}
}

// importOVA checks the OVA of vmName with standard tools and imports it.
func importOVA(t *testing.T, ctx context.Context, sim *simEnv, c *vim25.Client, vmName, ovaPath string, alsoInOneCall bool) {
	t.Helper()
	src, _ := sim.VM(vmName)
	descName := vmName + ".ovf"

	// Standard tools: the descriptor first, then unpack and check.
	out, err := exec.Command("tar", "-tf", ovaPath).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tf: %v\n%s", err, out)
	}
	members := strings.Fields(string(out))
	if len(members) == 0 || members[0] != descName {
		t.Fatalf("tar -tf %s: %v, want %s first", ovaPath, members, descName)
	}
	unpacked := t.TempDir()
	if out, err := exec.Command("tar", "-xf", ovaPath, "-C", unpacked).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf: %v\n%s", err, out)
	}
	check := exec.Command("sha256sum", "--strict", "-c", vmName+".mf")
	check.Dir = unpacked
	if out, err := check.CombinedOutput(); err != nil || strings.Count(string(out), ": OK") != len(members)-1 {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	// The disks in the archive are the bytes vCenter served.
	sha1Of := map[string]string{} // member → SHA-1
	sizeOf := map[string]int64{}
	var got256 []string
	for _, m := range members {
		s1, s256, n := hashFile(t, filepath.Join(unpacked, m))
		sha1Of[m], sizeOf[m] = s1, n
		if strings.HasSuffix(m, ".vmdk") {
			got256 = append(got256, s256)
		}
	}
	var want256 []string
	for _, d := range src.Disks {
		want256 = append(want256, d.SHA256)
	}
	slices.Sort(got256)
	slices.Sort(want256)
	if !slices.Equal(got256, want256) {
		t.Fatalf("disks in the OVA %v, served by vCenter %v", got256, want256)
	}

	_, srcCPUs, srcMem, srcDisks := vmShape(t, ctx, c, src.Ref)
	if len(srcDisks) != len(src.Disks) {
		t.Fatalf("source VM: disks %+v", srcDisks)
	}
	wantShape := func(name string, ref types.ManagedObjectReference) {
		t.Helper()
		gotName, cpus, mem, disks := vmShape(t, ctx, c, ref)
		t.Logf("imported %s: %d CPUs, %d MB, disks %+v", gotName, cpus, mem, disks)
		if gotName != name || cpus != srcCPUs || mem != srcMem || !slices.Equal(disks, srcDisks) {
			t.Errorf("imported VM %q: %d CPUs, %d MB, disks %+v; want %q: %d CPUs, %d MB, disks %+v",
				gotName, cpus, mem, disks, name, srcCPUs, srcMem, srcDisks)
		}
	}

	// Step by step, as Importer.Import does it, to read the lease's
	// manifest of what was uploaded before completing the lease.
	imp := newImporter(t, ctx, c, ovaPath)
	name := vmName + "-imported"
	info, lease, err := imp.ImportVApp(ctx, "*.ovf", importer.Options{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	updater := lease.StartUpdater(ctx, info)
	if len(info.Items) != len(src.Disks) {
		t.Fatalf("import lease wants %d files, the VM has %d disks", len(info.Items), len(src.Disks))
	}
	for _, item := range info.Items {
		if err := imp.Upload(ctx, lease, item); err != nil {
			t.Fatalf("upload %s: %v", item.Path, err)
		}
	}
	updater.Done()
	manifest, err := lease.GetManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keyOf := map[string]string{} // import key → device key
	for _, u := range info.DeviceUrl {
		keyOf[u.ImportKey] = u.Key
	}
	for _, item := range info.Items {
		i := slices.IndexFunc(manifest, func(e types.HttpNfcLeaseManifestEntry) bool { return e.Key == keyOf[item.DeviceId] })
		if i < 0 {
			t.Errorf("%s (%s): not in the lease manifest %+v", item.Path, item.DeviceId, manifest)
			continue
		}
		if e := manifest[i]; e.Sha1 != sha1Of[item.Path] || e.Size != sizeOf[item.Path] {
			t.Errorf("%s: the server received %d bytes with SHA-1 %s; the OVA holds %d bytes with SHA-1 %s",
				item.Path, e.Size, e.Sha1, sizeOf[item.Path], sha1Of[item.Path])
		}
	}
	if err := lease.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	wantShape(name, info.Entity)

	if alsoInOneCall {
		// Exactly what `govc import.ova -name <name> FILE` runs.
		name = vmName + "-copy-imported"
		ref, err := newImporter(t, ctx, c, ovaPath).Import(ctx, "*.ovf", importer.Options{Name: &name})
		if err != nil {
			t.Fatal(err)
		}
		wantShape(name, *ref)
	}
}
