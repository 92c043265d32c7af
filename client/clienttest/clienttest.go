package clienttest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/api"
	"github.com/hypersdk/hypersdk/daemon/cluster"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/scheduler"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/providertest"
)

// Tokens of the test server, one per role.
const (
	ViewerToken   = "clienttest-viewer-0123456789"
	OperatorToken = "clienttest-operator-0123456789"
	AdminToken    = "clienttest-admin-0123456789"
)

// Provider is the name of the fake provider instance.
const Provider = "lab"

// Server is a running in-process API.
type Server struct {
	*httptest.Server
	// Fake is the provider behind "lab" (four VMs vm-000…vm-003).
	Fake *providertest.Fake
	// Jobs is the job engine, for assertions that bypass the API.
	Jobs *jobs.Manager
	// ExportDir is where relative job outputs land.
	ExportDir string
	// Webhooks is the webhook service behind /webhooks, also receiving
	// the job engine's events as in hypervisord. It may deliver to
	// loopback receivers (httptest servers) and retries after 10ms, 20ms,
	// then every 40ms.
	Webhooks *webhooks.Service
	// Scheduler serves /schedules and records the outcome of the jobs it
	// submitted, as in hypervisord, but its loop is not started: nothing
	// fires on its own. Tests run schedules through the API's run, or
	// fire due ones with Scheduler.RunDue after moving Options.Now on.
	Scheduler *scheduler.Scheduler
}

// Options tune the server. Fake settings must be made here, before any
// job runs.
type Options struct {
	// Fake is called with the provider before the engine starts.
	Fake func(*providertest.Fake)
	// MaxAttempts is jobs.max_attempts (default 3).
	MaxAttempts int
	// MaxConcurrent is jobs.max_concurrent (default 4).
	MaxConcurrent int
	// TLS serves HTTPS with httptest's self-signed certificate (see
	// Server.Certificate).
	TLS bool
	// Now is the scheduler's clock (nil: time.Now): due times, next runs,
	// execution times and lags follow it; jobs keep the real clock.
	Now func() time.Time
	// Providers are served beside the fake (e.g. a vSphere provider on
	// the simulator), under their own names.
	Providers []providers.Provider
}

// NewServer starts the API; it stops when the test ends.
func NewServer(t testing.TB, o Options) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fake := providertest.NewFake(Provider)
	if o.Fake != nil {
		o.Fake(fake)
	}
	insts := []*providers.Instance{{Provider: fake}}
	for _, p := range o.Providers {
		insts = append(insts, &providers.Instance{Provider: p})
	}
	set, err := providers.NewSet(log, insts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.ConnectAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.API.Tokens = []config.Token{
		{Name: "ci-viewer", Role: config.RoleViewer, Token: config.NewSecret(ViewerToken)},
		{Name: "ci-operator", Role: config.RoleOperator, Token: config.NewSecret(OperatorToken)},
		{Name: "ci-admin", Role: config.RoleAdmin, Token: config.NewSecret(AdminToken)},
	}
	if o.MaxAttempts > 0 {
		cfg.Jobs.MaxAttempts = o.MaxAttempts
	}
	if o.MaxConcurrent > 0 {
		cfg.Jobs.MaxConcurrent = o.MaxConcurrent
	}
	cfg.Jobs.RetryBackoff, cfg.Jobs.RetryBackoffMax = 50*time.Millisecond, 100*time.Millisecond
	tokens, err := api.NewTokens(cfg.API.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t, store.SQLite)
	exportDir := t.TempDir()
	// Retries 10ms, 20ms, then every 40ms: an endpoint's retries are spent
	// within a fraction of a second.
	hooks, err := webhooks.New(db, webhooks.Options{
		NodeID: "clienttest", AllowPrivateTargets: true, PollInterval: 20 * time.Millisecond, DataDir: t.TempDir(), Logger: log,
		Schedule: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Job events go to webhooks and, for scheduled jobs, to the schedule's
	// execution history, wired as hypervisord wires them.
	engine, err := jobs.New(db, set, jobs.Options{
		NodeID: "clienttest", Jobs: cfg.Jobs, Export: cfg.Export, ExportDir: exportDir,
		HeartbeatInterval: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond, Logger: log,
		Events: jobs.EventSinks{hooks, scheduler.ExecutionRecorder{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sched := scheduler.New(db, engine, scheduler.Options{Now: o.Now, Events: hooks, Logger: log})
	if err := hooks.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(context.Background()); err != nil {
		_ = hooks.Stop(context.Background())
		t.Fatal(err)
	}
	member, err := cluster.New(db, cluster.Options{NodeID: "clienttest", Advertise: "http://clienttest.invalid", Version: "clienttest",
		Capacity: cfg.Jobs.MaxConcurrent, Running: engine.Running, Logger: log})
	if err == nil {
		err = member.Start(context.Background())
	}
	if err != nil {
		_ = engine.Stop(context.Background())
		_ = hooks.Stop(context.Background())
		t.Fatal(err)
	}
	srv := api.New(api.Options{Jobs: engine, Providers: set, Webhooks: hooks, Scheduler: sched, Cluster: member, Tokens: tokens, Logger: log,
		Version: "clienttest", NodeID: "clienttest", Database: db.String(),
		Ready: func(ctx context.Context) error { return db.SQL.PingContext(ctx) }})
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn) // quiet: tests provoke TLS errors
	if o.TLS {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	t.Cleanup(func() {
		// Followed log streams end when the job ends; close them anyway so
		// that Close does not wait for a test that left one open.
		hs.CloseClientConnections()
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = member.Stop(ctx)
		_ = engine.Stop(ctx)
		_ = hooks.Stop(ctx)
	})
	return &Server{Server: hs, Fake: fake, Jobs: engine, ExportDir: exportDir, Webhooks: hooks, Scheduler: sched}
}

// JobCount returns how many jobs the engine holds.
func (s *Server) JobCount(t testing.TB) int {
	t.Helper()
	n := 0
	f := apitypes.JobFilter{Limit: 1000}
	for {
		items, next, err := s.Jobs.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(items)
		if next == "" {
			return n
		}
		f.Cursor = next
	}
}
