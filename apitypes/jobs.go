package apitypes

import (
	"time"

	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
)

// JobState is a job's lifecycle state.
type JobState string

// Job states. A job moves queued → running → succeeded | failed | cancelled;
// a transient failure with attempts left, or a daemon shutting down, moves a
// running job back to queued.
const (
	JobQueued    JobState = "queued"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// JobStates lists every state in lifecycle order.
func JobStates() []JobState {
	return []JobState{JobQueued, JobRunning, JobSucceeded, JobFailed, JobCancelled}
}

// Terminal reports whether s is a final state.
func (s JobState) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCancelled
}

// Valid reports whether s is a known state.
func (s JobState) Valid() bool {
	switch s {
	case JobQueued, JobRunning, JobSucceeded, JobFailed, JobCancelled:
		return true
	}
	return false
}

// Error kinds recorded with failed or retried jobs (Job.ErrorKind).
const (
	ErrorKindPermanent = "permanent"
	ErrorKindTransient = "transient"
	ErrorKindCancelled = "cancelled"
	ErrorKindLost      = "lost" // the daemon running it stopped heartbeating
)

// JobRequest is an export request as a client submits it. Unset options
// take the daemon's `export:` defaults.
type JobRequest struct {
	Provider string `json:"provider" doc:"Provider instance name" minLength:"1" maxLength:"63"`
	VM       string `json:"vm" doc:"VM identifier: inventory path, name, ID or UUID" minLength:"1" maxLength:"1024"`
	// Output is the export directory: relative to the daemon's export
	// directory, or absolute under one of export.allowed_roots.
	Output            string `json:"output,omitempty" doc:"Output directory (relative to the daemon's export directory, or absolute under export.allowed_roots); default <export_dir>/<job id>. Or object storage: s3://bucket/prefix/, gs://bucket/prefix/, azblob://account/container/prefix/, served by a target in the daemon's output_targets" maxLength:"4096"`
	Format            string `json:"format,omitempty" enum:"ovf,ova,disks" doc:"Packaging: an OVF folder, an OVA, or plain disks with a manifest and JSON metadata"`
	DiskFormat        string `json:"disk_format,omitempty" enum:"vmdk,raw,qcow2,vhd,vhdx" doc:"Disk file format: streamOptimized vmdk, or (with format disks) sparse raw, qcow2 v3, vhd or dynamic vhdx"`
	VHDType           string `json:"vhd_type,omitempty" enum:"dynamic,fixed" doc:"VHD variant for disk_format vhd: dynamic (default) or fixed (size rounded up to a whole MiB, as Azure requires)"`
	Compress          *bool  `json:"compress,omitempty" doc:"Compress the OVA (.ova.gz / .ova.zst)"`
	Compression       string `json:"compression,omitempty" enum:"gzip,zstd"`
	CompressionLevel  *int   `json:"compression_level,omitempty" minimum:"0" maximum:"9"`
	CleanupOVF        *bool  `json:"cleanup_ovf,omitempty" doc:"Remove intermediate OVF files once packed into the OVA"`
	ParallelDownloads int    `json:"parallel_downloads,omitempty" minimum:"0" maximum:"32" doc:"Disks downloaded at once; 0 takes the default"`
	Snapshot          bool   `json:"snapshot,omitempty" doc:"Export a powered-on VM from a temporary snapshot"`
	PowerOff          bool   `json:"power_off,omitempty" doc:"Shut a powered-on VM down before exporting"`
	PowerOffTimeout   string `json:"power_off_timeout,omitempty" doc:"Guest shutdown wait before a hard power-off, e.g. 5m"`
	BandwidthLimit    int64  `json:"bandwidth_limit,omitempty" minimum:"0" doc:"Bytes per second; 0 is unlimited"`
	Method            string `json:"method,omitempty" maxLength:"63" doc:"How the provider gets the VM out, for providers that offer several ways (its methods are listed with the provider; AWS: ebs-direct, the default, or export-task); empty takes the provider's default"`
	MaxAttempts       int    `json:"max_attempts,omitempty" minimum:"0" maximum:"100" doc:"Attempts before the job fails; 0 takes jobs.max_attempts"`
}

// JobSpec is a JobRequest with every default applied, as stored with the
// job: a job runs with the options in force when it was accepted.
type JobSpec struct {
	Provider    string                  `json:"provider"`
	VM          string                  `json:"vm"`
	Options     providers.ExportOptions `json:"options"`
	MaxAttempts int                     `json:"max_attempts"`
}

// JobProgress is a job's persisted progress. BytesTotal is what the
// current phase will write in all; 0 means not known yet (vSphere streams
// disks whose size is known only when each ends), and then Percent is 0 and
// there is no ETA.
type JobProgress struct {
	Phase      string   `json:"phase"`
	BytesDone  int64    `json:"bytes_done"`
	BytesTotal int64    `json:"bytes_total" doc:"Bytes the current phase writes in all; 0 while unknown (then percent is 0 and there is no ETA)"`
	Percent    float64  `json:"percent" doc:"bytes_done of bytes_total, at most 100; 0 while bytes_total is unknown"`
	RateBps    float64  `json:"rate_bytes_per_second"`
	ETASeconds *float64 `json:"eta_seconds,omitempty" doc:"Absent while bytes_total is unknown or no rate is measured yet"`
}

// NewJobProgress builds a job's wire progress from its latest report, the
// rate measured over successive reports (transfer.Meter) and the ETA (nil
// when none). Percent is BytesDone of BytesTotal, at most 100, 0 while the
// total is unknown, and 100 once the job has succeeded.
func NewJobProgress(state JobState, p progress.Report, rateBps float64, eta *float64) JobProgress {
	jp := JobProgress{Phase: p.Phase, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, RateBps: rateBps, ETASeconds: eta}
	if p.BytesTotal > 0 {
		jp.Percent = min(100, 100*float64(p.BytesDone)/float64(p.BytesTotal))
	}
	if state == JobSucceeded {
		jp.Percent = 100
	}
	return jp
}

// Job is a job as the API shows it.
type Job struct {
	ID              string                  `json:"id"`
	Provider        string                  `json:"provider"`
	VM              string                  `json:"vm"`
	State           JobState                `json:"state"`
	Spec            JobSpec                 `json:"spec"`
	SubmittedBy     string                  `json:"submitted_by,omitempty"`
	Attempt         int                     `json:"attempt"`
	MaxAttempts     int                     `json:"max_attempts"`
	Progress        JobProgress             `json:"progress"`
	Error           string                  `json:"error,omitempty"`
	ErrorKind       string                  `json:"error_kind,omitempty" doc:"permanent, transient, cancelled or lost"`
	CancelRequested bool                    `json:"cancel_requested,omitempty"`
	Node            string                  `json:"node,omitempty"`
	Result          *providers.ExportResult `json:"result,omitempty"`
	CreatedAt       time.Time               `json:"created_at"`
	UpdatedAt       time.Time               `json:"updated_at"`
	StartedAt       *time.Time              `json:"started_at,omitempty"`
	FinishedAt      *time.Time              `json:"finished_at,omitempty"`
	NextAttemptAt   *time.Time              `json:"next_attempt_at,omitempty"`
}

// LogLine is one persisted log record of a job.
type LogLine struct {
	ID      int64          `json:"id"`
	At      time.Time      `json:"at"`
	Level   string         `json:"level"`
	Message string         `json:"message"`
	Attrs   map[string]any `json:"attrs,omitempty"`
}

// JobFilter narrows a job listing. Zero fields match everything.
type JobFilter struct {
	States        []JobState
	Provider      string
	VM            string
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// FinishedAfter and FinishedBefore select jobs that ended in
	// [after, before) (a chart bucket); unfinished jobs never match.
	FinishedAfter  time.Time
	FinishedBefore time.Time
	// Cursor continues a previous listing (the NextCursor it returned).
	Cursor string
	// Limit caps the page size (default 50, at most 1000).
	Limit int
}

// JobList is a page of jobs, newest first.
type JobList struct {
	Items      []*Job `json:"items"`
	NextCursor string `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
}
