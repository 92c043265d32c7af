// Package gcp is the Google Cloud provider: discovery of Compute Engine
// instances and the platform side of an export through snapshots and the
// image export builder on Cloud Build — platform talk only, on
// cloud.google.com/go/compute (REST clients), cloud.google.com/go/cloudbuild
// and cloud.google.com/go/storage.
//
// Configuration (Config, Decode): project, zones, a staging bucket and
// prefix, credentials from a service-account key (credentials_file, or
// credentials_json as a config.Secret; never logged) or Application
// Default Credentials, the builder image, the builder VM's network and
// subnet, and endpoint overrides checked by the project's SSRF guard. All
// clients share one authenticated HTTP client built on
// transfer.NewHTTPClient.
//
// Discovery: ListVMs pages through each zone's instances; vCPUs and memory
// come from MachineTypes.Get (cached per zone and type, custom types
// included); disks are the persistent disks attached (boot first, local
// SSDs left out) with their sizes; GuestOS is the boot disk's OS licence,
// Firmware efi when it is UEFI_COMPATIBLE. An instance is found by its
// numeric id, its self-link or resource path
// (projects/P/zones/Z/instances/N, also VMInfo.Path) or its name when one
// configured zone only has it (ErrAmbiguous otherwise). Labels hold the
// instance's labels plus gce:machine-type, gce:zone and gce:status.
//
// Export (PrepareExport), per disk:
//
//  1. a snapshot named from the job id (hypersdk-<hash>-<disk>), labelled
//     hypersdk-job=<job id> in the insert call itself;
//  2. a Cloud Build build running gce_vm_image_export the way `gcloud
//     compute images export` does — -source_disk_snapshot (the builder
//     makes its buffer disk from the snapshot: no temporary image is
//     needed), -destination_uri gs://<bucket>/<prefix>/<job>/disk-<i>.tar.gz
//     (or .raw with image_format raw, -format=raw), -client_id, -zone,
//     -network/-subnet, -labels hypersdk-job=<job> (on everything the
//     builder creates), -scratch_bucket_gcs_path and the build's logsBucket
//     beneath the job's prefix, tags gce-daisy, gce-daisy-image-export,
//     hypersdk, hypersdk-job-<job>, hypersdk-disk-<i>; its timeout is sized
//     to the disk: 30 min + 1 min per GiB, at least 1 h, at most Cloud
//     Build's 24 h (the builder moves ~12 h per TB, ~42 s per GiB, in the
//     field: a 40% margin; gcloud's 2 h default fails past ~150 GB), and
//     the builder's own -timeout is 3% shorter (30 s to 5 min), as gcloud
//     sets it; the long-running operation is polled with progress (the
//     build's status in the preparing phase);
//  3. the image is read with transfer.Reader — parallel ranged GETs of one
//     object generation, bounded memory, broken ranges resumed — and
//     decoded gzip → tar → disk.raw while it streams (never stored whole);
//     the DiskSource is a raw stream of Capacity bytes (the disk's size).
//     The CRC32C of the whole object (composite objects carry no MD5) is
//     verified as it streams, and the gzip CRC-32 and length at its end,
//     before the disk's last bytes are handed over: a mismatch fails the
//     export permanently, naming the checksum.
//
// Snapshots are taken for all disks first, then the builds run at once.
// A build that fails reports the builder's own error line, read from its
// log in the staging bucket; a permission refusal names the roles missing
// (the Cloud Build service account needs roles/compute.admin,
// roles/iam.serviceAccountUser and roles/iam.serviceAccountTokenCreator;
// the Compute Engine default service account roles/compute.storageAdmin
// and roles/storage.objectAdmin); a 403 on HyperSDK's own calls names the
// permission and the role that grants it. FAILURE and TIMEOUT are
// permanent; a build cancelled by someone else or an internal error is
// retried by the job engine.
//
// Resume: an attempt of a job that an earlier attempt of the same job
// prepared (the job engine's retry, a daemon restarted after kill -9)
// reuses the job's snapshots, waits for its build when it still runs and
// reads its image when it is in the bucket, instead of snapshotting and
// building again — the hours of platform work survive. The download itself
// is not resumed across attempts: ranges broken within an attempt are
// retried, and a new attempt reads the image again from its first byte.
//
// Clean-up: Cleanup (and a failed or cancelled PrepareExport) cancels the
// job's builds still running, then deletes the job's snapshots, and the
// images, builder worker VMs and buffer disks labelled with it (a
// cancelled build's step is killed and the builder's own clean-up never
// runs; a VM is deleted only when it carries the builder's own
// gce-image-export-tmp label too), and every object under the job's prefix
// (images, logs, scratch). SweepOrphans
// (providers.OrphanSweeper, run by the daemon at start and every few
// minutes) finds the jobs that left anything — by label, by build tag, by
// prefix — and does the same for those that are over.
//
// --snapshot and --power-off: every export reads from snapshots, taken
// while the instance runs (crash-consistent per disk); the snapshot option
// is accepted and changes nothing. Power-off is refused: stopping an
// instance behind its owner's back is not an export's business.
//
// StartDemo serves a demo project from gcpfake, this package's test target.
package gcp
