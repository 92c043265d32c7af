package azure

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// slowBlobs is an azblobfake whose Get Blob answers wait while slow is
// set, so that a cancellation lands mid-download.
func slowBlobs(t testing.TB, slow *atomic.Bool) *blobBackend {
	return fakeBlobs(t, azblobfake.Options{Fault: func(r azblobfake.Request) azblobfake.Fault {
		if slow.Load() && r.Op == azblobfake.OpGetBlob {
			time.Sleep(20 * time.Millisecond)
		}
		return azblobfake.Fault{}
	}})
}

func leftovers(t testing.TB, f *fixture) {
	t.Helper()
	if left := f.arm.Leftovers(); len(left) != 0 {
		t.Errorf("left on the platform: %v", left)
	}
}

// The conformance suite, on pair: a deallocated VM whose two disks are
// granted directly (tagged, granted, revoked, untagged).
func TestConformance(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	var slow atomic.Bool
	f := newFixture(t, spec, slowBlobs(t, &slow), azurefake.Faults{})
	providertest.Run(t, providertest.Target{
		New:          func(t *testing.T) providers.Provider { return f.provider(t, f.config(testSecret)) },
		ExportVM:     "pair",
		BeforeCancel: func(*testing.T) { slow.Store(true) },
		AfterCancel:  func(*testing.T) { slow.Store(false) },
		RawDigests:   func(*testing.T) map[string]string { return rawDigests(spec, "pair", "pair-os", "pair-data") },
		Leftovers:    func(*testing.T) []string { return f.arm.Leftovers() },
	})
}

// The must-show case, against Azurite and against azblobfake: the
// running three-disk VM web-1 (each disk read from a snapshot; sparse page
// blobs with data at unaligned ends and in the last pages) exported to an
// OVA that ova.Validate (hyperctl ova verify) passes and whose tar lists
// the descriptor first, and to qcow2 disks whose manifest verifies, each
// qemu-img check-clean and compare-identical to its source disk and to the
// disk inside the OVA; nothing is left on the platform.
func TestMultiDiskExportOVAAndQcow2(t *testing.T) {
	t.Parallel()
	disktest.QemuImg(t)
	for _, backend := range []string{"azurite", "azblobfake"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var blobs *blobBackend
			if backend == "azurite" {
				blobs = azuriteBlobs(t)
			} else {
				blobs = fakeBlobs(t, azblobfake.Options{})
			}
			spec := testSpec(t)
			f := newFixture(t, spec, blobs, azurefake.Faults{})
			p := f.connected(t)
			ctx := context.Background()
			disks := []string{"web-1-os", "web-1-data0", "web-1-data1"}

			ovaDir := t.TempDir()
			res, err := pipeline.Export(ctx, p, "web-1", providers.ExportOptions{OutputDir: ovaDir, Format: providers.FormatOVA, JobID: "job-ova-" + backend})
			if err != nil {
				t.Fatalf("OVA export: %v", err)
			}
			leftovers(t, f)
			if n := f.arm.Stats().SnapshotsCreated; n != 3 {
				t.Errorf("%d snapshots made for a running VM's three disks, want 3", n)
			}
			archive := filepath.Join(ovaDir, res.OVAPath)
			rep, err := ova.Validate(ctx, archive, ova.ReadOptions{RequireManifest: true})
			if err != nil || !rep.Verified {
				t.Fatalf("ova verify %s: %v (verified %v)", archive, err, rep != nil && rep.Verified)
			}
			out, err := exec.Command("tar", "-tf", archive).Output()
			if err != nil {
				t.Fatal(err)
			}
			members := strings.Fields(string(out))
			if len(members) == 0 || !strings.HasSuffix(members[0], ".ovf") {
				t.Errorf("tar -tf lists %v: the descriptor must come first", members)
			}
			extracted := t.TempDir()
			if _, err := ova.Extract(ctx, archive, extracted, ova.ExtractOptions{}); err != nil {
				t.Fatal(err)
			}

			qDir := t.TempDir()
			qres, err := pipeline.Export(ctx, p, "/prod-rg/web-1", providers.ExportOptions{
				OutputDir: qDir, Format: providers.FormatDisks, DiskFormat: providers.DiskQCOW2, JobID: "job-qcow2-" + backend,
			})
			if err != nil {
				t.Fatalf("qcow2 export: %v", err)
			}
			leftovers(t, f)
			check := exec.Command("sha256sum", "--strict", "-c", qres.Manifest)
			check.Dir = qDir
			if out, err := check.CombinedOutput(); err != nil {
				t.Errorf("sha256sum -c %s: %v\n%s", qres.Manifest, err, out)
			}
			for i, name := range disks {
				q := filepath.Join(qDir, fmt.Sprintf("web-1-disk-%d.qcow2", i))
				disktest.Check(t, q, "qcow2")
				src := filepath.Join(t.TempDir(), name+".raw")
				if err := diskOf(spec, name).Content.WriteRawImage(src); err != nil {
					t.Fatal(err)
				}
				disktest.Compare(t, q, "qcow2", src, "raw")
				disktest.Compare(t, q, "qcow2", filepath.Join(extracted, fmt.Sprintf("web-1-disk-%d.vmdk", i)), "vmdk")
				if info := disktest.QemuInfo(t, q, "qcow2"); info.VirtualSize != diskOf(spec, name).Content.Size() {
					t.Errorf("%s: virtual size %d, the disk is %d", q, info.VirtualSize, diskOf(spec, name).Content.Size())
				}
			}
		})
	}
}

// A fixed VHD export is what Azure imports back: the disk's bytes, a
// whole number of MiB, and a footer qemu-img reads.
func TestExportFixedVHD(t *testing.T) {
	t.Parallel()
	disktest.QemuImg(t)
	spec := testSpec(t)
	f := newFixture(t, spec, fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{})
	p := f.connected(t)
	dir := t.TempDir()
	if _, err := pipeline.Export(context.Background(), p, "pair", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskVHD, VHDType: providers.VHDFixed, JobID: "job-vhd",
	}); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"pair-os", "pair-data"} {
		got := filepath.Join(dir, fmt.Sprintf("pair-disk-%d.vhd", i))
		src := filepath.Join(t.TempDir(), "src.raw")
		if err := diskOf(spec, name).Content.WriteRawImage(src); err != nil {
			t.Fatal(err)
		}
		disktest.Compare(t, got, "vpc", src, "raw")
		fi, err := os.Stat(got)
		if err != nil {
			t.Fatal(err)
		}
		if want := diskOf(spec, name).Content.Size() + 512; fi.Size() != want {
			t.Errorf("%s: %d bytes, want the disk's %d and the footer", got, fi.Size(), want)
		}
	}
	leftovers(t, f)
}

// An incremental snapshot (db-1's Premium SSD v2 disk, of a stopped but
// allocated VM) is waited for until its copy completes, then read.
func TestIncrementalSnapshotWaitsForItsCopy(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	f := newFixture(t, spec, fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{SnapshotCopyPolls: 3})
	p := f.connected(t)
	dir := t.TempDir()
	res, err := pipeline.Export(context.Background(), p, "db-1", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-incremental",
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, f.logs.String())
	}
	want := rawDigests(spec, "db-1", "db-1-os")
	for _, file := range res.Files {
		if w, ok := want[file.Path]; ok && w != file.SHA256 {
			t.Errorf("%s: %s, the disk is %s", file.Path, file.SHA256, w)
		}
	}
	if !strings.Contains(f.logs.String(), "incremental=true") || !strings.Contains(f.logs.String(), "waiting for the incremental snapshot's copy") {
		t.Error("the Premium SSD v2 disk was not snapshotted incrementally and waited for")
	}
	leftovers(t, f)
}

// Grants are revoked and snapshots deleted after a cancellation
// mid-transfer, a grant refused for the third disk (the first two disks'
// snapshots and grants undone), a snapshot whose creation answer was lost
// (found by its recorded name and deleted), and a download that fails for
// good (the blob refuses every read).
func TestNothingLeftAfterFailureOrCancel(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	var slow, broken atomic.Bool
	blobs := fakeBlobs(t, azblobfake.Options{Fault: func(r azblobfake.Request) azblobfake.Fault {
		if r.Op == azblobfake.OpGetBlob && r.HasRange && r.RangeEnd-r.RangeStart >= 4096 {
			if broken.Load() {
				return azblobfake.Fault{Status: 400, Code: "InvalidRange"}
			}
			if slow.Load() {
				time.Sleep(20 * time.Millisecond)
			}
		}
		return azblobfake.Fault{}
	}})
	f := newFixture(t, spec, blobs, azurefake.Faults{})
	p := f.connected(t)
	ctx := context.Background()

	t.Run("cancel", func(t *testing.T) {
		slow.Store(true)
		defer slow.Store(false)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var once sync.Once
		_, err := pipeline.Export(cctx, p, "web-1", providers.ExportOptions{
			OutputDir: t.TempDir(), Format: providers.FormatOVA, JobID: "job-cancel",
			Progress: func(r progress.Report) {
				if r.BytesDone > 0 {
					once.Do(cancel)
				}
			},
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled export: %v, want context.Canceled", err)
		}
		leftovers(t, f)
	})
	t.Run("grant refused", func(t *testing.T) {
		f.arm.SetFaults(azurefake.Faults{RefuseGrantsOn: "web-1-data1"})
		_, err := pipeline.Export(ctx, p, "web-1", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, JobID: "job-grant"})
		if err == nil || statusOf(err) != 409 {
			t.Fatalf("export with a refused grant: %v", err)
		}
		leftovers(t, f)
	})
	t.Run("snapshot answer lost", func(t *testing.T) {
		f.arm.SetFaults(azurefake.Faults{LoseSnapshotAnswers: 1000})
		before := f.arm.Stats().SnapshotsDeleted
		_, err := pipeline.Export(ctx, p, "web-1", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, JobID: "job-lost"})
		if err == nil {
			t.Fatal("export succeeded although a snapshot answer was lost")
		}
		if n := f.arm.Stats().SnapshotsDeleted - before; n != 3 {
			t.Errorf("%d snapshots deleted, want the 3 made (one of them never answered)", n)
		}
		leftovers(t, f)
	})
	t.Run("download fails for good", func(t *testing.T) {
		f.arm.SetFaults(azurefake.Faults{})
		broken.Store(true)
		defer broken.Store(false)
		_, err := pipeline.Export(ctx, p, "pair", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-broken"})
		if err == nil || !providers.IsPermanent(err) {
			t.Fatalf("export whose blob refuses every read: %v, want a permanent failure", err)
		}
		leftovers(t, f)
	})
}

// A SAS that expires mid-download is renewed and the export finishes
// without reading again any range it had finished: the blob server saw
// every cell read successfully exactly once.
func TestSASExpiryMidDownloadRegrants(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	var mu sync.Mutex
	served := map[string]int{} // blob/range → Get Blob requests served
	blobs := fakeBlobs(t, azblobfake.Options{
		ExpireSASAfter: 4,
		Inspect: func(r azblobfake.Request) {
			if r.Op == azblobfake.OpGetBlob && r.HasRange && r.RangeEnd-r.RangeStart+1 > 512 {
				mu.Lock()
				served[fmt.Sprintf("%s[%d-%d]", r.Blob, r.RangeStart, r.RangeEnd)]++
				mu.Unlock()
			}
		},
	})
	f := newFixture(t, spec, blobs, azurefake.Faults{})
	p := f.connected(t)
	dir := t.TempDir()
	res, err := pipeline.Export(context.Background(), p, "web-1", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-expiry",
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, f.logs.String())
	}
	want := rawDigests(spec, "web-1", "web-1-os", "web-1-data0", "web-1-data1")
	for _, file := range res.Files {
		if w, ok := want[file.Path]; ok && w != file.SHA256 {
			t.Errorf("%s: %s, the disk is %s", file.Path, file.SHA256, w)
		}
	}
	st := f.arm.Stats()
	if st.Grants <= 3 {
		t.Fatalf("%d grants for 3 disks: no SAS expired, the test proves nothing", st.Grants)
	}
	if n := blobs.fake.Stats().AuthFailures; n == 0 {
		t.Error("the blob server refused no expired SAS")
	}
	mu.Lock()
	defer mu.Unlock()
	for r, n := range served {
		if n != 1 {
			t.Errorf("range %s served %d times: a finished range was read again", r, n)
		}
	}
	t.Logf("%d grants (%d renewals) for 3 disks; %d ranges, each served once; %d refusals", st.Grants, st.Grants-3, len(served), blobs.fake.Stats().AuthFailures)
	leftovers(t, f)
}

// Throttling (a fifth of the blob requests answered 503 ServerBusy or 500
// InternalError) slows the download down and it finishes with the right
// bytes.
func TestThrottledBlobService(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	blobs := fakeBlobs(t, azblobfake.Options{FailRate: 0.2, Seed: 5})
	f := newFixture(t, spec, blobs, azurefake.Faults{})
	p := f.connected(t)
	res, err := pipeline.Export(context.Background(), p, "pair", providers.ExportOptions{
		OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-throttle",
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, f.logs.String())
	}
	want := rawDigests(spec, "pair", "pair-os", "pair-data")
	for _, file := range res.Files {
		if w, ok := want[file.Path]; ok && w != file.SHA256 {
			t.Errorf("%s: %s, the disk is %s", file.Path, file.SHA256, w)
		}
	}
	if blobs.fake.Stats().Faults == 0 {
		t.Error("no request was throttled")
	}
	leftovers(t, f)
}

// When Get Page Ranges fails for good, every cell is read instead (as
// AzCopy does) and the disk still comes out right.
func TestPageRangesFailureReadsEveryCell(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	var gets atomic.Int64
	blobs := fakeBlobs(t, azblobfake.Options{Fault: func(r azblobfake.Request) azblobfake.Fault {
		switch r.Op {
		case azblobfake.OpGetPageRanges:
			return azblobfake.Fault{Status: 500, Code: "OperationTimedOut"}
		case azblobfake.OpGetBlob:
			if r.RangeEnd-r.RangeStart+1 > 512 {
				gets.Add(1)
			}
		}
		return azblobfake.Fault{}
	}})
	f := newFixture(t, spec, blobs, azurefake.Faults{})
	p := f.connected(t)
	p.tune.cellSize = 1 << 20
	res, err := pipeline.Export(context.Background(), p, "pair", providers.ExportOptions{
		OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-fallback",
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, f.logs.String())
	}
	want := rawDigests(spec, "pair", "pair-os", "pair-data")
	for _, file := range res.Files {
		if w, ok := want[file.Path]; ok && w != file.SHA256 {
			t.Errorf("%s: %s, the disk is %s", file.Path, file.SHA256, w)
		}
	}
	if cells := int64(40 + 24); gets.Load() != cells {
		t.Errorf("%d ranged reads, want every one of the %d cells", gets.Load(), cells)
	}
	if !strings.Contains(f.logs.String(), "reading every cell instead") {
		t.Error("the fallback was not logged")
	}
	leftovers(t, f)
}

// A blob whose last 512 bytes are no valid fixed VHD footer is refused
// with an error that says so, and nothing is left.
func TestBadFooterIsRefused(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, spec, fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{BadFooter: true})
	p := f.connected(t)
	_, err := pipeline.Export(context.Background(), p, "pair", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, JobID: "job-footer"})
	if err == nil || !strings.Contains(err.Error(), "not a valid fixed VHD footer") || !strings.Contains(err.Error(), "checksum") || !providers.IsPermanent(err) {
		t.Fatalf("export of a blob with a bad footer: %v", err)
	}
	leftovers(t, f)
}

// A grant whose SAS points anywhere but the configured blob endpoint is
// refused before it is used, without quoting it.
func TestSASElsewhereIsRefused(t *testing.T) {
	spec := testSpec(t)
	f := newFixture(t, spec, fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{})
	cfg := f.config(testSecret)
	cfg.Endpoints.Blob = "https://*.blob.core.windows.net"
	p := f.provider(t, cfg)
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := pipeline.Export(context.Background(), p, "pair", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, JobID: "job-elsewhere"})
	if err == nil || !strings.Contains(err.Error(), "endpoints.blob") || !providers.IsPermanent(err) {
		t.Fatalf("export with a SAS elsewhere: %v", err)
	}
	for _, sig := range f.arm.SASSignatures() {
		if strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), "sig=") {
			t.Errorf("the error quotes the SAS: %v", err)
		}
	}
	leftovers(t, f)
}

// A second attempt of a job (the job engine's retry; a daemon restarted
// after kill -9, which ran no Cleanup) reuses the job's snapshots — same
// ids, so the pipeline's journal applies — revoking the grants the dead
// attempt left and granting anew; the direct grants of a deallocated VM's
// disks are found by their tag the same way.
func TestSecondAttemptReusesTheJobsSnapshots(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	f := newFixture(t, spec, fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{})
	p := f.connected(t)
	ctx := context.Background()
	for _, vm := range []string{"web-1", "pair"} {
		opts := providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-resume-" + vm}
		first, err := p.PrepareExport(ctx, vm, opts)
		if err != nil {
			t.Fatal(err)
		}
		created := f.arm.Stats().SnapshotsCreated
		second, err := p.PrepareExport(ctx, vm, opts) // the first attempt died: no Cleanup
		if err != nil {
			t.Fatalf("second attempt: %v\n%s", err, f.logs.String())
		}
		ids := func(ex *providers.Export) []string {
			var out []string
			for _, d := range ex.Disks {
				if d.Blocks.ID == "" {
					t.Errorf("%s: disk %s has no resumable id", vm, d.Name)
				}
				out = append(out, d.Blocks.ID)
			}
			return out
		}
		if a, b := ids(first), ids(second); !slices.Equal(a, b) {
			t.Errorf("%s: the second attempt reads %v, the first read %v", vm, b, a)
		}
		if n := f.arm.Stats().SnapshotsCreated; n != created {
			t.Errorf("%s: the second attempt made %d snapshots", vm, n-created)
		}
		second.Cleanup()
		leftovers(t, f)
	}
}

// The orphan sweep removes what a dead job left — its snapshots (revoked,
// deleted) and its direct grants (revoked, untagged) — and keeps what a
// live job holds.
func TestSweepOrphans(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	f := newFixture(t, spec, fakeBlobs(t, azblobfake.Options{}), azurefake.Faults{})
	p := f.connected(t)
	ctx := context.Background()
	var live *providers.Export
	for _, c := range []struct{ vm, job string }{{"web-1", "job-dead-1"}, {"pair", "job-dead-2"}, {"db-1", "job-live"}} {
		ex, err := p.PrepareExport(ctx, c.vm, providers.ExportOptions{Format: providers.FormatOVF, JobID: c.job})
		if err != nil {
			t.Fatal(err)
		}
		if c.job == "job-live" {
			live = ex
		}
	}
	if n := len(f.arm.Leftovers()); n != 3+3+2+2+1+1 {
		t.Fatalf("before the sweep: %v", f.arm.Leftovers())
	}
	done, err := p.SweepOrphans(ctx, func(job string) bool { return job == "job-live" })
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 3+2 {
		t.Errorf("swept %v, want web-1's 3 snapshots and pair's 2 disks", done)
	}
	left := f.arm.Leftovers()
	if len(left) != 2 || strings.Count(strings.Join(left, " "), "hypersdk-job-live-") != 2 {
		t.Errorf("after the sweep, want only the live job's snapshot and grant: %v", left)
	}
	live.Cleanup()
	leftovers(t, f)
}
