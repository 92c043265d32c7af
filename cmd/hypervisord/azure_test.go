package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/internal/benchcmd"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/azure"
	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
)

const (
	azSubscription = "5d3c1f2e-0a9b-4c8d-9e7f-6a5b4c3d2e1f"
	azTenant       = "1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d"
	azClientID     = "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c"
	azSecret       = "az~daemon.test-secret_never.shown"
)

// azureWorld is an azurefake subscription over an azblobfake account in
// this process: it outlives the daemons the test starts and kills.
type azureWorld struct {
	arm   *azurefake.Server
	blobs *azblobfake.Server
	ca    string

	mu     sync.Mutex
	served map[string]int // Get Blob of a data range → times served
}

func newAzureWorld(t *testing.T, spec azurefake.Spec, blobOpts azblobfake.Options) *azureWorld {
	t.Helper()
	w := &azureWorld{served: map[string]int{}}
	blobOpts.Inspect = func(r azblobfake.Request) {
		if r.Op == azblobfake.OpGetBlob && r.HasRange && r.RangeEnd-r.RangeStart+1 > 512 {
			w.mu.Lock()
			w.served[fmt.Sprintf("%d-%d", r.RangeStart, r.RangeEnd)]++
			w.mu.Unlock()
		}
	}
	w.blobs = azblobfake.New(blobOpts)
	t.Cleanup(w.blobs.Close)
	var err error
	w.arm, err = azurefake.New(azurefake.Options{
		SubscriptionID: azSubscription, TenantID: azTenant, ClientID: azClientID, ClientSecret: azSecret,
		Blob: azurefake.BlobAccount{URL: w.blobs.URL(), AccountName: azblobfake.AccountName, AccountKey: azblobfake.AccountKey},
		Spec: spec,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.arm.Close)
	w.ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(w.ca, w.arm.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *azureWorld) configYAML(extra string) string {
	return fmt.Sprintf(`%s
providers:
  - name: az1
    type: azure
    subscription_id: %s
    tenant_id: %s
    credential: {type: client_secret, client_id: %s, client_secret: {env: TEST_AZ_SECRET}}
    endpoints: {arm: %s, login: %s, blob: %s}
    ca_file: %s
`, extra, azSubscription, azTenant, azClientID, w.arm.URL(), w.arm.URL(), w.blobs.URL(), w.ca)
}

func (w *azureWorld) provider(t *testing.T) *azure.Provider {
	t.Helper()
	p, err := azure.NewProvider("az-test", azure.Config{
		SubscriptionID: azSubscription, TenantID: azTenant,
		Credential: azure.Credential{Type: azure.CredentialClientSecret, ClientID: azClientID, ClientSecret: config.NewSecret(azSecret)},
		Endpoints:  azure.Endpoints{ARM: w.arm.URL(), Login: w.arm.URL(), Blob: w.blobs.URL()},
		CAFile:     w.ca,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Disconnect() })
	return p
}

// An Azure export whose daemon is SIGKILLed mid-transfer resumes on the
// restarted daemon from the same snapshot (revoking the dead attempt's
// grant, granting anew) and the block journal: the disk is the source's
// bytes, the cells read twice are only those the journal had not
// recorded, the snapshot was made once, and once the job is over no
// grant and no snapshot is left.
//
// The job's bandwidth limit paces the transfer at blockRate blocks a
// second once the limiter's first burst (one 4 MiB cell's worth, 128 of
// these 32 KiB blocks) is spent; the journal records finished blocks
// every 2 s, so a kill loses at most 2 s of blocks plus those in flight —
// the bound of TestAWSExportResumesAfterSIGKILL, which explains it.
func TestAzureExportResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	const (
		dataBlocks   = 240
		blockBytes   = 32 << 10
		blockRate    = 10
		maxRefetched = 2*blockRate + 6
	)
	// A 32 KiB run at the start of every other 4 MiB cell of a 2 GiB disk.
	content, err := azurefake.NewContent(2 << 30)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(dataBlocks) {
		if err := content.WriteRandom(2*i*(4<<20), blockBytes, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	w := newAzureWorld(t, azurefake.Spec{
		Disks: []*azurefake.Disk{{Name: "killme-os", ResourceGroup: "kill-rg", Content: content}},
		VMs:   []*azurefake.VM{{Name: "killme", ResourceGroup: "kill-rg", Size: "Standard_B2s", PowerState: azurefake.PowerRunning, OSDisk: "killme-os"}},
	}, azblobfake.Options{Latency: 5 * time.Millisecond})

	dmn := newDaemon(t, w.configYAML("jobs:\n  heartbeat_stale: 5s"), "HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_AZ_SECRET="+azSecret)
	dmn.start()
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{
		"provider": "az1", "vm": "killme", "format": "disks", "disk_format": "raw", "bandwidth_limit": blockRate * blockBytes,
	}, &j); code != 201 {
		t.Fatalf("submit: %d\n%s", code, dmn.out.String())
	}
	outDir := j.Spec.Options.OutputDir
	served := func() (total int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, n := range w.served {
			total += n
		}
		return total
	}
	waitUntil(t, "60% of the blocks fetched and journaled in part", 2*time.Minute, func() bool {
		return served() >= dataBlocks*6/10 && journalHasBatch(t, outDir)
	})
	dmn.kill()
	run1 := served()
	if run1 >= dataBlocks {
		t.Fatalf("all %d blocks were fetched before the kill; the test proves nothing", run1)
	}
	if len(w.arm.Snapshots()) != 1 || len(w.arm.Grants()) != 1 {
		t.Fatalf("after the kill, want the job's snapshot and grant alive: %v", w.arm.Leftovers())
	}

	dmn.start()
	waitJob(t, dmn, &j, 3*time.Minute)
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
	}
	if j.Attempt < 2 {
		t.Errorf("the job finished in attempt %d; the kill did not interrupt it", j.Attempt)
	}
	refetched := served() - dataBlocks
	t.Logf("blocks %d; served %d before the kill, %d after; %d served twice (bound %d)", dataBlocks, run1, served()-run1, refetched, maxRefetched)
	w.mu.Lock()
	if len(w.served) != dataBlocks {
		t.Errorf("%d distinct blocks served, want %d", len(w.served), dataBlocks)
	}
	w.mu.Unlock()
	if refetched > maxRefetched {
		t.Errorf("%d blocks fetched twice, more than the %d the journal's lag explains", refetched, maxRefetched)
	}
	if n := w.arm.Stats().Requests["SnapshotsClient.BeginCreateOrUpdate"]; n != 1 {
		t.Errorf("a snapshot was created %d times; the rescued attempt must reuse the job's", n)
	}
	if left := w.arm.Leftovers(); len(left) != 0 {
		t.Errorf("left after the job: %v", left)
	}
	disks, _ := filepath.Glob(filepath.Join(outDir, "*.raw"))
	if len(disks) != 1 {
		t.Fatalf("output disks %v in %s", disks, outDir)
	}
	want := filepath.Join(t.TempDir(), "source.raw")
	if err := content.WriteRawImage(want); err != nil {
		t.Fatal(err)
	}
	disktest.Compare(t, disks[0], "raw", want, "raw")
}

// A daemon that starts revokes the grants and deletes the snapshots of
// Azure jobs that are over — here those a finished job of its store left
// as a kill -9 mid-export leaves them — and keeps those of a `hyperctl
// export --local` it cannot ask about.
func TestDaemonSweepsAzureOrphansAtStart(t *testing.T) {
	t.Parallel()
	c, err := azurefake.NewSampleContent(32, 7)
	if err != nil {
		t.Fatal(err)
	}
	w := newAzureWorld(t, azurefake.Spec{
		Disks: []*azurefake.Disk{{Name: "sweepme-os", ResourceGroup: "sweep-rg", Content: c}},
		VMs:   []*azurefake.VM{{Name: "sweepme", ResourceGroup: "sweep-rg", Size: "Standard_B2s", OSDisk: "sweepme-os"}},
	}, azblobfake.Options{})
	dmn := newDaemon(t, w.configYAML(""), "HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_AZ_SECRET="+azSecret)
	dmn.start()
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "az1", "vm": "sweepme", "format": "disks", "disk_format": "raw"}, &j); code != 201 {
		t.Fatalf("submit: %d\n%s", code, dmn.out.String())
	}
	waitJob(t, dmn, &j, time.Minute)
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s", j.State, j.Error)
	}
	dmn.kill()

	p := w.provider(t)
	for _, job := range []string{j.ID, "local-0f0f"} {
		if _, err := p.PrepareExport(context.Background(), "sweepme", providers.ExportOptions{Format: providers.FormatOVF, JobID: job}); err != nil {
			t.Fatal(err)
		}
	}
	jobsAlive := func() []string {
		var out []string
		for _, s := range w.arm.Snapshots() {
			out = append(out, s.Tags[azure.TagJob])
		}
		slices.Sort(out)
		return out
	}
	if got := jobsAlive(); !slices.Equal(got, []string{j.ID, "local-0f0f"}) {
		t.Fatalf("snapshots before the restart are of jobs %v", got)
	}
	dmn.start()
	waitUntil(t, "the finished job's snapshot swept", 30*time.Second, func() bool { return !slices.Contains(jobsAlive(), j.ID) })
	if got := jobsAlive(); !slices.Equal(got, []string{"local-0f0f"}) {
		t.Errorf("after the sweep, snapshots of jobs %v are alive; want the local export's only", got)
	}
	if g := w.arm.Grants(); len(g) != 1 {
		t.Errorf("after the sweep, grants %v; want the local export's only", g)
	}
}

// hyperctl runs the real hyperctl against dmn.
type hyperctl struct {
	t   *testing.T
	bin string
	dmn *daemon
	// outputs collects everything hyperctl printed.
	outputs []string
}

// run runs hyperctl and returns what it wrote on standard output.
func (h *hyperctl) run(args ...string) (string, error) {
	h.t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = append(os.Environ(), "HYPERSDK_SERVER="+h.dmn.url, "HYPERSDK_TOKEN="+h.dmn.token, "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	h.outputs = append(h.outputs, "hyperctl "+strings.Join(args, " ")+": "+stdout.String()+stderr.String())
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func (h *hyperctl) must(args ...string) string {
	h.t.Helper()
	out, err := h.run(args...)
	if err != nil {
		h.t.Fatalf("hyperctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// --demo registers demo-azure (type azure, healthy); from the real
// hyperctl, its three-disk VM web-1 exports to an OVA that `hyperctl ova
// verify` passes and whose tar lists the descriptor first, and to qcow2
// disks that `hyperctl verify` passes, each qemu-img check-clean and
// compare-identical to the source disk and to the disk inside the OVA.
// No SAS signature shows in the daemon's log, an API answer or hyperctl's
// output.
func TestDemoAzureThroughTheCLI(t *testing.T) {
	disktest.QemuImg(t)
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	if !strings.Contains(dmn.out.String(), "--provider demo-azure") {
		t.Fatalf("no Azure demo instructions printed:\n%s", dmn.out.String())
	}
	waitUntil(t, "demo-azure healthy", time.Minute, func() bool {
		var provs struct{ Items []apitypes.ProviderInfo }
		dmn.call("GET", "/api/v1/providers", nil, &provs)
		for _, p := range provs.Items {
			if p.Name == "demo-azure" && p.Type == "azure" && p.Health.Healthy {
				return true
			}
		}
		return false
	})
	h := &hyperctl{t: t, bin: benchcmd.Hyperctl(t, t.TempDir()), dmn: dmn}

	var page struct{ Items []providers.VMInfo }
	if out := h.must("vms", "list", "--provider", "demo-azure", "-o", "json"); json.Unmarshal([]byte(out), &page) != nil {
		t.Fatalf("vms list -o json: %s", out)
	}
	vms := page.Items
	i := slices.IndexFunc(vms, func(v providers.VMInfo) bool { return v.Name == "web-1" })
	if len(vms) < 2 || i < 0 || len(vms[i].Disks) != 3 {
		t.Fatalf("demo-azure VMs: %+v", vms)
	}

	export := func(args ...string) *apitypes.Job {
		t.Helper()
		out := h.must(append([]string{"export", "--provider", "demo-azure", "--vm", "web-1", "--wait", "-o", "json"}, args...)...)
		var j apitypes.Job
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("export output: %v\n%s", err, out)
		}
		if j.State != apitypes.JobSucceeded || j.Result == nil {
			t.Fatalf("export %s: %s", j.State, j.Error)
		}
		return &j
	}
	ovaJob := export("--format", "ova")
	archive := filepath.Join(ovaJob.Result.OutputDir, ovaJob.Result.OVAPath)
	h.must("ova", "verify", archive)
	list, err := exec.Command("tar", "-tf", archive).Output()
	if err != nil {
		t.Fatal(err)
	}
	if members := strings.Fields(string(list)); len(members) == 0 || !strings.HasSuffix(members[0], ".ovf") {
		t.Errorf("tar -tf lists %v: the descriptor must come first", members)
	}
	extracted := t.TempDir()
	h.must("ova", "extract", archive, extracted)

	qJob := export("--format", "disks", "--disk-format", "qcow2")
	h.must("verify", qJob.Result.OutputDir)
	// The demo's web-1 disks (see azure.StartDemo): sizes and seeds.
	for i, d := range []struct {
		mib  int64
		seed uint64
	}{{1024, 11}, {512, 12}, {2048, 13}} {
		q := filepath.Join(qJob.Result.OutputDir, fmt.Sprintf("web-1-disk-%d.qcow2", i))
		disktest.Check(t, q, "qcow2")
		disktest.Compare(t, q, "qcow2", filepath.Join(extracted, fmt.Sprintf("web-1-disk-%d.vmdk", i)), "vmdk")
		src, err := azurefake.NewSampleContent(d.mib, d.seed)
		if err != nil {
			t.Fatal(err)
		}
		raw := filepath.Join(t.TempDir(), "source.raw")
		if err := src.WriteRawImage(raw); err != nil {
			t.Fatal(err)
		}
		disktest.Compare(t, q, "qcow2", raw, "raw")
	}

	// No SAS anywhere: every grant's URL carries sig=.
	var answers []string
	for _, path := range []string{"/api/v1/jobs", "/api/v1/jobs/" + ovaJob.ID, "/api/v1/jobs/" + qJob.ID + "/logs", "/api/v1/jobs/" + ovaJob.ID + "/logs", "/api/v1/providers/demo-azure/vms"} {
		var v any
		dmn.call("GET", path, nil, &v)
		b, _ := json.Marshal(v)
		answers = append(answers, path+": "+string(b))
	}
	haystacks := append(append(answers, "daemon output: "+dmn.out.String()), h.outputs...)
	for _, hs := range haystacks {
		if strings.Contains(hs, "sig=") || strings.Contains(hs, "sig%3D") {
			t.Errorf("a SAS shows in %.400s", hs)
		}
	}
	if !strings.Contains(dmn.out.String(), "read access revoked") || !strings.Contains(dmn.out.String(), "snapshot deleted") {
		t.Error("the daemon's log does not show the grants revoked and the snapshots deleted")
	}
}
