// Package awsfake is an in-process AWS endpoint for EC2 and the EBS direct
// APIs that speaks their real wire protocols, so that the unmodified
// aws-sdk-go-v2 clients (service/ec2, service/ebs) — with their own
// retryers, waiters and paginators — run against it through BaseEndpoint.
// It is the test target of the AWS provider and the backend of the
// demo-aws provider (no EC2 or EBS emulator exists to use instead).
//
// One listener (Server.URL) serves both protocols, told apart by the
// request: paths under /snapshots/ are EBS direct REST-JSON, every other
// POST is an EC2 Query request (form body with Action and
// Version=2016-11-15).
//
// # Faithful to AWS
//
//   - SigV4: every request must carry an AWS4-HMAC-SHA256 Authorization
//     header for the configured access key, scoped to the configured region
//     and to service "ec2" or "ebs"; the signature is recomputed with the
//     SDK's own signer over the signed headers and the body's SHA-256 and
//     compared in constant time, and a signing time more than 15 minutes
//     off is refused. EC2 refusals are MissingAuthenticationToken /
//     AuthFailure (HTTP 401) or RequestExpired (400); EBS refusals are HTTP
//     403 MissingAuthenticationTokenException, UnrecognizedClientException
//     or InvalidSignatureException. The secret appears in no answer and no
//     log line.
//   - EC2 answers are XML documents in the
//     http://ec2.amazonaws.com/doc/2016-11-15/ namespace with a requestId,
//     using the element names the SDK's ec2query deserializers read (for
//     instance a snapshot's state is <state> in CreateSnapshots' SnapshotInfo
//     but <status> in DescribeSnapshots). Errors are
//     <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
//     with EC2's codes: InvalidInstanceID.NotFound, InvalidVolume.NotFound,
//     InvalidSnapshot.NotFound, InvalidInstanceType, InvalidParameterValue
//     (unknown filter, MaxResults out of range), InvalidParameterCombination
//     (ids with MaxResults), InvalidPaginationToken, MissingParameter,
//     InvalidAction, DryRunOperation (412) and RequestLimitExceeded (503).
//   - Actions: DescribeInstances (InstanceId.N, filters instance-id,
//     instance-state-name, instance-state-code, instance-type,
//     architecture, platform-details, availability-zone,
//     block-device-mapping.volume-id, tag:<key>, tag-key; MaxResults 5–1000
//     and NextToken), DescribeInstanceTypes (defaultVCpus, sizeInMiB,
//     supported architectures and boot modes; MaxResults 5–100),
//     DescribeVolumes (volume-id, status, size, volume-type,
//     attachment.instance-id/device/status, tags; MaxResults 5–500),
//     CreateSnapshots (InstanceSpecification with ExcludeBootVolume and
//     ExcludeDataVolumeId, TagSpecifications applied at creation,
//     CopyTagsFromSource=volume, Description), DescribeSnapshots
//     (SnapshotId.N, Owner.N self or the account id, filters snapshot-id,
//     volume-id, status, owner-id, description, volume-size, progress,
//     encrypted, tags; MaxResults 5–1000), CreateTags (instances, volumes,
//     snapshots, export tasks), DeleteSnapshot, DescribeImages (ImageId.N —
//     an unknown one is InvalidAMIID.NotFound, as a deregistered AMI —
//     filters image-id, name, platform-details, product-code; platform,
//     platformDetails, usageOperation and productCodes as the AMI billing
//     fields), and VM Export: CreateInstanceExportTask, DescribeExportTasks
//     (ExportTaskId.N, filters tag:<key> and tag-key) and CancelExportTask.
//     Instances report their imageId, usageOperation, productCodes and
//     network interfaces; volumes whether they are encrypted. Filter values
//     take EC2's * and ? wildcards.
//   - VM Export, after the VM Import/Export User Guide ("Considerations
//     for instance export") and the EC2 API reference:
//     CreateInstanceExportTask takes InstanceId, TargetEnvironment
//     (citrix|vmware|microsoft), ExportToS3.DiskImageFormat (VMDK|RAW|VHD),
//     ExportToS3.ContainerFormat (ova), S3Bucket, S3Prefix, a Description of
//     at most 255 characters and TagSpecification.N of resource type
//     export-instance-task applied at creation; it checks that the bucket
//     exists and refuses with NotExportable an instance with Windows or SQL
//     Server (platform, platform details), a Marketplace product code (the
//     instance's or its AMI's), other than one volume, more than one network
//     interface, an encrypted volume or one larger than 1 TiB. The task
//     (export-i-…) is active while a goroutine of its own turns the
//     volume, as it was at creation, into the image — a streamOptimized
//     VMDK by the project's vmdk writer, a dynamic VHD by disk/vhd, raw, or
//     an OVA: a tar holding the .ovf first, then the disk image — and
//     writes it with the real S3 client (Options.S3) at the key S3Prefix,
//     task id, ".", format (ova for an OVA); objects larger than
//     S3Options.PartSize go up as multipart uploads with a full-object CRC64NVME checksum. It is
//     completed once written and reported active Faults.ExportPolls times;
//     Faults.ExportFor delays the write, Faults.ExportFail ends tasks
//     cancelled with that status message instead (how VM Export ends a task
//     it cannot complete). CancelExportTask cancels an active task (it is
//     cancelling until its writer has stopped and removed any object, then
//     cancelled) and answers IncorrectState once it is not active;
//     InvalidExportTaskID.NotFound names unknown ids.
//   - CreateSnapshots captures all of an instance's volumes at one instant
//     (crash-consistent) and the snapshot keeps that content whatever is
//     written to the volume later. Snapshots are pending until
//     DescribeSnapshots has reported them Faults.PendingPolls times and
//     Faults.PendingFor has passed, then completed with progress 100%.
//   - EBS direct: ListSnapshotBlocks (GET /snapshots/{id}/blocks with
//     maxResults 100–10000, pageToken, startingBlockIndex) lists exactly the
//     blocks written at snapshot time — including a block written with zeros
//     — with BlockSize 524288, VolumeSize in GiB, ExpiryTime seven days out
//     and NextToken; GetSnapshotBlock (GET /snapshots/{id}/blocks/{index}
//     ?blockToken=) returns the 512 KiB block with x-amz-Data-Length,
//     x-amz-Checksum (base64 SHA-256) and x-amz-Checksum-Algorithm SHA256.
//     Errors carry x-amzn-ErrorType and a {"Message","Reason"} body:
//     ValidationException 400 (INVALID_BLOCK_TOKEN, INVALID_PAGE_TOKEN,
//     INVALID_BLOCK, INVALID_PARAMETER_VALUE), ResourceNotFoundException 404
//     (SNAPSHOT_NOT_FOUND), ThrottlingException 400 and
//     RequestThrottledException 400, as the EBS API reference lists them.
//
// # Simplified
//
//   - One account, one region, one credential pair; no session tokens, IAM
//     policies, KMS encryption, public or shared snapshots, or SigV4 query
//     (presigned) authentication.
//   - Each instance is reported in a reservation of its own; network
//     interfaces, security groups and AMIs are empty; launch and create
//     times are fixed unless the spec sets them.
//   - Block tokens are deterministic (an HMAC of snapshot and index under a
//     per-server key) and do not expire; page tokens are authenticated the
//     same way. A pending snapshot is refused by the EBS APIs with a
//     ValidationException whose exact wording AWS does not document.
//   - Instances and volumes are fixed by the Spec: no RunInstances,
//     CreateVolume or state changes. VM Export writes with the fake's S3
//     credentials (AWS writes as its own service principal, with the
//     bucket's ACL grant), and does not reboot the instance; the ExportImage
//     family is not served (InvalidAction).
//
// # For tests
//
// Volumes are sparse maps of 512 KiB blocks (NewVolume, WriteAt,
// WriteRandom, WriteZeroBlock, NewSampleVolume for the layout the provider
// must export faithfully), with SHA256 and WriteRawImage for qemu-img
// comparisons. Faults (throttling shares per protocol, blocks served
// corrupted once with the true checksum header, per-request latency,
// pending snapshots) are set in Options or changed with SetFaults while
// serving. AliveSnapshots, Stats and BlockFetches report what is left and
// what was asked; ExportTasks and LiveExportTasks list the export tasks
// and WaitCancels waits for cancellations to settle.
package awsfake
