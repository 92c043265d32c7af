package vsphere

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"

	"github.com/hypersdk/hypersdk/internal/benchcmd"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

// BenchmarkExportVsGovc is the export speed anchor: the real hyperctl and
// the real govc 0.56.0, each a separate process, export the same VMs from
// the simulated vCenter in this process (NFC over TLS serving real disk
// bytes), alternating, HYPERSDK_BENCH_REPS times each (default 3), and the
// medians are compared:
//
//   - govc-sha256: `govc export.ovf -sha 256` (hashes and writes a
//     manifest, as hyperctl does), then `sync`;
//   - govc: plain `govc export.ovf`, as most users run it: no hash, and its
//     bytes never reach the disk by itself; timed alone and with `sync`;
//   - hyperctl: `hyperctl export --local --format ovf` (hash while
//     streaming, fsync, manifest), then `sync`;
//   - curl: the ceiling, `curl` of the same NFC URLs (from a lease this
//     benchmark opens) to /dev/null, all disks in parallel;
//   - hyperctl-base: another hyperctl build from HYPERSDK_BENCH_HYPERCTL_BASE,
//     when set, run like hyperctl: before and after of a change, measured
//     in the same alternating run, as the only comparison noise spares.
//
// Ratios above 1 mean hyperctl finished first. Both govc and hyperctl are
// given the vCenter through govc's environment (GOVC_URL, GOVC_USERNAME,
// GOVC_PASSWORD, GOVC_INSECURE), never on the command line.
//
// govc comes from HYPERSDK_GOVC (make bench builds it with
// ../shared/tools/build-govc.sh); hyperctl is built by the benchmark (or
// taken from HYPERSDK_BENCH_HYPERCTL, to measure another version). The
// simulator's datastore lives in HYPERSDK_BENCH_DIR (default /dev/shm),
// exports go to HYPERSDK_BENCH_OUT (default the same; point it at a real
// disk to see the cost of reaching it). About 3 GiB of datastore plus one
// export's worth of output are needed.
func BenchmarkExportVsGovc(b *testing.B) {
	govc := os.Getenv("HYPERSDK_GOVC")
	if govc == "" {
		b.Fatal("HYPERSDK_GOVC is not set: run `make bench`, which builds govc 0.56.0 with ../shared/tools/build-govc.sh, or set it to a govc 0.56.0 binary")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		b.Fatalf("curl is needed for the ceiling measurement: %v", err)
	}
	reps := 3
	if v, err := strconv.Atoi(os.Getenv("HYPERSDK_BENCH_REPS")); err == nil && v > 0 {
		reps = v
	}
	dir := benchcmd.Dir(b)
	outRoot := os.Getenv("HYPERSDK_BENCH_OUT")
	if outRoot == "" {
		outRoot = dir
	}
	outRoot, err := os.MkdirTemp(outRoot, "hypersdk-bench-out-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(outRoot)
	hyperctl := benchcmd.Hyperctl(b, dir)

	const gib, mib = 1 << 30, 1 << 20
	disk := func(size int64, seed uint64) vcsim.DiskSpec {
		return vcsim.DiskSpec{Capacity: size, Seed: seed, Format: vcsim.Verbatim}
	}
	sim := startSim(b, vcsim.Options{Dir: filepath.Join(dir, "ds"), VMs: []vcsim.VMSpec{
		{Name: "one-disk", NoNVRAM: true, Disks: []vcsim.DiskSpec{disk(gib, 1)}},
		{Name: "three-disks", NoNVRAM: true, Disks: []vcsim.DiskSpec{disk(700*mib, 2), disk(700*mib, 3), disk(700*mib, 4)}},
	}})
	env := append(os.Environ(), "GOVC_URL="+sim.URL().String(), "GOVC_USERNAME="+sim.Username(),
		"GOVC_PASSWORD="+sim.Password(), "GOVC_INSECURE=1")

	for _, name := range []string{"one-disk", "three-disks"} {
		vm, ok := sim.VM(name)
		if !ok {
			b.Fatalf("simulator has no VM %s", name)
		}
		var want []string // SHA-256 of each disk as served
		var size int64
		for _, d := range vm.Disks {
			want = append(want, d.SHA256)
			size += d.Size
		}
		hyperctlTool := func(name, bin string) benchTool {
			return benchTool{name: name, sync: true, check: want, cmd: func(out string) *exec.Cmd {
				return exec.Command(bin, "export", "--local", "--vm", vm.InventoryPath, "--output", out,
					"--format", "ovf", "--compress=false")
			}}
		}
		tools := []benchTool{
			{name: "govc-sha256", sync: true, check: want, cmd: func(out string) *exec.Cmd {
				return exec.Command(govc, "export.ovf", "-vm", vm.InventoryPath, "-sha", "256", out)
			}},
			{name: "govc", sync: true, cmd: func(out string) *exec.Cmd {
				return exec.Command(govc, "export.ovf", "-vm", vm.InventoryPath, out)
			}},
			hyperctlTool("hyperctl", hyperctl),
			{name: "curl", curl: true},
		}
		if base := os.Getenv("HYPERSDK_BENCH_HYPERCTL_BASE"); base != "" {
			tools = append(tools, hyperctlTool("hyperctl-base", base))
		}
		b.Run(name, func(b *testing.B) {
			runs := map[string][]benchRun{}
			for range b.N {
				for rep := range reps {
					// Alternate, and rotate who goes first.
					for k := range tools {
						t := tools[(k+rep)%len(tools)]
						var r benchRun
						if t.curl {
							r = curlRun(b, sim, vm)
						} else {
							r = t.run(b, env, outRoot)
						}
						runs[t.name] = append(runs[t.name], r)
					}
				}
			}
			med := func(tool string, withSync bool) float64 {
				var v []float64
				for _, r := range runs[tool] {
					t := r.export
					if withSync {
						t += r.sync
					}
					v = append(v, t.Seconds())
				}
				slices.Sort(v)
				return v[len(v)/2]
			}
			h := med("hyperctl", true)
			ratios := []struct {
				metric, label string
				x             float64
			}{
				{"x_govc_sha256_sync", "hyperctl+sync vs govc -sha 256 + sync", med("govc-sha256", true) / h},
				{"x_govc_plain", "hyperctl+sync vs plain govc (no sync)  ", med("govc", false) / h},
				{"x_govc_plain_sync", "hyperctl+sync vs plain govc + sync     ", med("govc", true) / h},
				{"x_curl_ceiling", "hyperctl+sync vs curl ceiling          ", med("curl", false) / h},
			}
			if len(runs["hyperctl-base"]) > 0 {
				ratios = append(ratios, struct {
					metric, label string
					x             float64
				}{"x_hyperctl_base", "hyperctl+sync vs hyperctl-base + sync ", med("hyperctl-base", true) / h})
			}
			for _, r := range ratios {
				b.ReportMetric(r.x, r.metric)
			}
			b.ReportMetric(float64(size)/mib/h, "hyperctl_MiB/s")
			var rss int64
			for _, r := range runs["hyperctl"] {
				rss = max(rss, r.maxRSSKiB)
			}
			b.ReportMetric(float64(rss)/1024, "hyperctl_peak_RSS_MiB")

			// Printed, not logged: every run, so that noise is visible.
			fmt.Printf("\nexport vs govc, %s: %d MiB in %d disk(s), GOMAXPROCS=%d, %d runs each, alternating, out=%s\n",
				name, size/mib, len(vm.Disks), runtime.GOMAXPROCS(0), len(runs["hyperctl"]), filepath.Dir(outRoot))
			for _, t := range tools {
				var parts []string
				for _, r := range runs[t.name] {
					s := fmt.Sprintf("%.2f", r.export.Seconds())
					if t.sync {
						s += fmt.Sprintf("+%.2f", r.sync.Seconds())
					}
					parts = append(parts, s)
				}
				// CPU time is far less noisy than wall time on a shared
				// machine: it shows what each tool costs per byte.
				var m int64
				var cpu []float64
				for _, r := range runs[t.name] {
					m = max(m, r.maxRSSKiB)
					cpu = append(cpu, r.cpu.Seconds())
				}
				slices.Sort(cpu)
				extra := fmt.Sprintf("  CPU %.2f s", cpu[len(cpu)/2])
				if t.name != "curl" {
					extra += fmt.Sprintf(", peak RSS %d MiB", m/1024)
				}
				fmt.Printf("  %-12s median %6.2f s (with sync %6.2f s)  runs [s export+sync]: %s%s\n",
					t.name, med(t.name, false), med(t.name, true), strings.Join(parts, " "), extra)
			}
			for _, r := range ratios {
				fmt.Printf("  %s %.2fx\n", r.label, r.x)
			}
		})
	}
}

type benchTool struct {
	name  string
	cmd   func(out string) *exec.Cmd
	sync  bool     // time a `sync` after the export
	check []string // SHA-256 digests the export's manifest must list
	curl  bool
}

type benchRun struct {
	export, sync time.Duration
	cpu          time.Duration // user + system time of the exporter
	maxRSSKiB    int64
}

// run exports into a fresh directory, times the export and then `sync`,
// checks the manifest and removes the output.
func (t benchTool) run(b *testing.B, env []string, outRoot string) benchRun {
	b.Helper()
	out, err := os.MkdirTemp(outRoot, t.name+"-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(out)
	cmd := t.cmd(out)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	err = cmd.Run()
	var r benchRun
	r.export = time.Since(start)
	if err != nil {
		b.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSSKiB = ru.Maxrss
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if t.sync {
		start = time.Now()
		if err := exec.Command("sync").Run(); err != nil {
			b.Fatalf("sync: %v", err)
		}
		r.sync = time.Since(start)
	}
	if len(t.check) > 0 {
		checkManifest(b, t.name, out, t.check)
	}
	return r
}

// checkManifest makes sure the export is whole: its .mf lists every disk's
// SHA-256 as served.
func checkManifest(b *testing.B, tool, out string, want []string) {
	b.Helper()
	var mf []byte
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".mf") {
			mf, err = os.ReadFile(p)
		}
		return err
	})
	if err != nil || mf == nil {
		b.Fatalf("%s: no manifest in %s (%v)", tool, out, err)
	}
	for _, sum := range want {
		if !bytes.Contains(bytes.ToLower(mf), []byte(sum)) {
			b.Fatalf("%s: manifest lacks a disk's SHA-256 %s:\n%s", tool, sum, mf)
		}
	}
}

// curlRun opens an export lease like an exporter would and times curl
// fetching every disk of it to /dev/null at once: the most any exporter can
// get out of this NFC server on this machine. URL and session cookie go to
// curl on its standard input, never on its command line.
func curlRun(b *testing.B, sim *simEnv, vm vcsim.VMInfo) benchRun {
	b.Helper()
	ctx := context.Background()
	c, err := sim.NewClient(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Logout(ctx)
	lease, err := object.NewVirtualMachine(c.Client, vm.Ref).Export(ctx)
	if err != nil {
		b.Fatal(err)
	}
	info, err := lease.Wait(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer lease.Complete(ctx)
	var cfg strings.Builder
	cfg.WriteString("silent\nshow-error\nfail\ninsecure\nparallel\n")
	for _, ck := range c.Client.Jar.Cookies(c.Client.URL()) {
		fmt.Fprintf(&cfg, "header = \"Cookie: %s=%s\"\n", ck.Name, ck.Value)
	}
	for _, item := range info.Items {
		fmt.Fprintf(&cfg, "url = \"%s\"\noutput = \"/dev/null\"\n", item.URL.String())
	}
	cmd := exec.Command("curl", "-K", "-")
	cmd.Stdin = strings.NewReader(cfg.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("curl: %v: %s", err, stderr.String())
	}
	return benchRun{export: time.Since(start), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
}

// BenchmarkListVMs lists 5,000 simulated VMs through the PropertyCollector
// (one container view, only the properties VMInfo needs) and compares it
// with the per-VM approach of a finder plus one property read per VM.
func BenchmarkListVMs(b *testing.B) {
	dir := benchcmd.Dir(b)
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
