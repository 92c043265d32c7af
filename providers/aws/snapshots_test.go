package aws

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/aws/awsfake"
)

func TestSnapshotSetTaggedCompletedAndDeleted(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{PendingPolls: 3}, 0)
	p := f.connected(t)
	set, err := p.createSnapshotSet(context.Background(), "i-0000000000000000a", "job-1")
	if err != nil {
		t.Fatal(err)
	}
	alive := f.srv.AliveSnapshots()
	if len(alive) != 2 || len(set.snapshots) != 2 {
		t.Fatalf("one snapshot per volume wanted: set %+v, alive %+v", set.snapshots, alive)
	}
	for _, s := range alive {
		if s.State != "completed" || s.Tags[TagJob] != "job-1" || s.Tags[TagVM] != "i-0000000000000000a" {
			t.Errorf("snapshot %+v: want completed, tagged with job and instance", s)
		}
		v, ok := set.byVolume(s.VolumeID)
		if !ok || v.id != s.ID || v.sizeGiB != s.VolumeSize {
			t.Errorf("set does not hold %+v: %+v", s, set.snapshots)
		}
	}
	if err := p.deleteSnapshotSet(set); err != nil {
		t.Fatal(err)
	}
	if alive := f.srv.AliveSnapshots(); len(alive) != 0 {
		t.Errorf("left after deletion: %+v", alive)
	}
}

// A cancelled wait deletes the pending snapshots, although the export's
// context is gone.
func TestSnapshotSetCancelledLeavesNothing(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{PendingFor: time.Hour}, 0)
	p := f.connected(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.createSnapshotSet(ctx, "i-0000000000000000a", "job-cancel")
		errc <- err
	}()
	for len(f.srv.AliveSnapshots()) < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if alive := f.srv.AliveSnapshots(); len(alive) != 0 {
		t.Errorf("left after cancellation: %+v", alive)
	}
}

// A wait that gives up (the bound passed) fails and deletes the set; an
// instance that does not exist is ErrNotFound and leaves nothing.
func TestSnapshotSetFailureLeavesNothing(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{PendingFor: time.Hour}, 0)
	p := f.connected(t)
	p.tune.snapshotTimeout = 100 * time.Millisecond
	if _, err := p.createSnapshotSet(context.Background(), "i-0000000000000000a", "job-slow"); err == nil {
		t.Fatal("a snapshot set pending past the bound was accepted")
	}
	if alive := f.srv.AliveSnapshots(); len(alive) != 0 {
		t.Errorf("left after a failed wait: %+v", alive)
	}
	_, err := p.createSnapshotSet(context.Background(), "i-00000000000000fff", "job-missing")
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("snapshot of a missing instance: %v", err)
	}
	if _, err := p.createSnapshotSet(context.Background(), "i-0000000000000000a", ""); !errors.Is(err, providers.ErrInvalidArgument) {
		t.Errorf("no job id: %v", err)
	}
}

func TestDeleteOrphanSnapshotsOnlyOfFinishedJobs(t *testing.T) {
	f := newFixture(t, testSpec(t), awsfake.Faults{}, 0)
	p := f.connected(t)
	ctx := context.Background()
	for _, job := range []struct{ id, instance string }{
		{"job-live", "i-0000000000000000a"}, {"job-over", "i-10000000000000001"}, {"job-over", "i-10000000000000002"},
	} {
		if _, err := p.createSnapshotSet(ctx, job.instance, job.id); err != nil {
			t.Fatal(err)
		}
	}
	var asked []string
	deleted, err := p.DeleteOrphanSnapshots(ctx, func(job string) bool {
		asked = append(asked, job)
		return job == "job-live"
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 2 {
		t.Errorf("deleted %v, want the two snapshots of job-over", deleted)
	}
	alive := f.srv.AliveSnapshots()
	if len(alive) != 2 {
		t.Fatalf("alive after the sweep: %+v", alive)
	}
	for _, s := range alive {
		if s.Tags[TagJob] != "job-live" || slices.Contains(deleted, s.ID) {
			t.Errorf("sweep kept %+v", s)
		}
	}
	if !slices.Contains(asked, "job-over") || !slices.Contains(asked, "job-live") {
		t.Errorf("isLive asked about %v", asked)
	}
}
