package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
)

// Events records job lifecycle events in the transaction of the change that
// caused them, so an event exists exactly when its change committed
// (daemon/webhooks implements it as an outbox).
type Events interface {
	Emit(ctx context.Context, tx *sql.Tx, eventType string, data any) error
}

// EventData is the "data" of a job event: what a receiver needs to act on
// it, never credentials.
type EventData struct {
	JobID       string                `json:"job_id"`
	Provider    string                `json:"provider"`
	VM          string                `json:"vm"`
	State       apitypes.JobState     `json:"state"`
	Attempt     int                   `json:"attempt"`
	MaxAttempts int                   `json:"max_attempts"`
	SubmittedBy string                `json:"submitted_by,omitempty"`
	Format      string                `json:"format"`
	OutputDir   string                `json:"output_dir"`
	Progress    *apitypes.JobProgress `json:"progress,omitempty"`
	// Items is per-file progress (each disk of a download, a conversion),
	// in job.progress events only.
	Items    []ItemProgress `json:"items,omitempty"`
	Bytes    int64          `json:"bytes,omitempty"`
	Files    []FileData     `json:"files,omitempty"`
	Manifest string         `json:"manifest,omitempty"`
	// DurationSeconds is the successful attempt's export time.
	DurationSeconds float64    `json:"duration_seconds,omitempty"`
	Error           string     `json:"error,omitempty"`
	ErrorKind       string     `json:"error_kind,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
}

// ItemProgress is the progress of one file of a phase, e.g. one disk
// being downloaded.
type ItemProgress struct {
	Name       string  `json:"name" doc:"What is worked on, e.g. a disk file name"`
	Phase      string  `json:"phase"`
	BytesDone  int64   `json:"bytes_done"`
	BytesTotal int64   `json:"bytes_total" doc:"0 while unknown"`
	RateBps    float64 `json:"rate_bytes_per_second" doc:"Smoothed over the last seconds; 0 once done"`
	Done       bool    `json:"done,omitempty" doc:"The item is complete (or failed)"`
}

// FileData is one exported file in a job.completed event.
type FileData struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func eventData(j *apitypes.Job, withProgress bool) EventData {
	d := EventData{
		JobID: j.ID, Provider: j.Provider, VM: j.VM, State: j.State, Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
		SubmittedBy: j.SubmittedBy, Format: string(j.Spec.Options.Format), OutputDir: cmp.Or(j.Spec.Options.OutputURL, j.Spec.Options.OutputDir),
		Error: j.Error, ErrorKind: j.ErrorKind, CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt,
	}
	if withProgress {
		p := j.Progress
		d.Progress = &p
	}
	if r := j.Result; r != nil {
		d.Bytes, d.Manifest, d.DurationSeconds = r.Bytes, r.Manifest, r.Duration.Seconds()
		for _, f := range r.Files {
			d.Files = append(d.Files, FileData{Path: f.Path, Size: f.Size, SHA256: f.SHA256})
		}
	}
	return d
}

// emit records an event about job id, read back inside tx.
func (m *Manager) emit(ctx context.Context, tx *sql.Tx, eventType, id string) error {
	if m.opts.Events == nil {
		return nil
	}
	j, err := scanJob(tx.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = $1", id))
	if err != nil {
		return err
	}
	return m.opts.Events.Emit(ctx, tx, eventType, eventData(j, eventType == apitypes.EventJobProgress))
}

// emitProgress records a job.progress event with per-item progress.
func (m *Manager) emitProgress(ctx context.Context, tx *sql.Tx, id string, items []ItemProgress) error {
	if m.opts.Events == nil {
		return nil
	}
	j, err := scanJob(tx.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = $1", id))
	if err != nil {
		return err
	}
	d := eventData(j, true)
	d.Items = items
	return m.opts.Events.Emit(ctx, tx, apitypes.EventJobProgress, d)
}

// finalEvent maps a final state to its event type.
func finalEvent(s apitypes.JobState) string {
	switch s {
	case apitypes.JobSucceeded:
		return apitypes.EventJobCompleted
	case apitypes.JobCancelled:
		return apitypes.EventJobCancelled
	default:
		return apitypes.EventJobFailed
	}
}

// EventSinks sends every event to each sink in turn, in the same
// transaction (webhooks and the scheduler's execution history both listen).
type EventSinks []Events

// Emit implements Events.
func (s EventSinks) Emit(ctx context.Context, tx *sql.Tx, eventType string, data any) error {
	for _, e := range s {
		if e == nil {
			continue
		}
		if err := e.Emit(ctx, tx, eventType, data); err != nil {
			return err
		}
	}
	return nil
}
