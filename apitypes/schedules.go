package apitypes

import "time"

// Schedule policies.
const (
	OverlapSkip  = "skip"  // no second run while one is queued or running (default)
	OverlapQueue = "queue" // the run waits for the previous one to end
	OverlapAllow = "allow" // runs may overlap

	CatchUpNone = "none" // due times missed while no daemon ran are dropped
	CatchUpOnce = "once" // one run makes up for them all (default)
)

// Execution kinds (Execution.Kind) and statuses (Execution.Status; after
// ExecutionSubmitted it becomes the job's final state).
const (
	ExecutionScheduled = "scheduled"
	ExecutionCatchUp   = "catch_up"
	ExecutionManual    = "manual"
	ExecutionQueued    = "queued"

	ExecutionSubmitted    = "submitted"
	ExecutionSkipped      = "skipped"
	ExecutionNotSubmitted = "not_submitted"
)

// ScheduleSpec creates a schedule.
type ScheduleSpec struct {
	Name     string     `json:"name" minLength:"1" maxLength:"100" doc:"Unique name, e.g. nightly-db01"`
	Schedule string     `json:"schedule" minLength:"1" maxLength:"200" doc:"5-field cron expression, a descriptor (@daily, @hourly…) or @every <duration>"`
	Timezone string     `json:"timezone,omitempty" doc:"IANA time zone the expression is read in (default UTC)"`
	Job      JobRequest `json:"job" doc:"The export submitted at every run"`
	Enabled  *bool      `json:"enabled,omitempty" doc:"Default true"`
	Overlap  string     `json:"overlap,omitempty" enum:"skip,queue,allow" doc:"While a previous run is queued or running: skip (default), queue or allow"`
	CatchUp  string     `json:"catch_up,omitempty" enum:"none,once" doc:"Due times missed while no daemon ran: once (default: one run on start) or none"`
	EndAt    *time.Time `json:"end_at,omitempty" doc:"No runs after this time"`
	MaxRuns  *int       `json:"max_runs,omitempty" minimum:"1" doc:"Stop after this many runs"`
}

// SchedulePatch changes a schedule; nil fields stay.
type SchedulePatch struct {
	Schedule *string     `json:"schedule,omitempty"`
	Timezone *string     `json:"timezone,omitempty"`
	Job      *JobRequest `json:"job,omitempty"`
	Enabled  *bool       `json:"enabled,omitempty"`
	Overlap  *string     `json:"overlap,omitempty" enum:"skip,queue,allow"`
	CatchUp  *string     `json:"catch_up,omitempty" enum:"none,once"`
	EndAt    *time.Time  `json:"end_at,omitempty"`
	MaxRuns  *int        `json:"max_runs,omitempty" minimum:"1"`
}

// Schedule is a schedule as the API shows it.
type Schedule struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Schedule  string      `json:"schedule"`
	Timezone  string      `json:"timezone"`
	Job       JobRequest  `json:"job"`
	Enabled   bool        `json:"enabled"`
	Overlap   string      `json:"overlap"`
	CatchUp   string      `json:"catch_up"`
	EndAt     *time.Time  `json:"end_at,omitempty"`
	MaxRuns   *int        `json:"max_runs,omitempty"`
	RunCount  int         `json:"run_count"`
	LastRun   *time.Time  `json:"last_run,omitempty"`
	NextRun   *time.Time  `json:"next_run,omitempty"`
	NextRuns  []time.Time `json:"next_runs" doc:"The next five due times"`
	CreatedBy string      `json:"created_by,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// Execution is one firing of a schedule.
type Execution struct {
	ID              int64      `json:"id"`
	ScheduleID      string     `json:"schedule_id"`
	JobID           string     `json:"job_id,omitempty"`
	ExecutedAt      time.Time  `json:"executed_at"`
	DueAt           *time.Time `json:"due_at,omitempty"`
	Kind            string     `json:"kind" doc:"scheduled, catch_up, manual or queued"`
	Status          string     `json:"status" doc:"submitted, skipped, not_submitted, then the job's final state: succeeded, failed, cancelled"`
	Detail          string     `json:"detail,omitempty"`
	DurationSeconds *float64   `json:"duration_seconds,omitempty"`
	LagSeconds      float64    `json:"lag_seconds" doc:"How late the run started after its due time"`
}

// ExecutionList is a page of schedule executions, newest first.
type ExecutionList struct {
	Items      []*Execution `json:"items"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// PreviewRequest asks for the next due times of an expression.
type PreviewRequest struct {
	Schedule string `json:"schedule" minLength:"1" maxLength:"200"`
	Timezone string `json:"timezone,omitempty"`
	Count    int    `json:"count,omitempty" minimum:"0" maximum:"100" doc:"How many due times (default 5)"`
}
