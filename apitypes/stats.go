package apitypes

import "time"

// StatsSample is the daemon's state now: sent as the "stats" event of the
// event stream about every sampling interval.
type StatsSample struct {
	At            time.Time `json:"at"`
	Queued        int       `json:"queued" doc:"Jobs waiting to run (all daemons)"`
	Running       int       `json:"running" doc:"Jobs running (all daemons)"`
	ThroughputBps float64   `json:"throughput_bytes_per_second" doc:"Bytes exported per second over the last sampling intervals (all daemons)"`
}

// StatsHistory is recent history in buckets of equal length, oldest first.
type StatsHistory struct {
	Since       time.Time `json:"since" doc:"Start of the first bucket"`
	Until       time.Time `json:"until" doc:"End of the last bucket"`
	StepSeconds int64     `json:"step_seconds" doc:"Length of each bucket"`
	// DurationBounds are the upper bounds, in seconds, of the bins of
	// StatsBucket.Durations; the last bin has none (it holds the longer).
	DurationBounds []float64     `json:"duration_bounds_seconds" doc:"Upper bounds of the duration bins; one bin more than bounds holds everything longer"`
	Buckets        []StatsBucket `json:"buckets"`
}

// StatsBucket is one time bucket of StatsHistory.
type StatsBucket struct {
	Start         time.Time `json:"start"`
	BytesMoved    int64     `json:"bytes_moved" doc:"Bytes exported during the bucket (all daemons)"`
	ThroughputBps float64   `json:"throughput_bytes_per_second" doc:"bytes_moved over the bucket's sampled time"`
	// Queued and Running average the samples taken during the bucket; they
	// are absent when no daemon sampled then.
	Queued  *float64 `json:"queued,omitempty" doc:"Average queue length; absent without samples"`
	Running *float64 `json:"running,omitempty" doc:"Average running jobs; absent without samples"`
	// Finished counts jobs that ended in the bucket by final state
	// (succeeded, failed, cancelled), all present.
	Finished map[JobState]int `json:"finished" doc:"Jobs that finished in the bucket, by final state"`
	// Durations holds, per provider instance with successful jobs in the
	// bucket, how many took how long (first start to finish) per bin of
	// DurationBounds.
	Durations []ProviderDurations `json:"durations"`
}

// ProviderDurations is one provider's row of the duration heatmap.
type ProviderDurations struct {
	Provider string `json:"provider"`
	Counts   []int  `json:"counts" doc:"Successful jobs per duration bin (duration_bounds_seconds, then longer)"`
}
