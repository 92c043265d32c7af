package aws

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// exportSpec: "pair", a stopped instance with two sample volumes of 1 GiB
// (holes, random regions, a written zero block, data ending unaligned),
// and "solo", a running one with one volume.
func exportSpec(t *testing.T) awsfake.Spec {
	t.Helper()
	var vols []*awsfake.Volume
	for i, id := range []string{"vol-0e0000000000000a1", "vol-0e0000000000000a2", "vol-0e0000000000000b1"} {
		v, err := awsfake.NewSampleVolume(id, 1, uint64(10+i))
		if err != nil {
			t.Fatal(err)
		}
		vols = append(vols, v)
	}
	return awsfake.Spec{
		Volumes: vols,
		Instances: []awsfake.Instance{
			{
				ID: "i-0e0000000000000a0", Type: "m5.large", State: "stopped", BootMode: "uefi",
				Tags:    map[string]string{"Name": "pair"},
				Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: vols[0].ID}, {Name: "/dev/sdf", VolumeID: vols[1].ID}},
			},
			{
				ID: "i-0e0000000000000b0", Type: "t3.medium", BootMode: "legacy-bios",
				Tags:    map[string]string{"Name": "solo"},
				Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: vols[2].ID}},
			},
		},
	}
}

// volumeDigests returns the SHA-256 of the volumes' contents, keyed by the
// raw file name a disks/raw export of the instance writes.
func volumeDigests(spec awsfake.Spec, vm string, volumeIDs ...string) map[string]string {
	out := map[string]string{}
	for i, id := range volumeIDs {
		for _, v := range spec.Volumes {
			if v.ID == id {
				sum := v.SHA256()
				out[vm+"-disk-"+string(rune('0'+i))+".raw"] = hex.EncodeToString(sum[:])
			}
		}
	}
	return out
}

func aliveIDs(srv *awsfake.Server) []string {
	var ids []string
	for _, s := range srv.AliveSnapshots() {
		ids = append(ids, s.ID+" ("+s.State+", job "+s.Tags[TagJob]+")")
	}
	return ids
}

func TestConformance(t *testing.T) {
	spec := exportSpec(t)
	f := newFixture(t, spec, awsfake.Faults{PendingPolls: 1}, 700)
	providertest.Run(t, providertest.Target{
		New:      func(t *testing.T) providers.Provider { return f.provider(t, testSecret) },
		ExportVM: "pair",
		// Slow blocks, so that the cancel lands while they download.
		BeforeCancel: func(*testing.T) { f.srv.SetFaults(awsfake.Faults{Latency: 20 * time.Millisecond}) },
		AfterCancel:  func(*testing.T) { f.srv.SetFaults(awsfake.Faults{}) },
		RawDigests: func(*testing.T) map[string]string {
			return volumeDigests(spec, "pair", spec.Volumes[0].ID, spec.Volumes[1].ID)
		},
		Leftovers: func(*testing.T) []string { return aliveIDs(f.srv) },
	})
}

// TestExportDisksRawUnderFaults is the must-show case: a
// two-volume instance exported as raw disks while a fifth of the EBS
// requests are throttled and 2% of the blocks arrive corrupted once.
func TestExportDisksRawUnderFaults(t *testing.T) {
	disktest.QemuImg(t)
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Fatal("sha256sum not found: install coreutils")
	}
	spec := exportSpec(t)
	// Enough blocks that 2% of them is several (about 8 of 414): 128 and
	// 64 MiB of random data more, past the sample layout's first region.
	for i, n := range []int64{128 << 20, 64 << 20} {
		if err := spec.Volumes[i].WriteRandom(200*awsfake.BlockSize+4096, n, uint64(20+i)); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, spec, awsfake.Faults{ThrottleEBS: 0.2, CorruptBlocks: 0.02, PendingPolls: 2, Seed: 7}, 0)
	p := f.connected(t)
	dir := t.TempDir()
	res, err := pipeline.Export(context.Background(), p, "pair", providers.ExportOptions{
		OutputDir: dir, Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-faults",
	})
	if err != nil {
		t.Fatal(err)
	}
	st := f.srv.Stats()
	if st.Throttled["GetSnapshotBlock"] == 0 || st.Corrupted == 0 {
		t.Fatalf("faults not exercised: %d block fetches throttled, %d corrupted", st.Throttled["GetSnapshotBlock"], st.Corrupted)
	}
	t.Logf("GetSnapshotBlock: %d requests, %d throttled, %d corrupted", st.Requests["GetSnapshotBlock"], st.Throttled["GetSnapshotBlock"], st.Corrupted)

	for i, v := range spec.Volumes[:2] {
		name := "pair-disk-" + string(rune('0'+i)) + ".raw"
		got := filepath.Join(dir, name)
		want := filepath.Join(t.TempDir(), "want.raw")
		if err := v.WriteRawImage(want); err != nil {
			t.Fatal(err)
		}
		disktest.Compare(t, got, "raw", want, "raw")
		fi, err := os.Stat(got)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != v.Size() {
			t.Errorf("%s: %d bytes, want VolumeSize %d", name, fi.Size(), v.Size())
		}
		// Holes kept: only the written blocks holding data take space
		// (the explicitly zeroed block is not written), plus slack for
		// the file system's allocation granularity.
		data := int64(len(v.WrittenBlocks())-1) * awsfake.BlockSize
		if alloc := disktest.Allocated(t, got); alloc > data+(1<<20) {
			t.Errorf("%s: %d bytes allocated for %d bytes of data blocks: holes filled", name, alloc, data)
		}
	}
	check := exec.Command(sha256sum, "--strict", "-c", res.Manifest)
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c %s: %v\n%s", res.Manifest, err, out)
	}
	if left := aliveIDs(f.srv); len(left) != 0 {
		t.Errorf("snapshots alive after the export: %v", left)
	}
}

// TestExportFailureAndCancelLeaveNoSnapshot: a permanent failure mid-way
// (the snapshot deleted under the export) and a cancellation mid-transfer
// both end with the job's snapshots deleted.
func TestExportFailureAndCancelLeaveNoSnapshot(t *testing.T) {
	spec := exportSpec(t)
	f := newFixture(t, spec, awsfake.Faults{Latency: 10 * time.Millisecond}, 0)
	p := f.connected(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	_, err := pipeline.Export(ctx, p, "pair", providers.ExportOptions{
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
	if left := aliveIDs(f.srv); len(left) != 0 {
		t.Errorf("snapshots alive after a cancelled export: %v", left)
	}

	// The snapshots vanish once the first block arrived: every later
	// request is refused for good.
	var deleted sync.Once
	_, err = pipeline.Export(context.Background(), p, "pair", providers.ExportOptions{
		OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-fail",
		Progress: func(r progress.Report) {
			if r.BytesDone > 0 {
				deleted.Do(func() {
					go func() {
						if _, err := p.DeleteOrphanSnapshots(context.Background(), func(string) bool { return false }); err != nil {
							t.Error(err)
						}
					}()
				})
			}
		},
	})
	if err == nil || !providers.IsPermanent(err) {
		t.Errorf("export whose snapshots vanished: %v, want a permanent failure", err)
	}
	if left := aliveIDs(f.srv); len(left) != 0 {
		t.Errorf("snapshots alive after a failed export: %v", left)
	}
}

// TestPrepareExportResumesTheJobsSnapshotSet: a second attempt of a job
// (the job engine's retry, a daemon restarted after kill -9 without
// running Cleanup) reads the same snapshots — same ids, so the same block
// tokens and the pipeline's journal apply — without creating new ones.
func TestPrepareExportResumesTheJobsSnapshotSet(t *testing.T) {
	spec := exportSpec(t)
	f := newFixture(t, spec, awsfake.Faults{PendingPolls: 1}, 0)
	p := f.connected(t)
	ctx := context.Background()
	opts := providers.ExportOptions{Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: "job-resume"}

	first, err := p.PrepareExport(ctx, "pair", opts)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ex *providers.Export) []string {
		var out []string
		for _, d := range ex.Disks {
			out = append(out, d.Blocks.ID)
			if d.Capacity != 1<<30 || d.Format != providers.SourceRaw || d.Blocks.BlockSize != awsfake.BlockSize {
				t.Errorf("disk %s: capacity %d, format %s, block size %d", d.Name, d.Capacity, d.Format, d.Blocks.BlockSize)
			}
		}
		return out
	}
	firstIDs := ids(first)
	if len(firstIDs) != 2 || first.VM.Disks[1].CapacityBytes != 1<<30 {
		t.Fatalf("first attempt: snapshots %v, VM disks %+v", firstIDs, first.VM.Disks)
	}
	// No Cleanup: the attempt died.
	second, err := p.PrepareExport(ctx, "i-0e0000000000000a0", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(second); !slices.Equal(got, firstIDs) {
		t.Errorf("second attempt reads %v, first read %v", got, firstIDs)
	}
	if n := f.srv.Stats().Requests["CreateSnapshots"]; n != 1 {
		t.Errorf("CreateSnapshots called %d times, want 1", n)
	}

	// A set that lost a snapshot is replaced, not half reused.
	c, _, err := p.clients()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.deleteSnapshot(ctx, c, firstIDs[1]); err != nil {
		t.Fatal(err)
	}
	third, err := p.PrepareExport(ctx, "pair", opts)
	if err != nil {
		t.Fatal(err)
	}
	thirdIDs := ids(third)
	if slices.Contains(thirdIDs, firstIDs[0]) || slices.Contains(thirdIDs, firstIDs[1]) {
		t.Errorf("a broken set was reused: %v after %v", thirdIDs, firstIDs)
	}
	if alive := f.srv.AliveSnapshots(); len(alive) != 2 {
		t.Errorf("alive after replacing the set: %v", aliveIDs(f.srv))
	}
	third.Cleanup()
	if left := aliveIDs(f.srv); len(left) != 0 {
		t.Errorf("snapshots alive after Cleanup: %v", left)
	}
}
