package azure

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/benchcmd"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
)

// benchChildEnv makes the test binary the exporting process of
// BenchmarkDownloadVsCurl, so that its peak RSS is the export's alone.
const benchChildEnv = "HYPERSDK_AZURE_BENCH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) == "1" {
		os.Exit(benchChild())
	}
	os.Exit(m.Run())
}

// benchJob is what the parent hands the child on its standard input (so
// that the secret is in no argument list or environment).
type benchJob struct {
	ARM, Blob, CA, Secret, VM, Out string
}

// benchResult is what the child reports: the block download's duration
// and bytes, from the pipeline's summary line.
type benchResult struct {
	Download time.Duration
	Bytes    int64
	Summary  map[string]string
	// PeakRSSKiB is the process's VmHWM. (getrusage cannot tell it: a
	// child started by vfork and exec inherits its parent's high-water
	// mark, here the benchmark's with its fake disks.)
	PeakRSSKiB int64
}

// vmHWM is this process's peak resident set in KiB, from /proc.
func vmHWM() int64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var n int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &n)
			return n
		}
	}
	return -1
}

// summary catches the pipeline's "disk blocks fetched" line.
type summary struct {
	mu    sync.Mutex
	attrs map[string]string
}

func (s *summary) Enabled(context.Context, slog.Level) bool { return true }
func (s *summary) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *summary) WithGroup(string) slog.Handler            { return s }
func (s *summary) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "disk blocks fetched" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attrs = map[string]string{}
	r.Attrs(func(a slog.Attr) bool { s.attrs[a.Key] = a.Value.String(); return true })
	return nil
}

func benchChild() int {
	var job benchJob
	if err := json.NewDecoder(os.Stdin).Decode(&job); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	sum := &summary{}
	log := slog.New(sum)
	p, err := NewProvider("bench", Config{
		SubscriptionID: testSubscription, TenantID: testTenant,
		Credential: Credential{Type: CredentialClientSecret, ClientID: testClientID, ClientSecret: config.NewSecret(job.Secret)},
		Endpoints:  Endpoints{ARM: job.ARM, Login: job.ARM, Blob: job.Blob}, CAFile: job.CA,
	}, log)
	if err == nil {
		err = p.Connect(context.Background())
	}
	if err == nil {
		_, err = pipeline.Export(context.Background(), p, job.VM, providers.ExportOptions{
			OutputDir: job.Out, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, Logger: log,
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sum.mu.Lock()
	defer sum.mu.Unlock()
	d, _ := time.ParseDuration(sum.attrs["duration"])
	var n int64
	fmt.Sscan(sum.attrs["bytes"], &n)
	_ = json.NewEncoder(os.Stdout).Encode(benchResult{Download: d, Bytes: n, Summary: sum.attrs, PeakRSSKiB: vmHWM()})
	return 0
}

// Network model of the benchmark, configured on the blob server: each
// request waits one round trip before it is served, and each response body
// streams at most 50 MiB/s. 20 ms is a round trip from an on-premises host
// to its Azure region; 50 MiB/s is what one connection moves over it with
// a 1 MiB TCP window, and about what one connection gets from Azure blob
// storage (its single-blob target is 60 MiB/s). Both the provider and curl
// are served under it.
const (
	benchRTT        = 20 * time.Millisecond
	benchStreamRate = 50 << 20
)

// BenchmarkDownloadVsCurl times the provider's download of a managed
// disk's page blob (a 320 MiB disk written end to end, so that both move
// the same bytes: parallel 4 MiB ranged GETs with MD5, adaptive
// concurrency) against curl copying the same blob through its SAS URL in
// one stream, alternating, median of three, under the network model
// above; and the peak RSS of the exporting process (a child process: its
// VmHWM).
func BenchmarkDownloadVsCurl(b *testing.B) {
	if _, err := exec.LookPath("curl"); err != nil {
		b.Fatalf("curl is the anchor of this benchmark: %v (apt-get install curl)", err)
	}
	const diskMiB = 320
	content, err := azurefake.NewContent(diskMiB << 20)
	if err != nil {
		b.Fatal(err)
	}
	if err := content.WriteRandom(0, diskMiB<<20, 42); err != nil {
		b.Fatal(err)
	}
	blobs := azblobfake.New(azblobfake.Options{Latency: benchRTT, StreamRate: benchStreamRate})
	b.Cleanup(blobs.Close)
	account := blobs.URL()
	srv, err := azurefake.New(azurefake.Options{
		SubscriptionID: testSubscription, TenantID: testTenant, ClientID: testClientID, ClientSecret: testSecret,
		Blob: azurefake.BlobAccount{URL: account, AccountName: azblobfake.AccountName, AccountKey: azblobfake.AccountKey},
		Spec: azurefake.Spec{
			Disks: []*azurefake.Disk{{Name: "bench-os", ResourceGroup: "bench-rg", Content: content}},
			VMs:   []*azurefake.VM{{Name: "bench", ResourceGroup: "bench-rg", Size: "Standard_D2s_v5", PowerState: azurefake.PowerDeallocated, OSDisk: "bench-os"}},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	dir := benchcmd.Dir(b)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, srv.CACertPEM(), 0o600); err != nil {
		b.Fatal(err)
	}
	job := benchJob{ARM: srv.URL(), Blob: account, CA: ca, Secret: testSecret, VM: "bench"}

	// curl's SAS: a grant as the provider makes it, held for the runs.
	f := &fixture{arm: srv, blobs: &blobBackend{account: azurefake.BlobAccount{URL: account}}, log: slog.New(slog.DiscardHandler), caFile: ca}
	p := f.connected(b)
	rec, err := p.findVM(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	c, _ := p.clients()
	curlDisk := &access{p: p, c: c, log: f.log, jobID: "bench-curl", label: "os", disk: rec.disks[0].disk}
	if err := curlDisk.prepare(context.Background(), true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(curlDisk.cleanup)
	client, _ := curlDisk.blob.current()
	sasURL := client.URL()

	var ours, curls []float64
	var rss int64
	var moved int64
	for i := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("export-%d", i))
		cmd := exec.Command(os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), benchChildEnv+"=1")
		in, _ := json.Marshal(benchJob{ARM: job.ARM, Blob: job.Blob, CA: job.CA, Secret: job.Secret, VM: job.VM, Out: out})
		cmd.Stdin = bytes.NewReader(in)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		r := benchcmd.Time(b, cmd)
		var res benchResult
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Download <= 0 {
			b.Fatalf("child: %v %q", err, stdout.String())
		}
		ours = append(ours, res.Download.Seconds())
		b.Logf("run %d: download %v, process %v (CPU %v), peak RSS %d KiB, peak concurrency %s", i, res.Download, r.Wall.Round(time.Millisecond), r.CPU.Round(time.Millisecond), res.PeakRSSKiB, res.Summary["peak_concurrency"])
		rss = max(rss, res.PeakRSSKiB)
		moved = res.Bytes
		os.RemoveAll(out)

		target := filepath.Join(dir, "curl.vhd")
		curl := exec.Command("curl", "-sS", "--fail", "-K", "-", "-o", target)
		curl.Stdin = strings.NewReader(fmt.Sprintf("url = %q\n", sasURL)) // never on the command line
		cr := benchcmd.Time(b, curl)
		curls = append(curls, cr.Wall.Seconds())
		if fi, err := os.Stat(target); err != nil || fi.Size() != diskMiB<<20+512 {
			b.Fatalf("curl copied %v (%v)", fi, err)
		}
		os.Remove(target)
	}
	b.Logf("blob server: %d ranged GETs, at most %d at once", blobs.Stats().RangedGets, blobs.Stats().MaxConcurrentGets)
	o, cu := benchcmd.Median(ours), benchcmd.Median(curls)
	b.ReportMetric(cu/o, "x_vs_curl")
	b.ReportMetric(float64(moved)/o/(1<<20), "MiB/s")
	b.ReportMetric(float64(rss)/1024, "peak_RSS_MiB")
	b.Logf("%d MiB disk, 20 ms per request, 50 MiB/s per stream: download %.2f s (median of %v) vs curl one stream %.2f s (median of %v): %.1fx; exporting process peak RSS %.1f MiB",
		diskMiB, o, ours, cu, curls, cu/o, float64(rss)/1024)
	if rss > 100<<10 {
		b.Errorf("the exporting process peaked at %.1f MiB, over 100 MiB", float64(rss)/1024)
	}
}
