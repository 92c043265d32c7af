package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/gcp"
	"github.com/hypersdk/hypersdk/providers/gcp/gcpfake"
)

// waitJob polls the job until it ends.
func waitJob(t *testing.T, dmn *daemon, j *apitypes.Job, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %v:\n%s", j.ID, j.State, limit, dmn.out.String())
		}
		time.Sleep(100 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, j)
	}
}

// --demo registers the Google Cloud demo as "demo-gcp", healthy; its
// two-disk instance is exported from the CLI to an OVA and to qcow2 disks;
// both verify with hyperctl, and every disk is the demo disk's bytes — the
// qcow2 disks are also identical to the OVA's.
func TestDemoGCPExportFromTheCLI(t *testing.T) {
	disktest.QemuImg(t)
	hyperctl := buildHyperctl(t)
	dmn := newDaemon(t, "", "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start("--demo")
	if !strings.Contains(dmn.out.String(), "--provider demo-gcp") {
		t.Fatalf("no Google Cloud demo instructions printed:\n%s", dmn.out.String())
	}
	env := []string{"HYPERSDK_DATA_DIR=" + dmn.dataDir}
	deadline := time.Now().Add(time.Minute)
	for {
		var provs struct{ Items []apitypes.ProviderInfo }
		dmn.call("GET", "/api/v1/providers", nil, &provs)
		i := slices.IndexFunc(provs.Items, func(p apitypes.ProviderInfo) bool { return p.Name == "demo-gcp" })
		if i < 0 || provs.Items[i].Type != "gcp" {
			t.Fatalf("no demo-gcp provider of type gcp: %+v", provs.Items)
		}
		if provs.Items[i].Health.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo-gcp not healthy: %+v\n%s", provs.Items[i].Health, dmn.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := runHyperctl(t, hyperctl, env, "vms", "list", "--provider", "demo-gcp"); !strings.Contains(out, "web-1") || !strings.Contains(out, "db-1") {
		t.Fatalf("vms list:\n%s", out)
	}

	spec, err := gcp.DemoSpec()
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for i, d := range spec.Instances[0].Disks {
		src := filepath.Join(t.TempDir(), fmt.Sprintf("src-%d.raw", i))
		if err := d.WriteRawImage(src); err != nil {
			t.Fatal(err)
		}
		sources = append(sources, src)
	}
	lastJob := func() *apitypes.Job {
		jobs := dmn.allJobs()
		slices.SortFunc(jobs, func(a, b *apitypes.Job) int { return a.CreatedAt.Compare(b.CreatedAt) })
		return jobs[len(jobs)-1]
	}

	out := runHyperctl(t, hyperctl, env, "export", "--provider", "demo-gcp", "--vm", "web-1", "--format", "ova", "--wait")
	j := lastJob()
	if j.State != apitypes.JobSucceeded || j.Result == nil {
		t.Fatalf("OVA export %s: %s\n%s", j.State, j.Error, out)
	}
	archive := filepath.Join(j.Result.OutputDir, j.Result.OVAPath)
	runHyperctl(t, hyperctl, env, "ova", "verify", archive)
	ovaDir := t.TempDir()
	rep, err := ova.Extract(context.Background(), archive, ovaDir, ova.ExtractOptions{ReadOptions: ova.ReadOptions{RequireManifest: true}})
	if err != nil || !rep.Verified || !strings.HasSuffix(rep.DescriptorName, ".ovf") {
		t.Fatalf("OVA: %v (%+v)", err, rep)
	}

	out = runHyperctl(t, hyperctl, env, "export", "--provider", "demo-gcp", "--vm", "web-1", "--format", "disks", "--disk-format", "qcow2", "--wait")
	j = lastJob()
	if j.State != apitypes.JobSucceeded || j.Result == nil {
		t.Fatalf("qcow2 export %s: %s\n%s", j.State, j.Error, out)
	}
	runHyperctl(t, hyperctl, env, "verify", j.Result.OutputDir)
	for i, src := range sources {
		q := filepath.Join(j.Result.OutputDir, fmt.Sprintf("web-1-disk-%d.qcow2", i))
		disktest.Check(t, q, "qcow2")
		disktest.Compare(t, q, "qcow2", src, "raw")
		disktest.Compare(t, q, "qcow2", filepath.Join(ovaDir, fmt.Sprintf("web-1-disk-%d.vmdk", i)), "vmdk")
	}
}

// A Google Cloud export whose daemon is SIGKILLed while the image export
// builds run resumes on the restarted daemon with the same snapshots and
// the same builds (none created again), succeeds with the disks' bytes,
// and leaves nothing on the platform. Then a daemon that starts sweeps
// what a job that is over left (as a kill -9 leaves it) and keeps a
// local export's.
func TestGCPExportResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	const project, bucket, zone = "hypersdk-kill9", "kill9-staging", "europe-west1-b"
	var disks []*gcpfake.Disk
	for i := range 2 {
		d, err := gcpfake.NewSampleDisk(fmt.Sprintf("killme-%d", i), 1, uint64(40+i))
		if err != nil {
			t.Fatal(err)
		}
		disks = append(disks, d)
	}
	srv, err := gcpfake.New(gcpfake.Options{
		Project: project,
		Spec: gcpfake.Spec{Buckets: []string{bucket}, Instances: []gcpfake.Instance{
			{Name: "killme", Zone: zone, MachineType: "e2-medium", Status: "TERMINATED", Disks: disks},
		}},
		Faults: gcpfake.Faults{BuildDelay: 8 * time.Second, PartSize: 2 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	keyFile := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(keyFile, srv.KeyJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := gcp.Config{
		Project: project, Zones: []string{zone}, StagingBucket: bucket, CredentialsFile: keyFile,
		Endpoints: gcp.Endpoints{Compute: srv.URL(), CloudBuild: srv.URL(), Storage: srv.StorageEndpoint()},
	}
	dmn := newDaemon(t, fmt.Sprintf(`
jobs:
  heartbeat_stale: 5s
providers:
  - name: gcp1
    type: gcp
    project: %s
    zones: [%s]
    staging_bucket: %s
    credentials_file: %s
    endpoints: {compute: %s, cloudbuild: %s, storage: %s}
`, project, zone, bucket, keyFile, srv.URL(), srv.URL(), srv.StorageEndpoint()), "HYPERVISORD_TEST_REAL_PROVIDERS=1")
	dmn.start()
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{"provider": "gcp1", "vm": "killme", "format": "disks", "disk_format": "raw"}, &j); code != 201 {
		t.Fatalf("submit: %d\n%s", code, dmn.out.String())
	}
	deadline := time.Now().Add(time.Minute)
	for {
		working := 0
		for _, b := range srv.Builds() {
			if b.Status == "WORKING" {
				working++
			}
		}
		if working == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the builds never ran:\n%s", dmn.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	dmn.kill()
	before := srv.Stats()
	if before["snapshots.insert"] != 2 || before["builds.create"] != 2 {
		t.Fatalf("before the kill: %v", before)
	}

	dmn.start()
	waitJob(t, dmn, &j, 3*time.Minute)
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
	}
	if j.Attempt < 2 {
		t.Errorf("the job finished in attempt %d; the kill did not interrupt it", j.Attempt)
	}
	after := srv.Stats()
	if after["snapshots.insert"] != 2 || after["builds.create"] != 2 {
		t.Errorf("the rescued attempt snapshotted or built again: %v", after)
	}
	if left := srv.Leftovers(); len(left) != 0 {
		t.Errorf("left on the platform after the job: %v", left)
	}
	for i, d := range disks {
		want := filepath.Join(t.TempDir(), "want.raw")
		if err := d.WriteRawImage(want); err != nil {
			t.Fatal(err)
		}
		disktest.Compare(t, filepath.Join(j.Result.OutputDir, fmt.Sprintf("killme-disk-%d.raw", i)), "raw", want, "raw")
	}

	// What a daemon killed during this (now finished) job's export would
	// have left, and a local export's.
	dmn.kill()
	srv.SetFaults(gcpfake.Faults{})
	p, err := gcp.NewProvider("sweep-test", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Disconnect()
	for _, job := range []string{j.ID, "local-0f0f"} {
		if _, err := p.PrepareExport(ctx, "killme", providers.ExportOptions{Format: providers.FormatOVF, JobID: job}); err != nil {
			t.Fatal(err)
		}
	}
	of := func(job string) (n int) {
		for _, l := range srv.Leftovers() {
			if strings.Contains(l, job) || strings.Contains(l, "/"+job+"/") {
				n++
			}
		}
		return n
	}
	if of(j.ID) == 0 || of("local-0f0f") == 0 {
		t.Fatalf("nothing planted: %v", srv.Leftovers())
	}
	dmn.start()
	deadline = time.Now().Add(30 * time.Second)
	for of(j.ID) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the finished job's resources outlived the daemon's start: %v\n%s", srv.Leftovers(), dmn.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if of("local-0f0f") == 0 {
		t.Error("the sweep removed a local export's resources")
	}
}
