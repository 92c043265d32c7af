package stats

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/internal/errclass"
	"github.com/hypersdk/hypersdk/internal/fielderr"
)

// Limits of a history request.
const (
	// MaxBuckets bounds a response.
	MaxBuckets = 1000
	// defaultBuckets is the resolution when no step is asked for.
	defaultBuckets = 240
)

// DurationBounds are the upper bounds (seconds) of the duration heatmap's
// bins: exports take seconds (demo, small disks) to many hours.
var DurationBounds = []float64{10, 30, 60, 300, 900, 1800, 3600, 7200, 14400}

// ErrInvalid marks a history request the caller got wrong.
var ErrInvalid = errclass.New(errclass.Invalid, apitypes.ProblemInvalidArgument, "invalid history request")

// Jobs is what a Sampler reads from the job engine.
type Jobs interface {
	// Counts returns the jobs in each state (all daemons).
	Counts(ctx context.Context) (map[apitypes.JobState]int, error)
	// BytesMoved is the running total of bytes this daemon exported.
	BytesMoved() int64
}

// Options tune a Sampler.
type Options struct {
	NodeID string
	// Interval between samples (default 10 s).
	Interval time.Duration
	// Retention is how long samples are kept (default 7 days).
	Retention time.Duration
	Logger    *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Sampler records samples and answers history queries.
type Sampler struct {
	db   *store.DB
	jobs Jobs
	opts Options

	mu        sync.Mutex
	lastBytes int64
	cancel    context.CancelFunc
	done      chan struct{}
}

// New returns a sampler; Start begins sampling.
func New(db *store.DB, jobs Jobs, opts Options) *Sampler {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sampler{db: db, jobs: jobs, opts: opts, lastBytes: jobs.BytesMoved()}
}

// Interval is the time between samples.
func (s *Sampler) Interval() time.Duration { return s.opts.Interval }

// Start samples every interval until Stop, pruning expired samples hourly.
func (s *Sampler) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.opts.Interval)
		defer t.Stop()
		lastPrune := time.Time{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := s.Sample(ctx); err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("stats sample failed", "err", err)
			}
			if now := s.opts.Now(); now.Sub(lastPrune) >= time.Hour {
				if _, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
					s.opts.Logger.Warn("pruning stats samples failed", "err", err)
				}
				lastPrune = now
			}
		}
	}()
}

// Stop ends sampling.
func (s *Sampler) Stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// Sample records one sample now.
func (s *Sampler) Sample(ctx context.Context) error {
	counts, err := s.jobs.Counts(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	total := s.jobs.BytesMoved()
	moved := max(0, total-s.lastBytes)
	s.lastBytes = total
	s.mu.Unlock()
	_, err = s.db.SQL.ExecContext(ctx, `INSERT INTO stats_samples (node, at, queued, running, bytes) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (node, at) DO UPDATE SET queued = excluded.queued, running = excluded.running, bytes = stats_samples.bytes + excluded.bytes`,
		s.opts.NodeID, store.Micros(s.opts.Now()), counts[apitypes.JobQueued], counts[apitypes.JobRunning], moved)
	if err != nil {
		// Keep the bytes for the next sample.
		s.mu.Lock()
		s.lastBytes -= moved
		s.mu.Unlock()
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}

// Prune deletes samples older than the retention and returns how many.
func (s *Sampler) Prune(ctx context.Context) (int64, error) {
	res, err := s.db.SQL.ExecContext(ctx, "DELETE FROM stats_samples WHERE at < $1", store.Micros(s.opts.Now().Add(-s.opts.Retention)))
	if err != nil {
		return 0, fmt.Errorf("stats: %w", err)
	}
	return res.RowsAffected()
}

// Current is the state now: job counts, and the throughput of every
// daemon over the last two intervals.
func (s *Sampler) Current(ctx context.Context) (apitypes.StatsSample, error) {
	now := s.opts.Now()
	counts, err := s.jobs.Counts(ctx)
	if err != nil {
		return apitypes.StatsSample{}, err
	}
	window := 2 * s.opts.Interval
	var bytes int64
	if err := s.db.SQL.QueryRowContext(ctx, "SELECT COALESCE(SUM(bytes), 0) FROM stats_samples WHERE at > $1",
		store.Micros(now.Add(-window))).Scan(&bytes); err != nil {
		return apitypes.StatsSample{}, fmt.Errorf("stats: %w", err)
	}
	return apitypes.StatsSample{At: now.UTC(), Queued: counts[apitypes.JobQueued], Running: counts[apitypes.JobRunning],
		ThroughputBps: float64(bytes) / window.Seconds()}, nil
}

// Window resolves a history request's bounds: until defaults to now, since
// to a day before until, step to what gives about 240 buckets (at least the
// sampling interval). since is aligned down to a whole step.
func (s *Sampler) Window(since, until time.Time, step time.Duration) (time.Time, time.Time, time.Duration, error) {
	var errs fielderr.List
	if until.IsZero() {
		until = s.opts.Now()
	}
	if since.IsZero() {
		since = until.Add(-24 * time.Hour)
	}
	if !since.Before(until) {
		errs.Addf("since", "must be before until")
		return since, until, step, errs.Err(ErrInvalid)
	}
	span := until.Sub(since)
	if step == 0 {
		step = max(s.opts.Interval, (span / defaultBuckets).Round(time.Second))
	}
	if step < time.Second {
		errs.Addf("step", "must be at least 1s")
	} else if n := (span + step - 1) / step; n > MaxBuckets {
		errs.Addf("step", "gives %d buckets over %s; at most %d (use a step of at least %s)", n, span, MaxBuckets, (span/MaxBuckets).Round(time.Second)+time.Second)
	}
	if err := errs.Err(ErrInvalid); err != nil {
		return since, until, step, err
	}
	since = since.Truncate(step)
	return since.UTC(), until.UTC(), step, nil
}

// History aggregates the window [since, until) into buckets of step.
func (s *Sampler) History(ctx context.Context, since, until time.Time, step time.Duration) (*apitypes.StatsHistory, error) {
	since, until, step, err := s.Window(since, until, step)
	if err != nil {
		return nil, err
	}
	n := int((until.Sub(since) + step - 1) / step)
	h := &apitypes.StatsHistory{Since: since, Until: since.Add(time.Duration(n) * step), StepSeconds: int64(step / time.Second),
		DurationBounds: DurationBounds, Buckets: make([]apitypes.StatsBucket, n)}
	for i := range h.Buckets {
		h.Buckets[i] = apitypes.StatsBucket{Start: since.Add(time.Duration(i) * step),
			Finished:  map[apitypes.JobState]int{apitypes.JobSucceeded: 0, apitypes.JobFailed: 0, apitypes.JobCancelled: 0},
			Durations: []apitypes.ProviderDurations{}}
	}
	from, to, us := store.Micros(since), store.Micros(until), step.Microseconds()
	if err := s.samples(ctx, h, from, to, us); err != nil {
		return nil, err
	}
	if err := s.finished(ctx, h, from, to, us); err != nil {
		return nil, err
	}
	if err := s.durations(ctx, h, from, to, us); err != nil {
		return nil, err
	}
	return h, nil
}

func (s *Sampler) samples(ctx context.Context, h *apitypes.StatsHistory, from, to, step int64) error {
	// Samples of one moment from several daemons are summed (bytes) or
	// averaged (cluster-wide counts); the sampled time per bucket is the
	// distinct sampling instants of each daemon times the interval.
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT (at - $1) / $3 AS b, SUM(bytes), AVG(queued), AVG(running), COUNT(*), COUNT(DISTINCT node)
		FROM stats_samples WHERE at >= $1 AND at < $2 GROUP BY b`, from, to, step)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b, bytes, count, nodes int64
		var queued, running float64
		if err := rows.Scan(&b, &bytes, &queued, &running, &count, &nodes); err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		if b < 0 || b >= int64(len(h.Buckets)) {
			continue
		}
		bk := &h.Buckets[b]
		bk.BytesMoved, bk.Queued, bk.Running = bytes, &queued, &running
		// Each daemon's samples cover count/nodes intervals of the bucket.
		sampled := min(time.Duration(h.StepSeconds)*time.Second, time.Duration(count/max(nodes, 1))*s.opts.Interval)
		if sampled > 0 {
			bk.ThroughputBps = float64(bytes) / sampled.Seconds()
		}
	}
	return rows.Err()
}

func (s *Sampler) finished(ctx context.Context, h *apitypes.StatsHistory, from, to, step int64) error {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT (finished_at - $1) / $3 AS b, state, COUNT(*) FROM jobs
		WHERE finished_at >= $1 AND finished_at < $2 GROUP BY b, state`, from, to, step)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b int64
		var state apitypes.JobState
		var n int
		if err := rows.Scan(&b, &state, &n); err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		if b >= 0 && b < int64(len(h.Buckets)) && state.Terminal() {
			h.Buckets[b].Finished[state] += n
		}
	}
	return rows.Err()
}

func (s *Sampler) durations(ctx context.Context, h *apitypes.StatsHistory, from, to, step int64) error {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT (finished_at - $1) / $3 AS b, provider, finished_at - started_at FROM jobs
		WHERE state = 'succeeded' AND finished_at >= $1 AND finished_at < $2 AND started_at IS NOT NULL`, from, to, step)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	type key struct {
		b        int64
		provider string
	}
	counts := map[key][]int{}
	for rows.Next() {
		var k key
		var us int64
		if err := rows.Scan(&k.b, &k.provider, &us); err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		if k.b < 0 || k.b >= int64(len(h.Buckets)) {
			continue
		}
		c := counts[k]
		if c == nil {
			c = make([]int, len(DurationBounds)+1)
			counts[k] = c
		}
		secs := float64(us) / 1e6
		c[sort.SearchFloat64s(DurationBounds, secs)]++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for k, c := range counts {
		bk := &h.Buckets[k.b]
		bk.Durations = append(bk.Durations, apitypes.ProviderDurations{Provider: k.provider, Counts: c})
	}
	for i := range h.Buckets {
		d := h.Buckets[i].Durations
		sort.Slice(d, func(a, b int) bool { return d[a].Provider < d[b].Provider })
	}
	return nil
}
