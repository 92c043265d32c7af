package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hypersdk/hypersdk/providers"
)

// Tags on every snapshot the provider creates, set in the CreateSnapshots
// call itself so that no snapshot ever exists untagged: TagJob names the
// job that owns it (DeleteOrphanSnapshots finds it by this tag), TagVM the
// instance it was taken of.
const (
	TagJob = "hypersdk:job"
	TagVM  = "hypersdk:vm"
)

// snapshotSet is a crash-consistent set of snapshots of one instance's
// volumes, taken at one instant for one job.
type snapshotSet struct {
	jobID, instanceID string
	// snapshots are in the order EC2 reported them; byVolume finds one.
	snapshots []volumeSnapshot
}

// volumeSnapshot is one completed snapshot of the set.
type volumeSnapshot struct {
	id, volumeID string
	sizeGiB      int32
}

// byVolume returns the snapshot of volumeID.
func (s *snapshotSet) byVolume(volumeID string) (volumeSnapshot, bool) {
	i := slices.IndexFunc(s.snapshots, func(v volumeSnapshot) bool { return v.volumeID == volumeID })
	if i < 0 {
		return volumeSnapshot{}, false
	}
	return s.snapshots[i], true
}

func (s *snapshotSet) ids() []string {
	out := make([]string, len(s.snapshots))
	for i, v := range s.snapshots {
		out[i] = v.id
	}
	return out
}

// createSnapshotSet snapshots every EBS volume of the instance at one
// instant (CreateSnapshots: crash-consistent across the volumes, the
// instance keeps running), tagged for jobID, and waits until all are
// completed. When it fails — cancellation included — it has deleted what
// it created, found by the job's tag: an answer lost to a timeout or a
// cancel does not leave an unknown snapshot behind.
func (p *Provider) createSnapshotSet(ctx context.Context, instanceID, jobID string) (*snapshotSet, error) {
	if jobID == "" {
		return nil, providers.Permanent(fmt.Errorf("%w: snapshots of %s need a job id to be tagged with", providers.ErrInvalidArgument, instanceID))
	}
	c, _, err := p.clients()
	if err != nil {
		return nil, err
	}
	log := p.log.With("job_id", jobID, "instance", instanceID)
	out, err := c.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{
		InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String(instanceID)},
		Description:           aws.String(fmt.Sprintf("hypersdk export job %s of %s", jobID, instanceID)),
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeSnapshot,
			Tags: []ec2types.Tag{
				{Key: aws.String(TagJob), Value: aws.String(jobID)},
				{Key: aws.String(TagVM), Value: aws.String(instanceID)},
			},
		}},
	})
	if err != nil {
		p.deleteSnapshots(jobID, nil)
		if apiCode(err) == "InvalidInstanceID.NotFound" || apiCode(err) == "InvalidInstanceID.Malformed" {
			return nil, fmt.Errorf("aws %s: snapshot instance %s: %w", p.name, instanceID, providers.ErrNotFound)
		}
		return nil, p.apiError("snapshot instance "+instanceID, err)
	}
	set := &snapshotSet{jobID: jobID, instanceID: instanceID}
	for _, si := range out.Snapshots {
		set.snapshots = append(set.snapshots, volumeSnapshot{
			id: aws.ToString(si.SnapshotId), volumeID: aws.ToString(si.VolumeId), sizeGiB: aws.ToInt32(si.VolumeSize),
		})
	}
	if len(set.snapshots) == 0 {
		return nil, providers.Permanent(fmt.Errorf("aws %s: instance %s has no EBS volume to snapshot", p.name, instanceID))
	}
	log.Info("snapshots created", "snapshots", set.ids())
	if err := p.waitSnapshots(ctx, set.ids()); err != nil {
		p.deleteSnapshots(jobID, set.ids())
		return nil, err
	}
	log.Info("snapshots completed", "snapshots", set.ids())
	return set, nil
}

// waitSnapshots waits with EC2's own waiter until every snapshot is
// completed, at most tuning.snapshotTimeout; a snapshot in state error
// fails the wait.
func (p *Provider) waitSnapshots(ctx context.Context, ids []string) error {
	c, _, err := p.clients()
	if err != nil {
		return err
	}
	w := ec2.NewSnapshotCompletedWaiter(c, func(o *ec2.SnapshotCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = p.tune.snapshotPollMin, p.tune.snapshotPollMax
	})
	err = w.Wait(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: ids}, p.tune.snapshotTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("aws %s: wait for snapshots %v: %w", p.name, ids, context.Cause(ctx))
		}
		return p.apiError(fmt.Sprintf("wait for snapshots %v", ids), err)
	}
	return nil
}

// deleteSnapshotSet deletes the set; the export calls it when the job
// ends, however it ends.
func (p *Provider) deleteSnapshotSet(set *snapshotSet) error {
	return p.deleteSnapshots(set.jobID, set.ids())
}

// deleteSnapshots deletes the snapshots ids and every other snapshot
// tagged with jobID. It runs on a context of its own, bounded by
// tuning.cleanupTimeout, because the export's context is often the reason
// it runs (a cancelled job). A snapshot already gone is not an error.
func (p *Provider) deleteSnapshots(jobID string, ids []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.tune.cleanupTimeout)
	defer cancel()
	log := p.log.With("job_id", jobID)
	c, _, err := p.clients()
	if err != nil {
		return err
	}
	tagged, err := p.findSnapshots(ctx, c, []ec2types.Filter{{Name: aws.String("tag:" + TagJob), Values: []string{ec2Literal(jobID)}}})
	if err != nil {
		log.Warn("looking up the job's snapshots failed; deleting those known", "err", err)
	}
	for _, s := range tagged {
		if id := aws.ToString(s.SnapshotId); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	var errs []error
	for _, id := range ids {
		if err := p.deleteSnapshot(ctx, c, id); err != nil {
			errs = append(errs, err)
			log.Warn("deleting snapshot failed; the orphan sweep will retry", "snapshot", id, "err", err)
			continue
		}
		log.Info("snapshot deleted", "snapshot", id)
	}
	return errors.Join(errs...)
}

func (p *Provider) deleteSnapshot(ctx context.Context, c *ec2.Client, id string) error {
	_, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
	if err != nil && apiCode(err) != "InvalidSnapshot.NotFound" {
		return p.apiError("delete snapshot "+id, err)
	}
	return nil
}

// findSnapshots lists the account's own snapshots matching filters, all
// pages.
func (p *Provider) findSnapshots(ctx context.Context, c *ec2.Client, filters []ec2types.Filter) ([]ec2types.Snapshot, error) {
	var out []ec2types.Snapshot
	pages := ec2.NewDescribeSnapshotsPaginator(c, &ec2.DescribeSnapshotsInput{
		OwnerIds: []string{"self"}, Filters: filters, MaxResults: aws.Int32(1000),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, p.apiError("describe snapshots", err)
		}
		out = append(out, page.Snapshots...)
	}
	return out, nil
}

// DeleteOrphanSnapshots deletes the snapshots that exports left behind:
// those tagged hypersdk:job whose job isLive reports over (a daemon killed
// mid-export, a deletion that failed). The daemon calls it at start and
// periodically; isLive must answer true for every job that may still run,
// including jobs it does not know if other daemons export from the same
// account. It returns the ids deleted; a failed deletion is reported and
// the sweep goes on.
func (p *Provider) DeleteOrphanSnapshots(ctx context.Context, isLive func(jobID string) bool) ([]string, error) {
	c, _, err := p.clients()
	if err != nil {
		return nil, err
	}
	found, err := p.findSnapshots(ctx, c, []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{TagJob}}})
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, s := range found {
		job := ""
		for _, t := range s.Tags {
			if aws.ToString(t.Key) == TagJob {
				job = aws.ToString(t.Value)
			}
		}
		if job == "" || isLive(job) {
			continue
		}
		id := aws.ToString(s.SnapshotId)
		if err := p.deleteSnapshot(ctx, c, id); err != nil {
			errs = append(errs, err)
			continue
		}
		p.log.Info("orphaned snapshot deleted", "snapshot", id, "job_id", job)
		deleted = append(deleted, id)
	}
	return deleted, errors.Join(errs...)
}

// SweepOrphans implements providers.OrphanSweeper: DeleteOrphanSnapshots,
// then the export tasks of jobs that are over (cancelled while running;
// their objects deleted when export_task.delete_object says so).
func (p *Provider) SweepOrphans(ctx context.Context, isLive func(jobID string) bool) ([]string, error) {
	snaps, serr := p.DeleteOrphanSnapshots(ctx, isLive)
	tasks, terr := p.sweepExportTasks(ctx, isLive)
	return append(snaps, tasks...), errors.Join(serr, terr)
}
