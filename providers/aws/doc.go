// Package aws is the AWS EC2 provider: discovery of instances and their
// EBS volumes, and the platform side of an export through the EBS direct
// APIs or a VM Export task — platform talk only, on aws-sdk-go-v2
// (service/ec2, service/ebs, service/s3).
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
// # Export methods
//
// The provider offers two (providers.MethodLister): MethodEBSDirect
// ("ebs-direct", the default: every instance, described above) and
// MethodExportTask ("export-task").
//
// export-task has VM Export (CreateInstanceExportTask) write the instance's
// image to the S3 bucket of the configuration's export_task block (bucket;
// prefix, default hypersdk/; disk_image_format vmdk (default), raw or vhd;
// container "" (default) or ova; delete_object, default false;
// target_environment, by default microsoft for vhd and vmware otherwise)
// and downloads it. Without a bucket the method is refused at once.
//
// Up-front refusals: before anything is created, the instance is checked
// against what VM Export refuses ("Considerations for instance export"),
// from DescribeInstances, DescribeVolumes and DescribeImages: Windows or
// SQL Server licensed through AWS (platform, platform details, or the
// billing code of the instance or its AMI), a Marketplace product code on
// the instance or its AMI, other than exactly one EBS volume, more than
// one network interface, an encrypted volume, a volume larger than 1 TiB.
// The refusal is permanent, names every reason and suggests
// --method ebs-direct. AWS's own NotExportable, should it refuse anyway,
// is reported the same way.
//
// The task is tagged hypersdk:job=<job id> and hypersdk:vm=<instance> in
// the CreateInstanceExportTask call itself. An attempt first looks for the
// job's tasks: a completed one that wrote the configured kind of object
// which is still there is reused (a retried job, or one resumed after a
// kill -9, does not export the instance again), a running one is waited
// for. The wait polls DescribeExportTasks with a growing interval (15 s to
// 2 min) and reports the task's state and status message as progress; the
// SDK's ExportTaskCompleted waiter is not used because it has no failure
// state, and a task AWS cancels would be waited for until the timeout. A
// task that ends cancelled fails the export permanently with AWS's status
// message; a cancelled context or the 48 h bound cancels the task.
//
// The object (S3Key as DescribeExportTasks reports it: the prefix, the
// task id, "." and the format) must lie in the configured bucket under the prefix. It
// is described with HeadObject (ChecksumMode ENABLED) and handed to the
// pipeline as one ranged HTTP source through a pre-signed GET (valid 24 h;
// its host checked by the SSRF guard of the endpoints; the URL is never
// logged, and transfer/ strips query strings from every message): the
// pipeline fetches it itself with parallel ranged GETs and resumes it from
// its kept part file on the next attempt. Inside an OVA the disk image
// lies uncompressed in the tar: its headers are read with a few ranged
// GETs and the source is the disk image's byte range of the object, so
// the archive is never staged; the bytes after the disk must be nothing
// but padding and the end of the archive (one disk). A VMDK (what VM
// Export writes: streamOptimized) is a SourceVMDKStream the pipeline
// passes through or decodes as it streams, a raw image a SourceRaw
// exactly the volume's size (written sparse), a VHD a SourceImage the
// pipeline stages and decodes through disk/formats.
//
// What is verified: the object's size (each response's Content-Range),
// its version (the ETag: If-Range on every resumed request, and any
// answer of another ETag fails the download instead of splicing), and one
// digest S3 holds of the whole object — its full-object CRC64NVME (S3's
// default checksum since 2025) or another full-object checksum the
// uploader asked for, else the ETag when it is an MD5 (a single-part
// object not encrypted with KMS). For a disk inside an OVA the digest of
// the whole object is checked all the same, the hash fed the archive's
// bytes before the disk and after it. A multipart object without a
// full-object checksum has no whole-object digest: size and version are
// then all (a warning says so). The pipeline adds the SHA-256 of every
// file it writes, in the manifest.
//
// Clean-up, however the export ends: the job's tasks still running are
// cancelled, and with delete_object the task's object is deleted (that
// object only: never a key outside the bucket and prefix; a failed
// attempt's too, so the job's next attempt exports again, where without
// delete_object it reuses the object and resumes the download); staging
// files are the pipeline's. SweepOrphans also cancels the running tasks of jobs
// that are over and, with delete_object, deletes their completed tasks'
// objects. AWS may reboot the instance during the export.
//
// StartDemo serves a demo account from awsfake, this package's test
// target, with an in-process S3 (gofakes3) for its export tasks.
package aws
