package gcp

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/gcp/gcpfake"
	"github.com/hypersdk/hypersdk/providers/providertest"
	"github.com/hypersdk/hypersdk/transfer"
)

func TestConformance(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, spec, gcpfake.Faults{PendingPolls: 1, PartSize: 1 << 20})
	// One disk of 1 GiB: the two-disk case has its own test below, and the
	// suite's eight exports stay quick on two cores.
	solo := spec.Instances[1]
	providertest.Run(t, providertest.Target{
		New:          func(t *testing.T) providers.Provider { return f.provider(t, f.config()) },
		ExportVM:     "solo",
		BeforeCancel: func(*testing.T) { f.srv.SetFaults(gcpfake.Faults{BuildDelay: 20 * time.Millisecond}) },
		AfterCancel:  func(*testing.T) { f.srv.SetFaults(gcpfake.Faults{}) },
		RawDigests:   func(*testing.T) map[string]string { return diskDigests("solo", solo.Disks...) },
		Leftovers:    func(*testing.T) []string { return f.srv.Leftovers() },
	})
}

// The must-show case: a two-disk instance exported through
// composite staging objects (verified by CRC32C) to an OVA and to qcow2
// disks; both verify, and every disk is the source disk's bytes.
func TestExportTwoDisksToOVAAndQCOW2(t *testing.T) {
	disktest.QemuImg(t)
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Fatal("sha256sum not found: install coreutils")
	}
	spec := testSpec(t)
	f := newFixture(t, spec, gcpfake.Faults{PendingPolls: 2, PartSize: 512 << 10, BuildDelay: 10 * time.Millisecond})
	p := f.connected(t)
	ctx := context.Background()
	pair := spec.Instances[0]
	srcDir := t.TempDir()
	var sources []string
	for i, d := range pair.Disks {
		src := filepath.Join(srcDir, "src-"+string(rune('0'+i))+".raw")
		if err := d.WriteRawImage(src); err != nil {
			t.Fatal(err)
		}
		sources = append(sources, src)
	}

	// OVA.
	ovaDir := t.TempDir()
	var mu sync.Mutex
	var items []string
	res, err := pipeline.Export(ctx, p, "pair", providers.ExportOptions{
		OutputDir: ovaDir, Format: providers.FormatOVA, JobID: "job-ova", ParallelDownloads: 2,
		Progress: func(r progress.Report) {
			if r.Phase == progress.PhasePreparing && r.Item != "" {
				mu.Lock()
				items = append(items, r.Item)
				mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if left := f.srv.Leftovers(); len(left) != 0 {
		t.Errorf("left on the platform after the OVA export: %v", left)
	}
	mu.Lock()
	if !slices.ContainsFunc(items, func(s string) bool { return strings.Contains(s, "SUCCESS") }) {
		t.Errorf("no build progress reported: %v", items)
	}
	mu.Unlock()
	archive := filepath.Join(ovaDir, res.OVAPath)
	af, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	first, err := tar.NewReader(af).Next()
	af.Close()
	if err != nil || !strings.HasSuffix(first.Name, ".ovf") {
		t.Fatalf("first OVA member %v (%v), want the descriptor", first, err)
	}
	ovaDisks := t.TempDir()
	rep, err := ova.Extract(ctx, archive, ovaDisks, ova.ExtractOptions{ReadOptions: ova.ReadOptions{RequireManifest: true}})
	if err != nil || !rep.Verified {
		t.Fatalf("ova verify: %v (verified %v)", err, rep != nil && rep.Verified)
	}
	for i := range pair.Disks {
		vmdk := filepath.Join(ovaDisks, "pair-disk-"+string(rune('0'+i))+".vmdk")
		disktest.Check(t, vmdk, "vmdk")
		disktest.Compare(t, vmdk, "vmdk", sources[i], "raw")
	}

	// Plain qcow2 disks, through a builder image of one's own on a
	// network and subnet of one's own.
	cfg := f.config()
	cfg.BuilderImage = "europe-docker.pkg.dev/compute-image-import/wrappers/gce_vm_image_export:release"
	cfg.Network, cfg.Subnet = "exports", "exports-eu"
	p = f.provider(t, cfg)
	if err := p.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Disconnect()
	dir := t.TempDir()
	res, err = pipeline.Export(ctx, p, "projects/"+testProject+"/zones/"+zoneB+"/instances/pair", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskQCOW2, JobID: "job-qcow2", ParallelDownloads: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(sha256sum, "--strict", "-c", res.Manifest)
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c %s: %v\n%s", res.Manifest, err, out)
	}
	for i := range pair.Disks {
		n := string(rune('0' + i))
		q := filepath.Join(dir, "pair-disk-"+n+".qcow2")
		disktest.Check(t, q, "qcow2")
		disktest.Compare(t, q, "qcow2", sources[i], "raw")
		disktest.Compare(t, q, "qcow2", filepath.Join(ovaDisks, "pair-disk-"+n+".vmdk"), "vmdk")
	}
	if left := f.srv.Leftovers(); len(left) != 0 {
		t.Errorf("left on the platform after the qcow2 export: %v", left)
	}
	// The images were composite objects (parts composed), read and
	// verified by their CRC32C.
	if n := f.srv.Stats()["objects.compose"]; n < 4 {
		t.Errorf("%d composes for 4 images: the staging objects were not composite", n)
	}

	// What the builds were asked: the builder gcloud runs, from the
	// snapshot, the timeout sized to the disk, labelled and tagged.
	builds := f.srv.Builds()
	if len(builds) != 4 {
		t.Fatalf("%d builds, want 2 per export", len(builds))
	}
	for _, b := range builds {
		args := strings.Join(b.Args, " ")
		for _, want := range []string{"-client_id=hypersdk", "-source_disk_snapshot=projects/" + testProject + "/global/snapshots/hypersdk-",
			"-destination_uri=gs://" + testBucket + "/exports/job-", "-zone=" + zoneB, "-labels=hypersdk-job=job-", "-timeout=3492s"} {
			if !strings.Contains(args, want) {
				t.Errorf("build %s args %q lack %q", b.ID, args, want)
			}
		}
		if strings.Contains(args, "job-qcow2") {
			if b.Builder != cfg.BuilderImage || !strings.Contains(args, "-network=exports") || !strings.Contains(args, "-subnet=exports-eu") {
				t.Errorf("build %s: builder %s args %q: want the configured builder, network and subnet", b.ID, b.Builder, args)
			}
		} else if b.Builder != DefaultBuilderImage {
			t.Errorf("build %s: builder %s", b.ID, b.Builder)
		}
		if b.Timeout != "1h0m0s" || !slices.Contains(b.Tags, "hypersdk") || b.Status != "SUCCESS" {
			t.Errorf("build %+v: want timeout 1h (30m + 1m per GiB, at least 1h), tag hypersdk, SUCCESS", b)
		}
	}
}

// A staging object whose bytes do not match its CRC32C is refused: the
// export fails for good, naming the checksum, and leaves nothing.
func TestCorruptObjectIsRefused(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, spec, gcpfake.Faults{PartSize: 1 << 20, CorruptObjects: true})
	p := f.connected(t)
	dir := t.TempDir()
	_, err := pipeline.Export(context.Background(), p, "solo", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-corrupt",
	})
	if !errors.Is(err, transfer.ErrDigestMismatch) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "CRC32C") {
		t.Fatalf("export of a corrupted object: %v, want a permanent CRC32C mismatch", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("a refused export left %v", entries)
	}
	if left := f.srv.Leftovers(); len(left) != 0 {
		t.Errorf("left on the platform: %v", left)
	}
}

// A build that fails reports the builder's own error line, and a
// permission refusal names the roles that are missing.
func TestBuildFailuresNameTheCause(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, spec, gcpfake.Faults{})
	p := f.connected(t)
	for _, tc := range []struct {
		faults gcpfake.Faults
		want   []string
	}{
		{gcpfake.Faults{BuildError: "ExportFailed: Cannot access Google APIs. Ensure that VPC settings allow VMs to access Google APIs"},
			[]string{"FAILURE", "ExportFailed: Cannot access Google APIs. Ensure that VPC settings allow VMs to access Google APIs"}},
		{gcpfake.Faults{DenyBuilderCompute: true},
			[]string{"Required 'compute.disks.create' permission", "roles/compute.admin", "roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator"}},
		{gcpfake.Faults{DenyComputeStorage: true},
			[]string{"ExportFailed: Failed to export disk source to GCS because default Compute Engine Service account does not have storage.objects.create permission",
				"roles/compute.storageAdmin", "roles/storage.objectAdmin"}},
		{gcpfake.Faults{DenySnapshots: true}, []string{"compute.snapshots.create", "roles/compute.storageAdmin"}},
	} {
		f.srv.SetFaults(tc.faults)
		_, err := pipeline.Export(context.Background(), p, "solo", providers.ExportOptions{
			OutputDir: t.TempDir(), Format: providers.FormatOVA, JobID: "job-fail",
		})
		if err == nil || !providers.IsPermanent(err) {
			t.Errorf("%+v: %v, want a permanent failure", tc.faults, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q lacks %q", tc.faults, err, w)
			}
		}
		if strings.Contains(err.Error(), "Privacy->") {
			t.Errorf("privacy markers left in %q", err)
		}
		if left := f.srv.Leftovers(); len(left) != 0 {
			t.Errorf("%+v: left on the platform: %v", tc.faults, left)
		}
	}
}

// Cancelling while the build runs cancels it and removes what it left:
// the builder's buffer disk (labelled with the job through -labels; a
// cancelled build's own clean-up never runs), the snapshot, the objects.
func TestCancelDuringBuildLeavesNothing(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, spec, gcpfake.Faults{BuildDelay: time.Hour})
	p := f.connected(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	_, err := pipeline.Export(ctx, p, "pair", providers.ExportOptions{
		OutputDir: t.TempDir(), Format: providers.FormatOVA, JobID: "job-cancel",
		Progress: func(r progress.Report) {
			if strings.Count(r.Item, "WORKING") == 2 {
				once.Do(cancel)
			}
		},
	})
	if !errors.Is(err, context.Canceled) || providers.IsPermanent(err) {
		t.Fatalf("cancelled export: %v, want a transient context.Canceled", err)
	}
	if left := f.srv.Leftovers(); len(left) != 0 {
		t.Errorf("left on the platform: %v\n%s", left, f.logs)
	}
	for _, b := range f.srv.Builds() {
		if b.Status != "CANCELLED" {
			t.Errorf("build %s is %s, want CANCELLED", b.ID, b.Status)
		}
	}
}

// A second attempt of a job (a retry, a daemon restarted after kill -9
// that never ran Cleanup) reuses the job's snapshots and finished images
// instead of snapshotting and building again; then the sweep removes what
// a job that is over left, and keeps a live job's.
func TestResumeAndSweep(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, spec, gcpfake.Faults{PendingPolls: 1})
	p := f.connected(t)
	ctx := context.Background()
	opts := providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-resume"}
	first, err := p.PrepareExport(ctx, "pair", opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Disks) != 2 || first.Disks[1].Capacity != 1<<30 {
		t.Fatalf("disks %+v", first.Disks)
	}
	stats := f.srv.Stats()
	second, err := p.PrepareExport(ctx, "1001", opts) // by id
	if err != nil {
		t.Fatal(err)
	}
	after := f.srv.Stats()
	if after["snapshots.insert"] != stats["snapshots.insert"] || after["builds.create"] != stats["builds.create"] {
		t.Errorf("the second attempt snapshotted or built again: %v then %v", stats, after)
	}
	rc, err := second.Disks[0].Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if got, want := hex.EncodeToString(h.Sum(nil)), diskDigests("pair", spec.Instances[0].Disks...)["pair-disk-0.raw"]; got != want {
		t.Errorf("resumed disk 0 reads %s, want %s", got, want)
	}

	// A live job's export, and an image a builder left for the dead one.
	if _, err := p.PrepareExport(ctx, "solo", providers.ExportOptions{Format: providers.FormatOVA, JobID: "job-live"}); err != nil {
		t.Fatal(err)
	}
	f.srv.AddImage("leaked-image", map[string]string{LabelJob: "job-resume"})
	deleted, err := p.SweepOrphans(ctx, func(job string) bool { return job == "job-live" })
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) == 0 {
		t.Fatal("the sweep deleted nothing")
	}
	for _, l := range f.srv.Leftovers() {
		if !strings.Contains(l, "job-live") && !strings.Contains(l, "/exports/job-live/") {
			t.Errorf("left after the sweep: %s", l)
		}
	}
	if len(f.srv.Leftovers()) == 0 {
		t.Error("the sweep removed the live job's resources")
	}
	p.cleanupJob("job-live", p.log)
	if left := f.srv.Leftovers(); len(left) != 0 {
		t.Errorf("left after the live job's clean-up: %v", left)
	}
}
