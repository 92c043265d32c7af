package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/disk/disktest"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

// An AWS export whose daemon is SIGKILLed mid-transfer resumes on the
// restarted daemon from the same snapshot set and the block journal:
// the disk is the volume's bytes, and the blocks fetched twice are only
// those the journal had not recorded yet.
//
// The fake EBS endpoint lives in this process, so it outlives the daemon
// and counts every GetSnapshotBlock of both runs. The job's bandwidth
// limit paces the transfer at blockRate blocks a second, which bounds
// what a kill can lose: the journal records finished blocks every 2 s
// (or 64 MiB, more than this pace reaches in 2 s), so at most 2 s of
// blocks are written but not yet journaled, plus a little: the rate
// limiter's one-block burst, the requests in flight (10 ms each at 10 a
// second) and the time a sync of the part file takes. With 400 data
// blocks at 10 a second that is 20 + 6 blocks, 6.5% of the listed ones.
// The kill comes wherever the sync cycle is; the bound holds at its worst
// point. (Shrinking the share means a longer transfer: the lag is 2 s of
// it.)
//
// The test mostly waits on the paced transfer, so it runs in parallel
// with the package's other tests.
func TestAWSExportResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	const (
		keyID, secret, region = "AKIAKILL9TEST0000001", "kill9/secret/key/for/the/fake/endpoint00", "eu-west-3"
		dataBlocks            = 400
		blockRate             = 10 // blocks a second
		journalLagBlocks      = 2 * blockRate
		slackBlocks           = 6
		maxRefetched          = journalLagBlocks + slackBlocks // 6.5% of dataBlocks
	)
	// Every other block written: data blocks with holes between them.
	vol := awsfake.NewVolume("vol-0f00000000000000b", 1)
	for i := range int64(dataBlocks) {
		if err := vol.WriteRandom(2*i*awsfake.BlockSize, awsfake.BlockSize, 9); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := awsfake.New(awsfake.Options{
		AccessKeyID: keyID, SecretAccessKey: secret, Region: region,
		Faults: awsfake.Faults{Latency: 10 * time.Millisecond},
		Spec: awsfake.Spec{
			Volumes: []*awsfake.Volume{vol},
			Instances: []awsfake.Instance{{
				ID: "i-0f00000000000000b", Type: "t3.micro", State: "stopped",
				Tags: map[string]string{"Name": "killme"}, Devices: []awsfake.Device{{Name: "/dev/xvda", VolumeID: vol.ID}},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	listed := len(vol.WrittenBlocks())
	if listed != dataBlocks {
		t.Fatalf("the volume lists %d blocks, want %d", listed, dataBlocks)
	}

	dmn := newDaemon(t, fmt.Sprintf(`
jobs:
  heartbeat_stale: 5s
providers:
  - name: aws1
    type: aws
    region: %s
    access_key_id: %s
    secret_access_key: {env: TEST_AWS_SECRET}
    endpoints: {ec2: %s, ebs: %s}
`, region, keyID, srv.URL(), srv.URL()), "HYPERVISORD_TEST_REAL_PROVIDERS=1", "TEST_AWS_SECRET="+secret)
	dmn.start()
	var j apitypes.Job
	if code := dmn.call("POST", "/api/v1/jobs", map[string]any{
		"provider": "aws1", "vm": "killme", "format": "disks", "disk_format": "raw",
		"bandwidth_limit": blockRate * awsfake.BlockSize,
	}, &j); code != 201 {
		t.Fatalf("submit: %d\n%s", code, dmn.out.String())
	}
	outDir := j.Spec.Options.OutputDir

	snapshotID := func() string {
		alive := srv.AliveSnapshots()
		if len(alive) != 1 {
			return ""
		}
		return alive[0].ID
	}
	fetches := func(id string) (total int) {
		for _, n := range srv.BlockFetches(id) {
			total += n
		}
		return total
	}
	// Kill once a good share of the blocks is fetched and the journal
	// holds at least one batch, whatever the point of its sync cycle.
	var snap string
	waitUntil(t, "40% of the blocks fetched and journaled in part", 2*time.Minute, func() bool {
		if snap == "" {
			snap = snapshotID()
			return false
		}
		return fetches(snap) >= dataBlocks*4/10 && journalHasBatch(t, outDir)
	})
	dmn.kill()
	run1 := fetches(snap)
	if run1 >= listed {
		t.Fatalf("all %d blocks were fetched before the kill; the test proves nothing", run1)
	}

	dmn.start()
	deadline := time.Now().Add(3 * time.Minute)
	for !j.State.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("export still %s after the restart:\n%s", j.State, dmn.out.String())
		}
		time.Sleep(100 * time.Millisecond)
		dmn.call("GET", "/api/v1/jobs/"+j.ID, nil, &j)
	}
	if j.State != apitypes.JobSucceeded {
		t.Fatalf("export %s: %s\n%s", j.State, j.Error, dmn.out.String())
	}
	if j.Attempt < 2 {
		t.Errorf("the job finished in attempt %d; the kill did not interrupt it", j.Attempt)
	}

	perBlock := srv.BlockFetches(snap)
	total := fetches(snap)
	refetched := total - listed
	t.Logf("blocks listed %d; fetched %d before the kill, %d after it; %d fetched twice (%.1f%%, bound %d)",
		listed, run1, total-run1, refetched, 100*float64(refetched)/float64(listed), maxRefetched)
	for _, idx := range vol.WrittenBlocks() {
		if perBlock[idx] == 0 {
			t.Errorf("block %d was never fetched", idx)
		}
	}
	if refetched > maxRefetched {
		t.Errorf("%d blocks fetched twice, more than the %d the journal's lag explains", refetched, maxRefetched)
	}
	if n := srv.Stats().Requests["CreateSnapshots"]; n != 1 {
		t.Errorf("CreateSnapshots called %d times; the rescued attempt must reuse the job's snapshot set", n)
	}
	if alive := srv.AliveSnapshots(); len(alive) != 0 {
		t.Errorf("snapshots alive after the job: %+v", alive)
	}

	disks, err := filepath.Glob(filepath.Join(outDir, "*.raw"))
	if err != nil || len(disks) != 1 {
		t.Fatalf("output disks %v (%v) in %s", disks, err, outDir)
	}
	fi, err := os.Stat(disks[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != vol.Size() {
		t.Errorf("disk of %d bytes, want the volume's %d", fi.Size(), vol.Size())
	}
	want := filepath.Join(t.TempDir(), "volume.raw")
	if err := vol.WriteRawImage(want); err != nil {
		t.Fatal(err)
	}
	disktest.Compare(t, disks[0], "raw", want, "raw")
	if left, _ := filepath.Glob(filepath.Join(outDir, "*.journal")); len(left) != 0 {
		t.Errorf("journals left after success: %v", left)
	}
}

// journalHasBatch reports whether a block journal in dir records at least
// one batch: it is longer than its two header lines.
func journalHasBatch(t *testing.T, dir string) bool {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.journal"))
	if err != nil || len(names) == 0 {
		return false
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		return false
	}
	first := bytes.IndexByte(b, '\n')
	if first < 0 {
		return false
	}
	second := bytes.IndexByte(b[first+1:], '\n')
	return second >= 0 && len(b) > first+1+second+1
}
