// Command hypervisord is the HyperSDK daemon: it runs export jobs on a
// durable queue, serves the REST API and metrics, and is the one place
// where HyperSDK's parts are wired together.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
	_ "time/tzdata" // schedule time zones work on hosts without a zone database

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/api"
	"github.com/hypersdk/hypersdk/daemon/cluster"
	"github.com/hypersdk/hypersdk/daemon/events"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/metrics"
	"github.com/hypersdk/hypersdk/daemon/scheduler"
	"github.com/hypersdk/hypersdk/daemon/stats"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/aws"
	"github.com/hypersdk/hypersdk/providers/azure"
	"github.com/hypersdk/hypersdk/providers/gcp"
	"github.com/hypersdk/hypersdk/providers/hyperv"
	"github.com/hypersdk/hypersdk/providers/proxmox"
	"github.com/hypersdk/hypersdk/providers/vsphere"
	"github.com/hypersdk/hypersdk/web/dashboard"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, productionRegistry())
	stop()
	os.Exit(code)
}

// productionRegistry lists the providers this build can run, each with its
// configuration decoder, factory and demo backend. This is the one place
// provider types are wired in.
func productionRegistry() *providers.Registry {
	r := providers.NewRegistry()
	// vSphere first: its demo keeps the plain name "demo".
	providers.Register(r, providers.TypeVSphere, vsphere.Registration())
	providers.Register(r, providers.TypeAWS, aws.Registration())
	providers.Register(r, providers.TypeGCP, gcp.Registration())
	providers.Register(r, providers.TypeHyperV, hyperv.Registration())
	providers.Register(r, providers.TypeProxmox, proxmox.Registration())
	providers.Register(r, providers.TypeAzure, azure.Registration())
	return r
}

func buildVersion() (string, string) {
	v, rev := version, "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	return v, rev
}

type flags struct {
	config, listen, dataDir, logLevel, logFormat string
	checkConfig, showVersion, demo, healthcheck  bool
}

func parseFlags(args []string, stderr io.Writer) (*flags, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("hypervisord", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &flags{}
	fs.StringVar(&f.config, "config", "", "configuration file (YAML)")
	fs.StringVar(&f.listen, "listen", "", "API listen address (default 127.0.0.1:8080; config api.listen, env HYPERSDK_API_LISTEN)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory: database, admin token, exports (config data_dir, env HYPERSDK_DATA_DIR)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (config log.level)")
	fs.StringVar(&f.logFormat, "log-format", "", "text or json (config log.format)")
	fs.BoolVar(&f.checkConfig, "check-config", false, "validate the configuration and exit")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&f.healthcheck, "healthcheck", false, "probe /healthz of the daemon this configuration describes on this host; exit 0 if it answers 200, 1 otherwise (a container HEALTHCHECK)")
	fs.BoolVar(&f.demo, "demo", false, "also start a simulated vCenter with demo VMs, registered as provider \"demo\", and simulated AWS, Azure, Google Cloud, Hyper-V and Proxmox VE platforms as providers \"demo-aws\", \"demo-azure\", \"demo-gcp\", \"demo-hyperv\" and \"demo-proxmox\"")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hypervisord [flags]\n\nRuns the HyperSDK daemon. Settings come from defaults, then --config, then HYPERSDK_* environment variables, then flags.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return f, fs, fs.Parse(args)
}

// loadConfig applies file, environment and flags, in that order.
func loadConfig(f *flags, decoders config.Decoders) (*config.Config, error) {
	path := f.config
	if path == "" {
		path = os.Getenv("HYPERSDK_CONFIG")
	}
	cfg, err := config.Load(path, os.LookupEnv, decoders)
	if err != nil {
		return nil, err
	}
	if f.listen != "" {
		cfg.API.Listen = f.listen
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	if f.logLevel != "" {
		cfg.Log.Level = f.logLevel
	}
	if f.logFormat != "" {
		cfg.Log.Format = f.logFormat
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, registry *providers.Registry) int {
	f, _, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	ver, rev := buildVersion()
	if f.showVersion {
		fmt.Fprintf(stdout, "hypervisord %s (%s)\n", ver, rev)
		return 0
	}
	cfg, err := loadConfig(f, registry.Decoders())
	if err != nil {
		fmt.Fprintf(stderr, "hypervisord: %v\n", err)
		return 2
	}
	if f.checkConfig {
		return checkConfig(cfg, registry, stdout, stderr)
	}
	if f.healthcheck {
		return healthcheck(ctx, cfg, stdout, stderr)
	}
	log := newLogger(cfg.Log, stderr)
	if err := serve(ctx, cfg, registry, log, ver, rev, f.demo, stdout); err != nil {
		log.Error("hypervisord stopped with an error", "err", err)
		return 1
	}
	return 0
}

func checkConfig(cfg *config.Config, registry *providers.Registry, stdout, stderr io.Writer) int {
	var problems []string
	for _, inst := range cfg.ProviderInstances() {
		if _, err := registry.Create(inst, providers.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pool: cfg.ConnectionPool}); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "hypervisord: invalid configuration:\n%s\n", strings.Join(problems, "\n"))
		return 2
	}
	src := cfg.Path()
	if src == "" {
		src = "defaults and environment"
	}
	db := "sqlite " + cfg.DatabasePath()
	if cfg.UsesPostgres() {
		db = "postgres " + config.RedactDSN(cfg.Database.URL.Reveal())
	}
	fmt.Fprintf(stdout, "configuration OK (%s): listen %s, data dir %s, database %s, %d provider(s), %d webhook(s)\n",
		src, cfg.API.Listen, cfg.DataDir, db, len(cfg.ProviderInstances()), len(cfg.Webhooks))
	return 0
}

// serve runs the daemon until ctx is cancelled (SIGINT/SIGTERM), then shuts
// down gracefully: stop accepting requests, hand running jobs back to the
// queue, disconnect providers, close the store.
func serve(ctx context.Context, cfg *config.Config, registry *providers.Registry, log *slog.Logger, ver, rev string, demo bool, stdout io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// The lock comes before anything else touches the data dir; the
	// listener right after it, so the lock records the real address (a
	// second daemon names it) and a busy port fails before any work.
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.API.Listen, err)
	}
	defer ln.Close()
	scheme := "http"
	if cfg.API.TLSCert != "" {
		scheme = "https"
	}
	endpoint := fmt.Sprintf("%s://%s", scheme, advertised(ln.Addr().String()))
	if err := lock.record(os.Getpid(), endpoint); err != nil {
		return err
	}

	nodeID, err := jobs.LoadNodeID(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	log = log.With("node", nodeID)
	log.Info("starting hypervisord", "version", ver, "revision", rev, "data_dir", cfg.DataDir)

	db, err := store.Open(ctx, store.Options{Path: cfg.DatabasePath(), URL: cfg.Database.URL.Reveal(), MaxConns: cfg.Database.MaxConns, Logger: log.With("component", "store")})
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("store ready", "database", db.String())

	tokens, err := api.NewTokens(cfg.API.Tokens)
	if err != nil {
		return err
	}
	if tokens.Len() == 0 {
		token, path, created, err := api.EnsureAdminToken(cfg.DataDir)
		if err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		if err := tokens.Add("admin", config.RoleAdmin, token); err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stdout, "No API tokens configured: generated an admin token in %s (mode 0600). hyperctl on this host uses it automatically.\n", path)
		}
		log.Info("using the generated admin token", "file", path)
	}

	instConfigs := cfg.ProviderInstances()
	if demo {
		demos, stopDemos, err := registry.StartDemos(ctx, log.With("component", "demo"),
			providers.DemoOptions{ExtraVMs: cfg.Demo.ExtraVMs, MaxConcurrent: cfg.Demo.DemoMaxConcurrent()})
		if err != nil {
			return err
		}
		defer stopDemos()
		instConfigs = append(instConfigs, demos...)
	}
	provLog := log.With("component", "providers")
	var instances []*providers.Instance
	for _, inst := range instConfigs {
		p, err := registry.Create(inst, providers.Deps{Logger: provLog.With("provider", inst.Name), Pool: cfg.ConnectionPool})
		if err != nil {
			return err
		}
		instances = append(instances, &providers.Instance{Provider: p, Limit: inst.MaxConcurrent})
	}
	set, err := providers.NewSet(provLog, instances...)
	if err != nil {
		return err
	}
	defer set.Close()

	m := metrics.New(ver, rev, log)
	m.RegisterPools(set.List)
	m.RegisterProviders(set.List)
	m.RegisterStore(db.SQL.PingContext)
	set.Observe(m)

	hooks, err := webhooks.New(db, webhooks.Options{
		NodeID: nodeID, AllowPrivateTargets: cfg.WebhookDelivery.AllowPrivateTargets, Workers: cfg.WebhookDelivery.Workers,
		Schedule: cfg.WebhookDelivery.RetrySchedule, ProgressInterval: cfg.WebhookDelivery.ProgressInterval, Retention: cfg.WebhookDelivery.Retention,
		DataDir: cfg.DataDir, UserAgent: "HyperSDK-Webhooks/" + ver, Logger: log.With("component", "webhooks"), Metrics: m,
	})
	if err != nil {
		return err
	}
	secretFiles, err := hooks.SyncConfig(ctx, cfg.Webhooks)
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	for _, f := range secretFiles {
		fmt.Fprintf(stdout, "Generated a signing secret for a configured webhook endpoint: %s (mode 0600).\n", f)
	}
	m.RegisterWebhooks(hooks.Pending)
	m.RegisterWebhookBacklog(hooks.OldestPending, time.Now)

	// Job events go to webhooks and, for scheduled jobs, to the schedule's
	// execution history. The scheduler then submits through the engine
	// (scheduler.Jobs): each side knows the other by an interface only.
	var member *cluster.Node
	targets, err := outputTargets(cfg.OutputTargets)
	if err != nil {
		return err
	}
	if demo {
		t, stop, err := startDemoOutput()
		if err != nil {
			return fmt.Errorf("demo output target: %w", err)
		}
		defer stop()
		targets = append(targets, t)
	}
	engine, err := jobs.New(db, set, jobs.Options{
		NodeID: nodeID, Jobs: cfg.Jobs, Export: cfg.Export, ExportDir: cfg.ExportDir(), AllowedRoots: cfg.Export.AllowedRoots,
		OutputTargets: targets,
		Logger:        log.With("component", "jobs"), Metrics: m, Events: jobs.EventSinks{hooks, scheduler.ExecutionRecorder{}},
		ProgressEvents: cfg.WebhookDelivery.ProgressInterval,
		ClusterLimit:   cfg.Cluster.MaxConcurrent, IsLeader: func() bool { return member.IsLeader() },
	})
	if err != nil {
		return err
	}
	m.RegisterJobs(engine.Counts)
	m.RegisterActiveJobs(activeJobs(engine), set.List, time.Now)
	sched := scheduler.New(db, engine, scheduler.Options{Events: hooks, Metrics: m, Logger: log.With("component", "scheduler")})
	m.RegisterSchedules(sched.Counts)
	m.RegisterScheduleNextRuns(sched.NextRuns)
	advertise := cfg.Cluster.Advertise
	if advertise == "" {
		advertise = endpoint
	}
	member, err = cluster.New(db, cluster.Options{
		NodeID: nodeID, Advertise: advertise, Version: ver, Capacity: cfg.Jobs.MaxConcurrent, Running: engine.Running,
		HeartbeatInterval: cfg.Cluster.HeartbeatInterval, DeadAfter: cfg.Cluster.DeadAfter,
		Lead: leaderDuties(sched, set, engine, m, log), Logger: log.With("component", "cluster"),
	})
	if err != nil {
		return err
	}
	if err := hooks.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := hooks.Stop(sctx); err != nil {
			log.Warn("webhook delivery did not stop cleanly", "err", err)
		}
	}()

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	provDone := make(chan struct{})
	go func() { defer close(provDone); set.Run(bg, cfg.ConnectionPool.HealthCheckInterval) }()

	if err := engine.Start(ctx); err != nil {
		return err
	}
	// Registered once the engine runs: a member takes exports, and may
	// lead (run the schedules and sweeps) from here on.
	if err := member.Start(ctx); err != nil {
		return err
	}
	memberStopped := false
	stopMember := func() {
		if memberStopped {
			return
		}
		memberStopped = true
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := member.Stop(sctx); err != nil {
			log.Warn("leaving the cluster did not complete", "err", err)
		}
	}
	defer stopMember()
	engineStopped := false
	stopEngine := func() {
		if engineStopped {
			return
		}
		engineStopped = true
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := engine.Stop(sctx); err != nil {
			log.Warn("job engine did not stop cleanly", "err", err)
		}
	}
	defer stopEngine()

	sampler := stats.New(db, engine, stats.Options{NodeID: nodeID, Logger: log.With("component", "stats")})
	sampler.Start(bg)
	defer sampler.Stop()

	srv := api.New(api.Options{
		Jobs: engine, Providers: set, Webhooks: hooks, Scheduler: sched, Cluster: member, Tokens: tokens, Metrics: m, Logger: log.With("component", "api"),
		Events: events.New(db, events.Options{}), Stats: sampler, Dashboard: dashboard.FS(),
		MaxBodyBytes: cfg.API.MaxBodyBytes, Version: ver, NodeID: nodeID, Database: db.String(),
		Ready: func(ctx context.Context) error {
			if err := db.SQL.PingContext(ctx); err != nil {
				return err
			}
			return member.Ready()
		},
	})
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return bg },
	}
	if cfg.API.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.API.TLSCert, cfg.API.TLSKey)
		if err != nil {
			return fmt.Errorf("api.tls_cert/api.tls_key: %w", err)
		}
		httpSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, httpSrv.TLSConfig)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	log.Info("API listening", "url", endpoint)
	fmt.Fprintf(stdout, "hypervisord %s listening on %s (data dir %s)\n", ver, endpoint, cfg.DataDir)
	if demo {
		printDemoHelp(stdout, endpoint, cfg.ExportDir())
	}
	// Written last: its appearance tells hyperctl (and tests) the daemon is up.
	if err := writeEndpoint(cfg.DataDir, endpoint); err != nil {
		log.Warn("could not record the API endpoint for hyperctl", "err", err)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down: stopping the API, handing running jobs back to the queue")
	case err := <-serveErr:
		return fmt.Errorf("API server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stopBG() // ends log streams and health checks
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("API shutdown", "err", err)
	}
	// Leadership first, so another node takes the schedules over within a
	// heartbeat while this one hands its exports back.
	stopMember()
	stopEngine()
	<-provDone
	log.Info("hypervisord stopped")
	return nil
}

// advertised turns a listen address into one a local client can dial.
func advertised(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func writeEndpoint(dataDir, url string) error {
	return safepath.WriteFile(dataDir, apitypes.EndpointFile, []byte(url+"\n"), 0o600)
}

// activeJobs adapts the engine's queued and running jobs to the metrics'
// view of them (each package keeps its own type).
func activeJobs(engine *jobs.Manager) metrics.ActiveJobs {
	return func(ctx context.Context) ([]metrics.ActiveJob, error) {
		active, err := engine.Active(ctx)
		out := make([]metrics.ActiveJob, len(active))
		for i, j := range active {
			out[i] = metrics.ActiveJob(j)
		}
		return out, err
	}
}
