package hyperv

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// TestExportGen2 is the must-show case, once per way files come
// back: gen2 (Generation 2, running, one dynamic VHDX and one differencing
// disk) exported from a checkpoint to an OVA (verified, descriptor first)
// and to qcow2 disks (manifest verified, qemu-img check clean, content
// identical to the merged source), leaving nothing on the host.
func TestExportGen2(t *testing.T) {
	disktest.QemuImg(t)
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Fatal("sha256sum not found: install coreutils")
	}
	for _, method := range []string{"sftp", "smb"} {
		t.Run(method, func(t *testing.T) {
			f := newFixture(t, method)
			p := f.provider(t)
			ctx := context.Background()

			dir := t.TempDir()
			res, err := pipeline.Export(ctx, p, "gen2", providers.ExportOptions{
				OutputDir: dir, Format: providers.FormatOVA, JobID: "job-ova-" + method,
			})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := ova.Validate(ctx, filepath.Join(dir, res.OVAPath), ova.ReadOptions{})
			if err != nil {
				t.Fatalf("ova validate: %v", err)
			}
			if !rep.Verified || len(rep.Members) == 0 || !strings.HasSuffix(rep.Members[0].Name, ".ovf") {
				t.Fatalf("ova: verified %v, members %+v", rep.Verified, rep.Members)
			}
			if res.VM.Firmware != "efi" || res.VM.CPUs != 4 || res.VM.MemoryMiB != 8192 || len(res.VM.Disks) != 2 {
				t.Errorf("VM metadata %+v", res.VM)
			}
			if left := f.leftovers(t); len(left) != 0 {
				t.Fatalf("left on the host after the OVA export: %v", left)
			}

			dir = t.TempDir()
			res, err = pipeline.Export(ctx, p, "gen2", providers.ExportOptions{
				OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskQCOW2, JobID: "job-qcow2-" + method,
			})
			if err != nil {
				t.Fatal(err)
			}
			check := exec.Command(sha256sum, "--strict", "-c", res.Manifest)
			check.Dir = dir
			if out, err := check.CombinedOutput(); err != nil {
				t.Errorf("sha256sum -c: %v\n%s", err, out)
			}
			for i, want := range f.want {
				got := filepath.Join(dir, "gen2-disk-"+string(rune('0'+i))+".qcow2")
				disktest.Check(t, got, "qcow2")
				disktest.Compare(t, got, "qcow2", want.raw(t), "raw")
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".hyperv-") {
					t.Errorf("local copy %s left in the output", e.Name())
				}
			}
			if left := f.leftovers(t); len(left) != 0 {
				t.Fatalf("left on the host after the qcow2 export: %v", left)
			}
			// The export ran from a checkpoint and merged the chain in
			// the staging copy.
			var names []string
			for _, c := range f.host.Calls() {
				names = append(names, c.Name)
			}
			calls := strings.Join(names, " ")
			for _, want := range []string{"checkpoint export-checkpoint stage", "remove-checkpoint remove-staging"} {
				if !strings.Contains(calls, want) {
					t.Errorf("scripts run: %s; want %q in order", calls, want)
				}
			}
			if strings.Contains(f.log.String(), testPassword) {
				t.Error("the WinRM password is in the log")
			}
		})
	}
}

// A VM that is off is exported with Export-VM, no checkpoint.
func TestExportOffVM(t *testing.T) {
	f := newFixture(t, "sftp")
	p := f.provider(t)
	dir := t.TempDir()
	if _, err := pipeline.Export(context.Background(), p, "off-1", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-off",
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.host.Calls() {
		if c.Name == "checkpoint" {
			t.Fatal("a VM that is off was checkpointed")
		}
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}

// TestFailureAndCancelLeaveNothing: a cmdlet failing mid-way and a
// cancellation while the host exports both end with the checkpoint and
// the staging folder gone; the error is the cmdlet's, structured.
func TestFailureAndCancelLeaveNothing(t *testing.T) {
	f := newFixture(t, "sftp")
	p := f.provider(t)

	f.host.FailNext("stage", "Convert-VHD: There is not enough space on the disk.")
	_, err := pipeline.Export(context.Background(), p, "gen2", providers.ExportOptions{
		OutputDir: t.TempDir(), Format: providers.FormatOVA, JobID: "job-fail",
	})
	var se *ScriptError
	if !errors.As(err, &se) || se.Script != "stage" || !strings.Contains(se.Message, "not enough space") {
		t.Fatalf("err = %v, want the stage script's structured error", err)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Fatalf("left after a failure: %v", left)
	}

	f.host.Block("export-checkpoint", true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for !hasCall(f, "export-checkpoint") {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	_, err = pipeline.Export(ctx, p, "gen2", providers.ExportOptions{
		OutputDir: t.TempDir(), Format: providers.FormatOVA, JobID: "job-cancel",
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	f.host.Block("export-checkpoint", false)
	if left := f.leftovers(t); len(left) != 0 {
		t.Fatalf("left after a cancellation: %v", left)
	}
}

func hasCall(f *fixture, name string) bool {
	for _, c := range f.host.Calls() {
		if c.Name == name {
			return true
		}
	}
	return false
}

// TestSweepRemovesWhatAKilledExportLeft: an export prepared and never
// cleaned up (the daemon killed) leaves its checkpoint and staging folder;
// the sweep keeps them while the job is live and removes them once it is
// over.
func TestSweepRemovesWhatAKilledExportLeft(t *testing.T) {
	f := newFixture(t, "sftp")
	p := f.provider(t)
	ctx := context.Background()
	if _, err := p.PrepareExport(ctx, "gen2", providers.ExportOptions{OutputDir: t.TempDir(), JobID: "job-killed"}); err != nil {
		t.Fatal(err)
	}
	if left := f.leftovers(t); len(left) < 2 {
		t.Fatalf("the prepared export left %v, want its checkpoint and folder", left)
	}
	deleted, err := p.SweepOrphans(ctx, func(string) bool { return true })
	if err != nil || len(deleted) != 0 {
		t.Fatalf("sweep of a live job deleted %v (%v)", deleted, err)
	}
	// A restarted daemon: a new provider.
	p2 := f.provider(t)
	deleted, err = p2.SweepOrphans(ctx, func(id string) bool { return id != "job-killed" })
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 2 {
		t.Errorf("deleted %v, want the checkpoint and the folder", deleted)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Fatalf("left after the sweep: %v", left)
	}
}

// TestFetchResumesOnTheJobsNextAttempt: what an attempt killed mid-fetch
// (no Cleanup ran) leaves — the job's checkpoint, its complete
// staging folder and the local part file — is reused by the next
// attempt: no second checkpoint or export, and the download continues
// from the part file's bytes.
func TestFetchResumesOnTheJobsNextAttempt(t *testing.T) {
	f := newFixture(t, "sftp")
	p := f.provider(t)
	dir := t.TempDir()
	log := &syncBuffer{}
	opts := providers.ExportOptions{OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-resume",
		BandwidthLimit: 4 << 20, Logger: slog.New(slog.NewTextHandler(log, nil))}

	// Attempt 1, "killed" while disk 0 comes back: prepared, its fetch
	// cancelled part-way, and no Cleanup.
	ctx, cancel := context.WithCancel(context.Background())
	o1 := opts
	o1.Progress = func(r progress.Report) {
		if r.Phase == progress.PhasePreparing && r.ItemBytes >= 2<<20 {
			cancel()
		}
	}
	exp1, err := p.PrepareExport(context.Background(), "gen2", o1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exp1.Disks[0].Open(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch: %v", err)
	}
	parts, _ := filepath.Glob(filepath.Join(dir, ".hyperv-job-resume-disk-0.vhdx.part"))
	if len(parts) != 1 {
		t.Fatal("no part file kept for the next attempt")
	}
	if n := countCalls(f, "checkpoint"); n != 1 {
		t.Fatalf("%d checkpoints after attempt 1", n)
	}

	// Attempt 2 (the retry): the same job, the staged disks reused.
	opts.BandwidthLimit = 0
	_, err = pipeline.Export(context.Background(), p, "gen2", opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := countCalls(f, "checkpoint"); n != 1 {
		t.Errorf("%d checkpoints: the retry made its own instead of reusing the job's", n)
	}
	if n := countCalls(f, "export-checkpoint"); n != 1 {
		t.Errorf("%d checkpoint exports: the retry staged again", n)
	}
	if !strings.Contains(log.String(), `msg="resuming from partial file" file=.hyperv-job-resume-disk-0.vhdx`) {
		t.Errorf("disk 0's download did not resume from its part file:\n%s", log.String())
	}
	for i, want := range f.want {
		disktest.Compare(t, filepath.Join(dir, "gen2-disk-"+string(rune('0'+i))+".raw"), "raw", want.raw(t), "raw")
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}

func countCalls(f *fixture, name string) (n int) {
	for _, c := range f.host.Calls() {
		if c.Name == name {
			n++
		}
	}
	return n
}
