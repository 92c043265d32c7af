// Package aws is the AWS EC2 provider: discovery of instances and their
// EBS volumes, and the platform side of an export through the EBS direct
// APIs — platform talk only, on aws-sdk-go-v2 (service/ec2, service/ebs).
//
// Configuration (Config, Decode) takes a region, an optional static key
// pair (the secret is a config.Secret: never printed, logged or marshalled)
// or else the SDK's default credential chain with an optional profile, and
// optional endpoint overrides checked by the project's SSRF guard. The
// clients use the project's HTTP client (transfer.NewHTTPClient) and the
// SDK's standard retryer with the project's backoff policy and without the
// client-side retry quota, which many concurrent block fetches would
// exhaust in one throttling burst.
//
// Discovery: ListVMs, GetVM and SearchVMs page through DescribeInstances;
// vCPUs and memory come from DescribeInstanceTypes (cached per type), disk
// sizes from DescribeVolumes. An instance is found by its id or by the
// value of its Name tag (ErrNotFound, or ErrAmbiguous when several live
// instances carry it); terminated instances are never reported. VMInfo
// maps state to power state (running on, stopped off, transitions
// unknown), platform details to GuestOS, boot mode to firmware, the
// availability zone to Datacenter, and every EBS volume to a DiskInfo
// (device name as Label, volume id as Path); Labels hold the tags plus the
// instance type, architecture, platform and zone under "ec2:" keys.
//
// Snapshots: an export snapshots all of the instance's volumes with one
// CreateSnapshots call (crash-consistent: one instant across the volumes,
// the instance keeps running — what --snapshot means on EC2), each
// snapshot tagged hypersdk:job=<job id> and hypersdk:vm=<instance id> in
// that call, and waits with EC2's own SnapshotCompleted waiter, bounded.
// The set is deleted on a context of its own whatever ended the export,
// and creation that fails deletes what carries the job's tag, since a lost
// answer may hide a created snapshot. DeleteOrphanSnapshots (the daemon's
// providers.OrphanSweeper, run at its start and every few minutes) sweeps
// up snapshots of jobs that are over (after a kill -9).
//
// Blocks: listSnapshotBlocks reads every page of ListSnapshotBlocks and
// refuses a self-contradicting answer; fetchBlock returns one block's bytes
// and its x-amz-Checksum SHA-256 with its errors classified (throttling,
// 5xx, short or corrupted bodies retryable; everything else
// providers.Permanent).
//
// Export (PrepareExport): the instance is looked up like GetVM, then the
// job's snapshot set is found — snapshots tagged hypersdk:job=<job id>, of
// this instance, one per attached volume, none failed (still pending ones
// are waited for) — or, when there is none or it is unusable, created.
// Reusing the set is what lets an export interrupted by a failure, a
// cancellation of the attempt or a kill -9 of the daemon resume: the same
// snapshot ids, hence the same block tokens and the pipeline's journal
// (keyed by the snapshot id) still valid. Each volume is handed to the
// pipeline as a raw providers.BlockSource exactly VolumeSize GiB long with
// 512 KiB blocks: List pages through ListSnapshotBlocks as the download
// advances; Fetch makes one GetSnapshotBlock attempt (the pipeline retries,
// with adaptive concurrency) and returns the x-amz-Checksum SHA-256, which
// the pipeline verifies before writing; EBS throttling
// (ThrottlingException, RequestThrottledException,
// ConcurrentLimitExceededException) is reported as providers.ErrThrottled,
// requests refused for what they are as providers.Permanent, everything
// else as retryable. The VM metadata for the descriptor is the instance's
// (name, vCPUs, memory, firmware, platform as guest OS, NICs), its disks'
// capacities those of the snapshots. Cleanup deletes the set on a context
// of its own; every output format and disk format the pipeline writes is
// offered.
//
// --snapshot and --power-off: the EBS direct APIs read snapshots only, so
// every export reads from a crash-consistent snapshot set, whatever the
// instance's state — a running instance keeps running, as after a power
// loss at one instant across its volumes. The snapshot option is accepted
// and changes nothing. Power-off is refused (SupportsPowerOff false):
// stopping an EC2 instance changes its public address and loses its
// instance store, which an export must not do behind its owner's back;
// for an application-consistent copy, stop the instance first.
//
// StartDemo serves a demo account from awsfake, this package's test target.
package aws
