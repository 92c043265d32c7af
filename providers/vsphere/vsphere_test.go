package vsphere

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

const mib = 1 << 20

// testSpec is a small inventory with real disk bytes: a powered-off VM
// with two disks, a powered-on one and a larger one for cancellation.
func testSpec() vcsim.Options {
	return vcsim.Options{
		VMs: []vcsim.VMSpec{
			{Name: "db-01", Folder: "prod/db", GuestID: "rhel9_64Guest", CPUs: 4, MemoryMB: 8192, Disks: []vcsim.DiskSpec{
				{Capacity: 64 * mib, Seed: 1, Used: 6 * mib},
				{Capacity: 32 * mib, Seed: 2, Used: 4 * mib, Controller: "lsilogic"},
			}},
			{Name: "web-01", Folder: "prod/web", PowerState: types.VirtualMachinePowerStatePoweredOn, Disks: []vcsim.DiskSpec{
				{Capacity: 32 * mib, Seed: 3, Used: 3 * mib},
			}},
			{Name: "big-01", Folder: "prod", Disks: []vcsim.DiskSpec{
				{Capacity: 64 * mib, Seed: 4, Used: 16 * mib},
			}},
		},
	}
}

type simEnv struct {
	*vcsim.Env
	cfg Config
}

func startSim(t testing.TB, opts vcsim.Options) *simEnv {
	t.Helper()
	env, err := vcsim.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return &simEnv{Env: env, cfg: Config{
		URL: env.URL().String(), Username: env.Username(), Password: config.NewSecret(env.Password()),
		Thumbprint: env.Thumbprint(),
	}}
}

func (s *simEnv) provider(t testing.TB, pool PoolConfig) *Provider {
	t.Helper()
	if pool.MaxConnections == 0 {
		pool = PoolConfig{Enabled: true, MaxConnections: 4}
	}
	p, err := NewProvider("vc-test", s.cfg, pool, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Disconnect() })
	return p
}

func TestConformance(t *testing.T) {
	sim := startSim(t, testSpec())
	providertest.Run(t, providertest.Target{
		New: func(t *testing.T) providers.Provider {
			p, err := NewProvider("vc-test", sim.cfg, PoolConfig{Enabled: true, MaxConnections: 4}, quiet())
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		ExportVM: "/DC0/vm/prod/db/db-01",
		SlowVM:   "big-01",
		BeforeCancel: func(*testing.T) {
			sim.SetNFCBehavior(vcsim.NFCBehavior{HoldAfter: 2 * mib})
		},
		AfterCancel: func(*testing.T) { sim.SetNFCBehavior(vcsim.NFCBehavior{}) },
		SourceDigests: func(t *testing.T) map[string]string {
			vm, _ := sim.VM("db-01")
			out := map[string]string{}
			for _, d := range vm.Disks {
				out["db-01-"+d.TargetID] = d.SHA256
			}
			return out
		},
		RawDigests: func(t *testing.T) map[string]string {
			vm, _ := sim.VM("db-01")
			out := map[string]string{}
			for _, d := range vm.Disks {
				out["db-01-"+strings.TrimSuffix(d.TargetID, ".vmdk")+".raw"] = d.RawSHA256
			}
			return out
		},
		// Asked of the simulated vCenter: no lease still open, no
		// temporary snapshot on any VM.
		Leftovers: func(t *testing.T) []string {
			var left []string
			for _, l := range sim.Leases() {
				if l.Outcome == vcsim.LeaseActive {
					left = append(left, "active export lease of "+l.VM)
				}
			}
			for _, vm := range sim.VMs() {
				snaps, err := sim.Snapshots(vm.Name)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range snaps {
					left = append(left, "snapshot "+s.Name+" of "+vm.Name)
				}
			}
			return left
		},
	})
}

// Export of a two-disk VM: descriptor, manifest and disks; every disk's
// SHA-256 matches the manifest and the bytes vCenter serves; qemu-img reads
// each as a streamOptimized VMDK; the lease was completed with progress.
func TestExportMatchesSourceAndManifest(t *testing.T) {
	sim := startSim(t, testSpec())
	p := sim.provider(t, PoolConfig{})
	dir := t.TempDir()
	res, err := pipeline.Export(context.Background(), p, "db-01", providers.ExportOptions{OutputDir: dir, Format: providers.FormatOVF, ParallelDownloads: 3})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := sim.VM("db-01")
	byName := map[string]providers.ExportedFile{}
	for _, f := range res.Files {
		byName[f.Path] = f
	}
	for _, d := range src.Disks {
		f, ok := byName["db-01-"+d.TargetID]
		if !ok {
			t.Fatalf("disk %s not exported: %+v", d.TargetID, res.Files)
		}
		if f.SHA256 != d.SHA256 || f.Size != d.Size {
			t.Errorf("%s: exported %d bytes %s, vCenter serves %d bytes %s", f.Path, f.Size, f.SHA256, d.Size, d.SHA256)
		}
		qemuImgSaysStreamOptimized(t, filepath.Join(dir, f.Path), d.Capacity)
	}
	if src.NVRAM != nil {
		if f, ok := byName["db-01-"+src.NVRAM.TargetID]; !ok || f.Kind != "nvram" || f.SHA256 != src.NVRAM.SHA256 {
			t.Errorf("NVRAM not exported intact: %+v", f)
		}
	}
	// Standard tools verify the manifest.
	cmd := exec.Command("sha256sum", "-c", res.Manifest)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c %s: %v\n%s", res.Manifest, err, out)
	}
	desc, _ := os.ReadFile(filepath.Join(dir, "db-01.ovf"))
	for _, d := range src.Disks {
		if !strings.Contains(string(desc), `ovf:href="db-01-`+d.TargetID+`"`) {
			t.Errorf("descriptor does not reference db-01-%s", d.TargetID)
		}
	}
	leases := sim.Leases()
	if len(leases) != 1 || leases[0].Outcome != vcsim.LeaseCompleted {
		t.Fatalf("leases %+v", leases)
	}
}

func qemuImgSaysStreamOptimized(t *testing.T, path string, capacity int64) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not found: install the Debian package qemu-utils (make test-deps does)")
	}
	out, err := exec.Command("qemu-img", "info", "--output=json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v\n%s", path, err, out)
	}
	s := string(out)
	if !strings.Contains(s, `"format": "vmdk"`) || !strings.Contains(s, `"create-type": "streamOptimized"`) || !strings.Contains(s, `"virtual-size": `+strconv.FormatInt(capacity, 10)) {
		t.Errorf("qemu-img info %s:\n%s", path, s)
	}
}

// A connection dropped halfway through a disk resumes with a Range request
// and the result is byte-identical; only a small fraction is fetched twice.
func TestInterruptedDownloadResumes(t *testing.T) {
	sim := startSim(t, testSpec())
	big, _ := sim.VM("big-01")
	size := big.Disks[0].Size
	sim.SetNFCBehavior(vcsim.NFCBehavior{Ranges: true, DropAfter: size / 2, DropFirst: 1})
	p := sim.provider(t, PoolConfig{})
	dir := t.TempDir()
	res, err := pipeline.Export(context.Background(), p, "big-01", providers.ExportOptions{OutputDir: dir, Format: providers.FormatOVF})
	if err != nil {
		t.Fatal(err)
	}
	var served int64
	var dropped, ranged int
	for _, r := range sim.NFCRequests() {
		if r.File != big.Disks[0].TargetID {
			continue
		}
		served += r.Bytes
		if r.Dropped {
			dropped++
		}
		if r.Range != "" && r.Status == 206 {
			ranged++
		}
	}
	if dropped != 1 || ranged != 1 {
		t.Fatalf("expected one dropped and one ranged request, got %d and %d", dropped, ranged)
	}
	if extra := served - size; extra < 0 || float64(extra) > 0.02*float64(size) {
		t.Errorf("served %d bytes for a %d-byte disk: %d re-downloaded", served, size, extra)
	}
	for _, f := range res.Files {
		if f.Path == "big-01-"+big.Disks[0].TargetID && f.SHA256 != big.Disks[0].SHA256 {
			t.Errorf("resumed disk differs from the source")
		}
	}
}

// NFC as vSphere serves it ignores Range: an interrupted disk restarts
// cleanly from zero and is still byte-identical.
func TestInterruptedNFCStreamRestarts(t *testing.T) {
	sim := startSim(t, testSpec())
	big, _ := sim.VM("big-01")
	sim.SetNFCBehavior(vcsim.NFCBehavior{DropAfter: big.Disks[0].Size / 3, DropFirst: 1})
	p := sim.provider(t, PoolConfig{})
	res, err := pipeline.Export(context.Background(), p, "big-01", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Files {
		if f.Path == "big-01-"+big.Disks[0].TargetID && f.SHA256 != big.Disks[0].SHA256 {
			t.Errorf("restarted disk differs from the source")
		}
	}
}

// Cancelling mid-download aborts the lease and leaves no files.
func TestCancelAbortsLeaseAndRemovesFiles(t *testing.T) {
	sim := startSim(t, testSpec())
	sim.SetNFCBehavior(vcsim.NFCBehavior{HoldAfter: mib})
	p := sim.provider(t, PoolConfig{})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := pipeline.Export(ctx, p, "db-01", providers.ExportOptions{OutputDir: dir, Format: providers.FormatOVF, ParallelDownloads: 3})
		errc <- err
	}()
	if err := sim.WaitNFCHeld(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: %v", err)
	}
	leases := sim.Leases()
	if len(leases) != 1 || leases[0].Outcome != vcsim.LeaseAborted {
		t.Fatalf("lease not aborted: %+v", leases)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files left behind: %v", entries)
	}
}

// A powered-on VM is refused unless snapshot or power_off is chosen.
func TestPoweredOnVMNeedsAChoice(t *testing.T) {
	sim := startSim(t, testSpec())
	p := sim.provider(t, PoolConfig{})
	_, err := pipeline.Export(context.Background(), p, "web-01", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF})
	if !errors.Is(err, providers.ErrInvalidArgument) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("powered-on export without a choice: %v", err)
	}
	if len(sim.Leases()) != 0 {
		t.Error("a lease was opened")
	}
}

// A snapshot export of a running VM succeeds and removes its snapshot; the
// VM stays powered on.
func TestSnapshotExportRemovesSnapshot(t *testing.T) {
	sim := startSim(t, testSpec())
	p := sim.provider(t, PoolConfig{})
	res, err := pipeline.Export(context.Background(), p, "web-01", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, Snapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := sim.VM("web-01")
	if res.Files[1].SHA256 != src.Disks[0].SHA256 {
		t.Errorf("snapshot export differs from the disk")
	}
	snaps, err := sim.Snapshots("web-01")
	if err != nil || len(snaps) != 0 {
		t.Fatalf("snapshots left: %v %v", snaps, err)
	}
	leases := sim.Leases()
	if len(leases) != 1 || leases[0].Snapshot == nil || leases[0].Outcome != vcsim.LeaseCompleted {
		t.Fatalf("leases %+v", leases)
	}
	vm, _ := p.GetVM(context.Background(), "web-01")
	if vm.PowerState != providers.PowerOn {
		t.Errorf("VM is %s after a snapshot export", vm.PowerState)
	}
}

// A snapshot export whose lease fails leaves no snapshot behind.
func TestFailedSnapshotExportLeavesNoSnapshot(t *testing.T) {
	sim := startSim(t, testSpec())
	sim.AddFault(vcsim.FaultRule{Method: "ExportSnapshot", LeaseError: true, Fault: &types.FileNotFound{}})
	p := sim.provider(t, PoolConfig{})
	_, err := pipeline.Export(context.Background(), p, "web-01", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, Snapshot: true})
	if err == nil {
		t.Fatal("export with a failing lease succeeded")
	}
	if snaps, _ := sim.Snapshots("web-01"); len(snaps) != 0 {
		t.Fatalf("snapshots left after a failed export: %v", snaps)
	}
}

func TestPowerOffExport(t *testing.T) {
	sim := startSim(t, testSpec())
	p := sim.provider(t, PoolConfig{})
	if _, err := pipeline.Export(context.Background(), p, "web-01", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF,
		PowerOff: true, PowerOffTimeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	vm, _ := p.GetVM(context.Background(), "web-01")
	if vm.PowerState != providers.PowerOff {
		t.Errorf("VM is %s after a power_off export", vm.PowerState)
	}
}

func TestDiscovery(t *testing.T) {
	sim := startSim(t, testSpec())
	p := sim.provider(t, PoolConfig{})
	ctx := context.Background()
	vm, err := p.GetVM(ctx, "db-01")
	if err != nil {
		t.Fatal(err)
	}
	src, _ := sim.VM("db-01")
	if vm.Path != "/DC0/vm/prod/db/db-01" || vm.CPUs != 4 || vm.MemoryMiB != 8192 || vm.GuestOS != "rhel9_64Guest" ||
		len(vm.Disks) != 2 || vm.Disks[0].CapacityBytes != 64*mib || vm.Disks[0].Provisioning != "thin" || vm.Disks[0].Path == "" ||
		vm.UUID != src.UUID || vm.InstanceUUID != src.InstanceUUID || vm.Datacenter != "DC0" {
		t.Fatalf("VMInfo %+v", vm)
	}
	if vm.Disks[1].Controller == "" || len(vm.NICs) == 0 {
		t.Errorf("controllers/NICs missing: %+v %+v", vm.Disks, vm.NICs)
	}
	for _, id := range []string{vm.ID, vm.Path, vm.UUID, vm.InstanceUUID} {
		got, err := p.GetVM(ctx, id)
		if err != nil || got.ID != vm.ID {
			t.Errorf("GetVM(%q) = %v, %v", id, got, err)
		}
	}
	list, err := p.ListVMs(ctx, providers.VMFilter{FolderPrefix: "/DC0/vm/prod/db"})
	if err != nil || len(list) != 1 || list[0].Name != "db-01" {
		t.Fatalf("folder filter: %v %v", list, err)
	}
	on, _ := p.ListVMs(ctx, providers.VMFilter{PowerState: providers.PowerOn, Name: "*-01"})
	for _, v := range on {
		if v.PowerState != providers.PowerOn {
			t.Errorf("power filter returned %s", v.Name)
		}
	}
	if _, err := p.ListVMs(ctx, providers.VMFilter{Name: "[bad"}); !errors.Is(err, providers.ErrInvalidArgument) {
		t.Errorf("bad glob: %v", err)
	}
	if _, err := p.GetVM(ctx, "/DC0/vm/nowhere/x"); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("missing path: %v", err)
	}
}

// The pool re-establishes sessions that vCenter dropped, transparently.
func TestDiscoverySurvivesSessionExpiry(t *testing.T) {
	sim := startSim(t, testSpec())
	p := sim.provider(t, PoolConfig{Enabled: true, MaxConnections: 2})
	ctx := context.Background()
	if _, err := p.ListVMs(ctx, providers.VMFilter{}); err != nil {
		t.Fatal(err)
	}
	if n := sim.ExpireSessions(ctx); n == 0 {
		t.Fatal("no session expired")
	}
	vms, err := p.ListVMs(ctx, providers.VMFilter{})
	if err != nil || len(vms) < 3 {
		t.Fatalf("after expiry: %d VMs, %v", len(vms), err)
	}
	if p.PoolStats().Reconnects == 0 {
		t.Error("no reconnect counted")
	}
}

// Concurrent exports share the pool without exceeding it.
func TestConcurrentExportsShareThePool(t *testing.T) {
	sim := startSim(t, testSpec())
	p := sim.provider(t, PoolConfig{Enabled: true, MaxConnections: 2})
	var wg sync.WaitGroup
	for _, vm := range []string{"db-01", "big-01", "web-01"} {
		wg.Go(func() {
			if _, err := pipeline.Export(context.Background(), p, vm, providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, Snapshot: true}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := p.PoolStats(); st.Created > 2 || st.InUse != 0 {
		t.Errorf("pool stats %+v", st)
	}
}

// An OVA export is one archive whose first member is the descriptor;
// compressed ones are standard gzip/zstd streams of the same archive.
func TestOVAExport(t *testing.T) {
	sim := startSim(t, testSpec())
	p := sim.provider(t, PoolConfig{})
	for _, tc := range []struct {
		compress    bool
		compression string
		file        string
		tarFlag     string
	}{
		{false, "", "db-01.ova", ""},
		{true, "gzip", "db-01.ova.gz", "-z"},
		{true, "zstd", "db-01.ova.zst", "--zstd"},
	} {
		dir := t.TempDir()
		res, err := pipeline.Export(context.Background(), p, "db-01", providers.ExportOptions{OutputDir: dir, Format: providers.FormatOVA,
			Compress: tc.compress, Compression: tc.compression, CleanupOVF: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.OVAPath != tc.file || len(res.Files) != 1 || res.Files[0].Kind != "ova" || res.Packaging == nil || res.Packaging.Ratio <= 0 {
			t.Fatalf("result %+v", res)
		}
		if len(res.Members) < 4 || res.Members[0].Path != "db-01.ovf" {
			t.Fatalf("members %+v", res.Members)
		}
		src, _ := sim.VM("db-01")
		for _, m := range res.Members {
			for _, d := range src.Disks {
				if m.Path == "db-01-"+d.TargetID && m.SHA256 != d.SHA256 {
					t.Errorf("member %s digest %s, source %s", m.Path, m.SHA256, d.SHA256)
				}
			}
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("cleanup_ovf left %d files", len(entries))
		}
		args := []string{"-tf", filepath.Join(dir, tc.file)}
		if tc.tarFlag != "" {
			args = append([]string{tc.tarFlag}, args...)
		}
		out, err := exec.Command("tar", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tar %v: %v\n%s", args, err, out)
		}
		names := strings.Fields(string(out))
		if len(names) < 4 || names[0] != "db-01.ovf" || names[1] != "db-01.mf" {
			t.Errorf("%s members %v: descriptor then manifest first", tc.file, names)
		}
	}
}
