package jobs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/internal/fielderr"
	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
)

// Providers is how the engine finds provider instances by name.
type Providers interface {
	Get(name string) (*providers.Instance, bool)
}

// Metrics receives what the engine does; daemon/metrics implements it.
type Metrics interface {
	JobSubmitted(provider string)
	JobFinished(provider string, state apitypes.JobState, d time.Duration)
	ExportBytes(provider string, n int64)
	// JobRetried reports a failed attempt after which the job is queued
	// for another.
	JobRetried(provider string)
	// ResumedBytes reports source bytes a successful attempt did not
	// fetch again because an earlier attempt had stored them.
	ResumedBytes(provider string, n int64)
}

// Options configure a Manager.
type Options struct {
	// NodeID identifies this daemon in leases; stable across restarts of
	// the same daemon (see LoadNodeID) so its own orphans are recovered at
	// once.
	NodeID string
	Jobs   config.Jobs
	Export config.Export
	// ExportDir is where relative output paths resolve.
	ExportDir string
	// AllowedRoots bound absolute output paths; empty means ExportDir only.
	AllowedRoots []string
	// OutputTargets are the object stores a job's output may name
	// (s3://…); its export directory then keeps the uploads' resume state.
	OutputTargets objstore.Targets
	// HeartbeatInterval is how often a running job persists progress and
	// renews its lease (default 1s).
	HeartbeatInterval time.Duration
	// PollInterval is how often idle workers look for queued jobs (default 200ms).
	PollInterval time.Duration
	Logger       *slog.Logger
	Metrics      Metrics
	// Events, when set, receives lifecycle events in the transactions of
	// the changes (job.created … job.failed, and throttled job.progress).
	Events Events
	// ProgressEvents is the least time between two job.progress events of
	// one job (default 30s).
	ProgressEvents time.Duration
	// ClusterLimit caps the exports running across every daemon sharing
	// the database (cluster.max_concurrent; 0: no cap beyond each
	// daemon's Jobs.MaxConcurrent).
	ClusterLimit int
	// IsLeader tells whether this daemon runs the cluster's clean-up
	// (deleting jobs past retention); nil means it always does.
	IsLeader func() bool
	// Now replaces the clock in tests; nil means time.Now.
	Now func() time.Time
}

// Manager is the job engine of one daemon.
type Manager struct {
	db        *store.DB
	river     *river.Client[*sql.Tx]
	providers Providers
	opts      Options
	log       *slog.Logger
	metrics   Metrics
	retry     backoff.Policy
	hub       *hub
	// moved is the running total of bytes this daemon exported (stats).
	moved atomic.Int64

	mu       sync.Mutex
	running  map[string]context.CancelCauseFunc // jobs this daemon is running
	waiting  map[string]string                  // queued job → the running job of the same VM it waits for (see noteWait)
	stopping bool

	bg     sync.WaitGroup
	cancel context.CancelFunc
}

// Causes with which the engine cancels a running export.
var (
	errUserCancel = abandoned{errors.New("cancelled on request")}
	errShutdown   = errors.New("daemon shutting down")
	errLeaseLost  = errors.New("lease lost: another daemon took the job over")
)

// abandoned is a cancellation cause after which no attempt of the job
// follows: it also matches providers.ErrAbandoned, so that the export
// removes its resume state.
type abandoned struct{ error }

func (c abandoned) Unwrap() []error { return []error{c.error, providers.ErrAbandoned} }

const queueName = "exports"

// New creates the engine. Call Start to begin working jobs.
func New(db *store.DB, provs Providers, opts Options) (*Manager, error) {
	if opts.NodeID == "" {
		return nil, errors.New("jobs: NodeID is required")
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.Jobs.HeartbeatStale <= 0 {
		opts.Jobs.HeartbeatStale = 30 * time.Second
	}
	if opts.Jobs.MaxAttempts <= 0 {
		opts.Jobs.MaxAttempts = 3
	}
	if opts.Jobs.MaxConcurrent <= 0 {
		opts.Jobs.MaxConcurrent = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = nopMetrics{}
	}
	if opts.ProgressEvents <= 0 {
		opts.ProgressEvents = 2 * time.Second
	}
	m := &Manager{
		db:        db,
		providers: provs,
		opts:      opts,
		log:       opts.Logger,
		metrics:   opts.Metrics,
		retry:     backoff.Policy{Base: opts.Jobs.RetryBackoff, Max: opts.Jobs.RetryBackoffMax, Jitter: 0.2},
		hub:       newHub(),
		running:   map[string]context.CancelCauseFunc{},
		waiting:   map[string]string{},
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &exportWorker{m: m}); err != nil {
		return nil, err
	}
	rc, err := river.NewClient(db.RiverDriver(), &river.Config{
		ID:                fmt.Sprintf("%s-%d", opts.NodeID, time.Now().UnixNano()),
		Queues:            map[string]river.QueueConfig{queueName: {MaxWorkers: opts.Jobs.MaxConcurrent}},
		Workers:           workers,
		JobTimeout:        -1, // the engine enforces jobs.timeout itself
		FetchPollInterval: opts.PollInterval,
		FetchCooldown:     min(50*time.Millisecond, opts.PollInterval),
		PollOnly:          true,
		Logger:            opts.Logger.With("component", "river"),
		// Exports can run for hours; the engine's own heartbeat finds dead
		// workers in seconds, so River's rescuer is only a last resort.
		RescueStuckJobsAfter: 6 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	m.river = rc
	return m, nil
}

// Start recovers jobs this daemon was running when it last stopped, then
// starts working the queue and the background maintenance.
func (m *Manager) Start(ctx context.Context) error {
	if n, err := m.recoverOwn(ctx); err != nil {
		return fmt.Errorf("jobs: recovering interrupted jobs: %w", err)
	} else if n > 0 {
		m.log.Info("requeued jobs interrupted by the last shutdown or crash", "count", n)
	}
	if err := m.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start river: %w", err)
	}
	bgctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.bg.Go(func() { m.maintain(bgctx) })
	return nil
}

// Stop stops accepting work and hands running jobs back to the queue: each
// running export is cancelled and its job returns to queued without using up
// an attempt, so this daemon (after a restart) or another one resumes it.
// It returns when all workers have returned or ctx ends.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopping = true
	for _, cancel := range m.running {
		cancel(errShutdown)
	}
	m.mu.Unlock()
	err := m.river.Stop(ctx)
	if m.cancel != nil {
		m.cancel()
	}
	m.bg.Wait()
	return err
}

// Running is how many exports this daemon runs now.
func (m *Manager) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.running)
}

func (m *Manager) isStopping() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopping
}

// LoadNodeID returns the node ID stored in dataDir, creating it on first use.
func LoadNodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	id := fmt.Sprintf("%s-%s", sanitizeHost(host), hex.EncodeToString(r[:]))
	if err := safepath.WriteFile(dataDir, filepath.Base(path), []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	return id, nil
}

func sanitizeHost(h string) string {
	h = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, h)
	if h == "" {
		h = "node"
	}
	if len(h) > 40 {
		h = h[:40]
	}
	return h
}

// exportArgs is the River job payload: only the job's ID.
type exportArgs struct {
	JobID string `json:"job_id"`
}

func (exportArgs) Kind() string { return "hypersdk_export" }

func (exportArgs) InsertOpts() river.InsertOpts {
	// Retries are the engine's (by snoozing); River's attempts only count
	// crashes of the worker function itself.
	return river.InsertOpts{Queue: queueName, MaxAttempts: 25}
}

// Submit validates req, applies defaults and queues the job. With a
// non-empty idempotencyKey a repeated submission by the same principal
// returns the original job and created=false; reusing the key for a
// different request is ErrConflict.
func (m *Manager) Submit(ctx context.Context, req apitypes.JobRequest, submittedBy, idempotencyKey string) (job *apitypes.Job, created bool, err error) {
	if m.isStopping() {
		return nil, false, ErrStopping
	}
	spec, err := m.resolve(req)
	if err != nil {
		return nil, false, err
	}
	var keyArg, hashArg any
	if idempotencyKey != "" {
		reqJSON, _ := json.Marshal(req)
		sum := sha256.Sum256(reqJSON)
		keyArg, hashArg = idempotencyKey, hex.EncodeToString(sum[:])
		if existing, err := m.byIdempotencyKey(ctx, submittedBy, idempotencyKey, hashArg.(string)); err != nil || existing != nil {
			return existing, false, err
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, err
	}
	err = m.db.Tx(ctx, func(tx *sql.Tx) error {
		return m.insertTx(ctx, tx, id.String(), spec, submittedBy, keyArg, hashArg)
	})
	if store.IsUniqueViolation(err) && idempotencyKey != "" {
		// A concurrent submission with the same key won the race.
		existing, err := m.byIdempotencyKey(ctx, submittedBy, idempotencyKey, hashArg.(string))
		return existing, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("jobs: submit: %w", err)
	}
	m.accepted(id.String(), spec.Provider)
	job, err = m.Get(ctx, id.String())
	return job, err == nil, err
}

// Validate checks a request as Submit would, without queueing anything
// (the scheduler checks job templates with it).
func (m *Manager) Validate(req apitypes.JobRequest) error {
	_, err := m.resolve(req)
	return err
}

// SubmitTx queues a job inside the caller's transaction, so that whatever
// caused it (a schedule firing) and the job commit together. The job exists
// only if tx commits; after the commit, call the returned function.
func (m *Manager) SubmitTx(ctx context.Context, tx *sql.Tx, req apitypes.JobRequest, submittedBy string) (id string, committed func(), err error) {
	if m.isStopping() {
		return "", nil, ErrStopping
	}
	spec, err := m.resolve(req)
	if err != nil {
		return "", nil, err
	}
	u, err := uuid.NewV7()
	if err != nil {
		return "", nil, err
	}
	if err := m.insertTx(ctx, tx, u.String(), spec, submittedBy, nil, nil); err != nil {
		return "", nil, err
	}
	return u.String(), func() { m.accepted(u.String(), spec.Provider) }, nil
}

// insertTx stores a new queued job, its queue entry, its first log line and
// its job.created event.
func (m *Manager) insertTx(ctx context.Context, tx *sql.Tx, id string, spec apitypes.JobSpec, submittedBy string, keyArg, hashArg any) error {
	if spec.Options.OutputDir == "" {
		spec.Options.OutputDir = filepath.Join(m.opts.ExportDir, id)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	now := m.opts.Now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO jobs
		(id, provider, vm, spec, state, submitted_by, idempotency_key, request_hash, max_attempts, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $9)`,
		id, spec.Provider, spec.VM, string(specJSON), submittedBy, keyArg, hashArg, spec.MaxAttempts, store.Micros(now)); err != nil {
		return err
	}
	if err := m.enqueueTx(ctx, tx, id); err != nil {
		return err
	}
	if err := insertLogs(ctx, tx, []logRecord{{jobID: id, at: now, level: slog.LevelInfo, msg: "job accepted",
		attrs: map[string]any{"by": principal(submittedBy), "provider": spec.Provider, "vm": spec.VM}}}); err != nil {
		return err
	}
	return m.emit(ctx, tx, apitypes.EventJobCreated, id)
}

// accepted records a committed submission.
func (m *Manager) accepted(id, provider string) {
	m.metrics.JobSubmitted(provider)
	m.hub.publish(id)
}

// enqueueTx queues a River job for jobID and records its River ID.
func (m *Manager) enqueueTx(ctx context.Context, tx *sql.Tx, jobID string) error {
	res, err := m.river.InsertTx(ctx, tx, exportArgs{JobID: jobID}, nil)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	_, err = tx.ExecContext(ctx, "UPDATE jobs SET river_job_id = $1 WHERE id = $2", res.Job.ID, jobID)
	return err
}

func (m *Manager) byIdempotencyKey(ctx context.Context, by, key, hash string) (*apitypes.Job, error) {
	var id, storedHash string
	err := m.db.SQL.QueryRowContext(ctx, "SELECT id, request_hash FROM jobs WHERE submitted_by = $1 AND idempotency_key = $2", by, key).Scan(&id, &storedHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if storedHash != hash {
		return nil, fmt.Errorf("%w: Idempotency-Key %q was already used for a different request (job %s)", ErrConflict, key, id)
	}
	return m.Get(ctx, id)
}

// resolve validates req and fills in defaults.
func (m *Manager) resolve(req apitypes.JobRequest) (apitypes.JobSpec, error) {
	var problems fielderr.List
	req.Provider = strings.TrimSpace(req.Provider)
	req.VM = strings.TrimSpace(req.VM)
	var inst *providers.Instance
	if req.Provider == "" {
		problems.Addf("provider", "required")
	} else if in, ok := m.providers.Get(req.Provider); !ok {
		problems.Addf("provider", "no provider named %q is configured", req.Provider)
	} else {
		inst = in
	}
	if req.VM == "" {
		problems.Addf("vm", "required")
	}
	o, optProblems := ResolveOptions(req, m.opts.Export)
	problems = append(problems, optProblems...)
	maxAttempts := m.opts.Jobs.MaxAttempts
	if req.MaxAttempts != 0 {
		maxAttempts = req.MaxAttempts
	}
	if maxAttempts < 1 || maxAttempts > 100 {
		problems.Addf("max_attempts", "must be between 1 and 100, got %d", maxAttempts)
	}
	if objstore.IsURL(req.Output) {
		if err := m.opts.OutputTargets.Check("output", req.Output); err != nil {
			l, _ := fielderr.Of(err)
			problems = append(problems, l...)
		}
		// The export directory (<export_dir>/<job id>) keeps the state.
		o.OutputURL = req.Output
	} else {
		out, err := m.outputDir(req.Output)
		if err != nil {
			problems.Addf("output", "%v", err)
		}
		o.OutputDir = out
	}
	if inst != nil {
		// The method is the provider's to name: checked against the
		// instance the job is for.
		if msg := providers.MethodProblem(inst, o.Method); msg != "" {
			problems.Addf("method", "%s", msg)
		}
	}
	if inst != nil && len(problems) == 0 {
		if err := inst.GetExportCapabilities().Validate(o); err != nil {
			problems.Addf("", "%s", strings.TrimPrefix(err.Error(), providers.ErrInvalidArgument.Error()+": "))
		}
	}
	if err := problems.Err(ErrInvalid); err != nil {
		return apitypes.JobSpec{}, err
	}
	return apitypes.JobSpec{Provider: req.Provider, VM: req.VM, Options: o, MaxAttempts: maxAttempts}, nil
}

// ResolveOptions checks the export options of req and fills in the
// defaults d; every problem is named by its request field. The daemon
// and hyperctl's standalone export share it, so both refuse the same
// options with the same words.
func ResolveOptions(req apitypes.JobRequest, d config.Export) (providers.ExportOptions, fielderr.List) {
	var problems fielderr.List
	o := providers.ExportOptions{
		Format:            providers.Format(d.Format),
		DiskFormat:        providers.DiskFormat(d.DiskFormat),
		Compress:          d.Compress,
		Compression:       d.Compression,
		CompressionLevel:  d.CompressionLevel,
		CleanupOVF:        d.CleanupOVF,
		ParallelDownloads: d.ParallelDownloads,
		BandwidthLimit:    d.BandwidthLimit,
		Snapshot:          req.Snapshot,
		PowerOff:          req.PowerOff,
		Method:            strings.TrimSpace(req.Method),
	}
	if req.Format != "" {
		o.Format = providers.Format(req.Format)
	}
	if req.DiskFormat != "" {
		o.DiskFormat = providers.DiskFormat(req.DiskFormat)
	}
	if req.VHDType != "" {
		o.VHDType = req.VHDType
	} else if o.DiskFormat == providers.DiskVHD {
		o.VHDType = d.VHDType // the default applies to VHD disks only
	}
	if req.Compress != nil {
		o.Compress = *req.Compress
	}
	if req.Compression != "" {
		o.Compression = req.Compression
	}
	if req.CompressionLevel != nil {
		o.CompressionLevel = *req.CompressionLevel
	}
	problems = append(problems, pipeline.OptionProblems(o)...)
	if req.CleanupOVF != nil {
		o.CleanupOVF = *req.CleanupOVF
	}
	if req.ParallelDownloads != 0 {
		o.ParallelDownloads = req.ParallelDownloads
	}
	if o.ParallelDownloads < 1 || o.ParallelDownloads > 32 {
		problems.Addf("parallel_downloads", "must be between 1 and 32, got %d", o.ParallelDownloads)
	}
	if req.BandwidthLimit < 0 {
		problems.Addf("bandwidth_limit", "must not be negative")
	} else if req.BandwidthLimit > 0 {
		o.BandwidthLimit = req.BandwidthLimit
	}
	if req.Snapshot && req.PowerOff {
		problems.Addf("power_off", "a snapshot export and a power-off export exclude each other: choose one")
	}
	if req.PowerOffTimeout != "" {
		t, err := time.ParseDuration(req.PowerOffTimeout)
		if err != nil || t <= 0 {
			problems.Addf("power_off_timeout", "must be a positive duration such as 5m, got %q", req.PowerOffTimeout)
		}
		o.PowerOffTimeout = t
	}
	return o, problems
}

// outputDir resolves a requested output directory. "" becomes a per-job
// directory, filled in when the job is created; relative paths live under
// the export directory; absolute paths must be under an allowed root.
func (m *Manager) outputDir(req string) (string, error) {
	if req == "" {
		return "", nil
	}
	if strings.ContainsRune(req, 0) {
		return "", errors.New("contains a NUL byte")
	}
	var p string
	if filepath.IsAbs(req) {
		p = filepath.Clean(req)
	} else {
		p = filepath.Join(m.opts.ExportDir, req)
	}
	_, rel, ok := m.outputRoot(p, m.allowedRoots())
	switch {
	case !ok:
		return "", fmt.Errorf("%q is outside the allowed export roots (%s)", req, strings.Join(m.allowedRoots(), ", "))
	case rel == ".":
		return "", fmt.Errorf("%q is an export root itself; name a directory inside it", req)
	}
	return p, nil
}

// allowedRoots are the roots a requested output directory must be under.
func (m *Manager) allowedRoots() []string {
	if len(m.opts.AllowedRoots) == 0 {
		return []string{m.opts.ExportDir}
	}
	return m.opts.AllowedRoots
}

// outputRoot finds the innermost of roots that p lies under and p's path
// relative to it.
func (m *Manager) outputRoot(p string, roots []string) (root, rel string, ok bool) {
	for _, r := range roots {
		if rr, found := safepath.Rel(r, p); found && (!ok || len(r) > len(root)) {
			root, rel, ok = filepath.Clean(r), rr, true
		}
	}
	return root, rel, ok
}

// openOutput creates and opens an export's output directory beneath its
// root (an allowed root, or the export directory for per-job directories)
// without following any link below the root, so that a link planted there
// cannot send the export elsewhere. The check runs when the job runs, as
// that is when the files are written; the provider writes through the
// returned root only.
func (m *Manager) openOutput(dir string) (*os.Root, error) {
	root, rel, ok := m.outputRoot(dir, append(slices.Clone(m.allowedRoots()), m.opts.ExportDir))
	if !ok || rel == "." {
		return nil, fmt.Errorf("output %s: outside the allowed export roots (%s)", dir, strings.Join(m.allowedRoots(), ", "))
	}
	r, err := safepath.OpenPath(root, rel, 0o750)
	if err != nil {
		return nil, fmt.Errorf("output %w", err)
	}
	return r, nil
}

type nopMetrics struct{}

func (nopMetrics) JobSubmitted(string)                                  {}
func (nopMetrics) JobFinished(string, apitypes.JobState, time.Duration) {}
func (nopMetrics) ExportBytes(string, int64)                            {}
func (nopMetrics) JobRetried(string)                                    {}
func (nopMetrics) ResumedBytes(string, int64)                           {}
