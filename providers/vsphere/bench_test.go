package vsphere

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

// The export benchmark runs each exporter in a child process (this test
// binary, re-executed) so that its peak RSS is its own, not the
// simulator's that serves the disks.
const benchChildEnv = "HYPERSDK_VSPHERE_BENCH_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(benchChildEnv); mode != "" {
		os.Exit(benchChild(mode))
	}
	os.Exit(m.Run())
}

type benchResult struct {
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	MaxRSSKB int64   `json:"max_rss_kib"`
	Error    string  `json:"error,omitempty"`
}

// benchChild exports one VM and prints a benchResult as JSON.
func benchChild(mode string) int {
	ctx := context.Background()
	vm, out := os.Getenv("BENCH_VM"), os.Getenv("BENCH_OUT")
	cfg := Config{URL: os.Getenv("BENCH_URL"), Username: os.Getenv("BENCH_USER"),
		Password: config.NewSecret(os.Getenv("BENCH_PASSWORD")), Thumbprint: os.Getenv("BENCH_THUMBPRINT")}
	var res benchResult
	start := time.Now()
	var err error
	switch mode {
	case "hypersdk":
		res.Bytes, err = benchHyperSDK(ctx, cfg, vm, out)
	case "sequential":
		res.Bytes, err = benchSequential(ctx, cfg, vm, out)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		res.Error = err.Error()
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	res.MaxRSSKB = ru.Maxrss
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func benchHyperSDK(ctx context.Context, cfg Config, vm, out string) (int64, error) {
	p, err := NewProvider("bench", cfg, PoolConfig{Enabled: true, MaxConnections: 2}, quiet())
	if err != nil {
		return 0, err
	}
	if err := p.Connect(ctx); err != nil {
		return 0, err
	}
	defer p.Disconnect()
	res, err := pipeline.Export(ctx, p, vm, providers.ExportOptions{OutputDir: out, Format: providers.FormatOVF, ParallelDownloads: 3, Logger: quiet()})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range res.Files {
		if f.Kind == "disk" {
			n += f.Size
		}
	}
	return n, nil
}

// benchSequential is what govc export.ovf does: one lease, the files one
// after another over one stream each, with the lease updater running.
func benchSequential(ctx context.Context, cfg Config, vm, out string) (int64, error) {
	u, err := parseEndpoint(cfg.URL)
	if err != nil {
		return 0, err
	}
	c, err := NewDialer(u, cfg.Username, cfg.Password.Reveal(), false, cfg.Thumbprint)(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Logout(context.Background())
	obj, err := find.NewFinder(c.Client).VirtualMachine(ctx, vm)
	if err != nil {
		return 0, err
	}
	lease, err := obj.Export(ctx)
	if err != nil {
		return 0, err
	}
	info, err := lease.Wait(ctx, nil)
	if err != nil {
		return 0, err
	}
	updater := lease.StartUpdater(ctx, info)
	defer updater.Done()
	var n int64
	for _, item := range info.Items {
		path := filepath.Join(out, filepath.Base(item.Path))
		if err := lease.DownloadFile(ctx, path, item, soap.DefaultDownload); err != nil {
			return 0, err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, lease.Complete(ctx)
}

// BenchmarkExportVSphere exports a 2 GiB single-disk VM and a 3 × 700 MiB
// VM over TLS from the simulator, first as govc does (one file after
// another, one stream each, no checksums) and then with HyperSDK (disks in
// parallel, SHA-256 while streaming, fsync, manifest), and reports both
// throughputs, their ratio and each exporter's peak RSS. Disks are stored
// raw (no compression cost in the simulator) on tmpfs.
func BenchmarkExportVSphere(b *testing.B) {
	const gib, mib = 1 << 30, 1 << 20
	shm := os.Getenv("HYPERSDK_BENCH_DIR")
	if shm == "" {
		shm = "/dev/shm"
	}
	dir, err := os.MkdirTemp(shm, "hypersdk-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	disk := func(size int64, seed uint64) vcsim.DiskSpec {
		return vcsim.DiskSpec{Capacity: size, Seed: seed, Format: vcsim.Verbatim}
	}
	sim := startSim(b, vcsim.Options{Dir: filepath.Join(dir, "ds"), VMs: []vcsim.VMSpec{
		{Name: "one-disk", NoNVRAM: true, Disks: []vcsim.DiskSpec{disk(2*gib, 1)}},
		{Name: "three-disks", NoNVRAM: true, Disks: []vcsim.DiskSpec{disk(700*mib, 2), disk(700*mib, 3), disk(700*mib, 4)}},
	}})
	for _, vm := range []string{"one-disk", "three-disks"} {
		b.Run(vm, func(b *testing.B) {
			var seq, ours benchResult
			for range b.N {
				seq = runBenchChild(b, sim, "sequential", vm, dir)
				ours = runBenchChild(b, sim, "hypersdk", vm, dir)
			}
			seqRate := float64(seq.Bytes) / seq.Seconds / mib
			ourRate := float64(ours.Bytes) / ours.Seconds / mib
			b.ReportMetric(seqRate, "sequential_MiB/s")
			b.ReportMetric(ourRate, "hypersdk_MiB/s")
			b.ReportMetric(ourRate/seqRate, "x_sequential")
			b.ReportMetric(float64(ours.MaxRSSKB)/1024, "hypersdk_peak_RSS_MiB")
			b.ReportMetric(float64(seq.MaxRSSKB)/1024, "sequential_peak_RSS_MiB")
		})
	}
}

func runBenchChild(b *testing.B, sim *simEnv, mode, vm, dir string) benchResult {
	b.Helper()
	out, err := os.MkdirTemp(dir, mode+"-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(out)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+mode, "BENCH_VM="+vm, "BENCH_OUT="+out,
		"BENCH_URL="+sim.cfg.URL, "BENCH_USER="+sim.cfg.Username, "BENCH_PASSWORD="+sim.cfg.Password.Reveal(),
		"BENCH_THUMBPRINT="+sim.cfg.Thumbprint)
	raw, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s export: %v", mode, err)
	}
	var res benchResult
	if err := json.Unmarshal(raw, &res); err != nil {
		b.Fatalf("%s export: %v: %s", mode, err, raw)
	}
	if res.Error != "" {
		b.Fatalf("%s export: %s", mode, res.Error)
	}
	return res
}

// BenchmarkListVMs lists 5,000 simulated VMs through the PropertyCollector
// (one container view, only the properties VMInfo needs) and compares it
// with the per-VM approach of a finder plus one property read per VM.
func BenchmarkListVMs(b *testing.B) {
	shm := os.Getenv("HYPERSDK_BENCH_DIR")
	if shm == "" {
		shm = "/dev/shm"
	}
	dir, err := os.MkdirTemp(shm, "hypersdk-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sim := startSim(b, vcsim.Options{Dir: dir, GenericVMs: 5000, Clusters: 2, HostsPerCluster: 4})
	p := sim.provider(b, PoolConfig{Enabled: true, MaxConnections: 2})
	ctx := context.Background()

	// Baseline: what a script over the finder does.
	c, err := sim.NewClient(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Logout(ctx)
	start := time.Now()
	vms, err := find.NewFinder(c.Client).VirtualMachineList(ctx, "/DC0/vm/...")
	if err != nil {
		b.Fatal(err)
	}
	for _, vm := range vms {
		var m mo.VirtualMachine
		if err := vm.Properties(ctx, vm.Reference(), vmProperties, &m); err != nil {
			b.Fatal(err)
		}
	}
	perVM := time.Since(start)
	_ = object.VirtualMachine{}

	b.ResetTimer()
	start = time.Now()
	var n int
	for range b.N {
		list, err := p.ListVMs(ctx, providers.VMFilter{})
		if err != nil {
			b.Fatal(err)
		}
		n = len(list)
	}
	ours := time.Since(start) / time.Duration(b.N)
	if n < 5000 {
		b.Fatalf("listed %d VMs", n)
	}
	b.ReportMetric(float64(n), "vms")
	b.ReportMetric(ours.Seconds()*1000, "ms/list")
	b.ReportMetric(perVM.Seconds()*1000, "per_vm_baseline_ms")
	b.ReportMetric(perVM.Seconds()/ours.Seconds(), "x_faster")
}
