package aws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// blockSize is the EBS direct APIs' block size; every snapshot lists its
// blocks at this size, and the pipeline's block grid is cut to it.
const blockSize = 512 << 10

// ebsThrottleCodes are the EBS direct refusals that mean "slower": the
// pipeline hears them as providers.ErrThrottled and lowers its
// concurrency.
var ebsThrottleCodes = map[string]bool{
	"ThrottlingException":              true,
	"RequestThrottledException":        true,
	"ConcurrentLimitExceededException": true,
}

// GetExportCapabilities implements providers.Provider: every packaging and
// disk format the pipeline writes, from a snapshot set read through the
// EBS direct APIs. Snapshot is accepted (an export always reads from a
// crash-consistent snapshot set); power_off is not (see the package doc).
func (p *Provider) GetExportCapabilities() providers.ExportCapabilities {
	return providers.ExportCapabilities{
		Formats:          providers.Formats(),
		DiskFormats:      providers.DiskFormats(),
		Compression:      []string{"gzip", "zstd"},
		SupportsSnapshot: true, ParallelDownloads: true, Resumable: true,
	}
}

// PrepareExport implements providers.Exporter. It looks the instance up,
// finds the snapshot set an earlier attempt of the same job left (so that
// an export resumed after a failure or a kill -9 reads the same snapshots,
// with the same block tokens, and the pipeline's journal still applies) or
// creates one, and hands each volume over as a block source read through
// the EBS direct APIs. Cleanup deletes the set.
func (p *Provider) PrepareExport(ctx context.Context, identifier string, opts providers.ExportOptions) (_ *providers.Export, err error) {
	if err := p.GetExportCapabilities().Validate(opts); err != nil {
		return nil, providers.Permanent(err)
	}
	method, err := providers.ResolveMethod(p, opts.Method)
	if err != nil {
		return nil, providers.Permanent(err)
	}
	jobID := opts.JobID
	if jobID == "" {
		// A caller without a job (a library user) still gets tagged,
		// findable snapshots and tasks, but no resume across calls; a
		// daemon's orphan sweep on the same account takes such a job for
		// over.
		jobID = "untracked-" + randomHex(8)
	}
	log := opts.Log().With("provider", p.name, "job_id", jobID, "method", method)
	if method == MethodExportTask {
		return p.prepareExportTask(ctx, identifier, opts, jobID, log)
	}
	opts.Report(progress.Report{Phase: progress.PhaseConnecting})
	vm, err := p.GetVM(ctx, identifier)
	if err != nil {
		return nil, err
	}
	if len(vm.Disks) == 0 {
		return nil, providers.Permanent(fmt.Errorf("aws %s: export %s: %w: the instance has no EBS volume (instance store is not exportable)",
			p.name, vm.ID, providers.ErrUnsupported))
	}
	log = log.With("instance", vm.ID)

	opts.Report(progress.Report{Phase: progress.PhasePreparing})
	set, err := p.snapshotSetFor(ctx, vm, jobID, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := p.deleteSnapshotSet(set); derr != nil {
				log.Warn("deleting the snapshot set failed; the orphan sweep will retry", "err", derr)
			}
		}
	}()

	out := &providers.Export{VM: cloneVM(vm)}
	for i := range out.VM.Disks {
		d := &out.VM.Disks[i]
		snap, ok := set.byVolume(d.Path)
		if !ok {
			// Attached after the lookup: the set does not hold it.
			return nil, fmt.Errorf("aws %s: export %s: volume %s (%s) is not in the snapshot set %v", p.name, vm.ID, d.Path, d.Label, set.ids())
		}
		d.CapacityBytes = int64(snap.sizeGiB) * gibibyte
		out.Disks = append(out.Disks, providers.DiskSource{
			Name:     fmt.Sprintf("disk-%d", i),
			Format:   providers.SourceRaw,
			Capacity: d.CapacityBytes,
			Size:     -1,
			Blocks:   p.blockSource(snap),
		})
	}
	out.Cleanup = func() {
		if err := p.deleteSnapshotSet(set); err != nil {
			log.Warn("deleting the snapshot set failed; the orphan sweep will retry", "err", err)
		}
	}
	return out, nil
}

// snapshotSetFor returns the job's snapshot set of the instance: the one
// an earlier attempt of the job created, when it covers every volume and
// none failed (waiting for it to complete if it is still pending), else a
// new one — after deleting what an earlier attempt left unusable.
func (p *Provider) snapshotSetFor(ctx context.Context, vm *providers.VMInfo, jobID string, log *slog.Logger) (*snapshotSet, error) {
	c, _, err := p.clients()
	if err != nil {
		return nil, err
	}
	found, err := p.findSnapshots(ctx, c, []ec2types.Filter{{Name: aws.String("tag:" + TagJob), Values: []string{ec2Literal(jobID)}}})
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return p.createSnapshotSet(ctx, vm.ID, jobID)
	}
	set, why := reusableSet(found, vm, jobID)
	if set == nil {
		log.Info("the job's earlier snapshots are not a usable set; replacing them", "reason", why)
		if err := p.deleteSnapshots(jobID, nil); err != nil {
			return nil, err
		}
		return p.createSnapshotSet(ctx, vm.ID, jobID)
	}
	log.Info("resuming from the job's snapshot set", "snapshots", set.ids())
	if err := p.waitSnapshots(ctx, set.ids()); err != nil {
		return nil, err
	}
	return set, nil
}

// reusableSet makes a set of the job's snapshots found on the platform
// when they are one per volume of vm, of vm, none failed; else it says
// why not.
func reusableSet(found []ec2types.Snapshot, vm *providers.VMInfo, jobID string) (*snapshotSet, string) {
	set := &snapshotSet{jobID: jobID, instanceID: vm.ID}
	for _, s := range found {
		id, vol := aws.ToString(s.SnapshotId), aws.ToString(s.VolumeId)
		if tag(s.Tags, TagVM) != vm.ID {
			return nil, fmt.Sprintf("snapshot %s is of instance %q", id, tag(s.Tags, TagVM))
		}
		if s.State == ec2types.SnapshotStateError {
			return nil, fmt.Sprintf("snapshot %s failed", id)
		}
		if _, dup := set.byVolume(vol); dup {
			return nil, fmt.Sprintf("two snapshots of volume %s", vol)
		}
		set.snapshots = append(set.snapshots, volumeSnapshot{id: id, volumeID: vol, sizeGiB: aws.ToInt32(s.VolumeSize)})
	}
	for _, d := range vm.Disks {
		if _, ok := set.byVolume(d.Path); !ok {
			return nil, fmt.Sprintf("no snapshot of volume %s", d.Path)
		}
	}
	if len(set.snapshots) != len(vm.Disks) {
		return nil, "snapshots of volumes no longer attached"
	}
	return set, ""
}

func tag(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// blockSource serves one snapshot's blocks to the pipeline. Its ID is the
// snapshot id: a resumed export reads the same snapshot, so the journal
// of the earlier attempt applies.
func (p *Provider) blockSource(snap volumeSnapshot) *providers.BlockSource {
	capacity := int64(snap.sizeGiB) * gibibyte
	return &providers.BlockSource{
		ID:        snap.id,
		BlockSize: blockSize,
		Timeout:   p.tune.blockTimeout,
		List: func(ctx context.Context) iter.Seq2[providers.Block, error] {
			return func(yield func(providers.Block, error) bool) {
				errStop := errors.New("stop")
				err := p.walkSnapshotBlocks(ctx, snap.id, func(pg blockPage) error {
					if pg.blockSize != blockSize || pg.volumeSize != capacity {
						return providers.Permanent(fmt.Errorf("aws %s: snapshot %s lists %d-byte blocks of a %d-byte volume, want %d-byte blocks of %d bytes",
							p.name, snap.id, pg.blockSize, pg.volumeSize, blockSize, capacity))
					}
					for _, b := range pg.blocks {
						if !yield(providers.Block{Offset: int64(b.index) * blockSize, Length: blockSize, Token: b.token}, nil) {
							return errStop
						}
					}
					return nil
				})
				if err != nil && !errors.Is(err, errStop) {
					yield(providers.Block{}, throttled(err))
				}
			}
		},
		Fetch: func(ctx context.Context, b providers.Block, dst []byte) (providers.BlockChecksums, error) {
			if b.Length != blockSize || b.Offset%blockSize != 0 || int64(len(dst)) != b.Length {
				return providers.BlockChecksums{}, providers.Permanent(fmt.Errorf("aws %s: block of %d bytes at %d: not an EBS block", p.name, b.Length, b.Offset))
			}
			sb := snapshotBlock{index: int32(b.Offset / blockSize), token: b.Token}
			// One attempt per call: the pipeline retries, and hears the
			// throttling it must slow down for.
			_, sum, err := p.fetchBlock(ctx, snap.id, blockSize, sb, dst, func(o *ebs.Options) { o.RetryMaxAttempts = 1 })
			if err != nil {
				return providers.BlockChecksums{}, throttled(err)
			}
			return providers.BlockChecksums{SHA256: sum[:]}, nil
		},
	}
}

// throttled marks the EBS throttling refusals with providers.ErrThrottled.
func throttled(err error) error {
	if ebsThrottleCodes[apiCode(err)] {
		return fmt.Errorf("%w: %w", providers.ErrThrottled, err)
	}
	return err
}

// cloneVM copies vm deeply enough to change its disks.
func cloneVM(vm *providers.VMInfo) *providers.VMInfo {
	c := *vm
	c.Disks = slices.Clone(vm.Disks)
	c.NICs = slices.Clone(vm.NICs)
	return &c
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
