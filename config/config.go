package config

import (
	"os"
	"path/filepath"
	"time"
)

// Config is the whole daemon configuration. YAML keys are the snake_case
// names in the tags; the seed configuration's sections (vcenter,
// connection_pool, webhooks, export, database) are all here.
type Config struct {
	// DataDir holds the database, the generated admin token and, by default,
	// exports. Default: $XDG_DATA_HOME/hypersdk or ~/.local/share/hypersdk.
	DataDir string `yaml:"data_dir"`

	Log      Log      `yaml:"log"`
	API      API      `yaml:"api"`
	Database Database `yaml:"database"`
	Jobs     Jobs     `yaml:"jobs"`
	Export   Export   `yaml:"export"`

	// VCenter is the seed configuration's single vCenter: a provider
	// instance of type vsphere (SeedVCenterType) named "vcenter" unless it
	// sets a name. Its settings are decoded by the vsphere decoder.
	VCenter        *ProviderInstance `yaml:"vcenter"`
	ConnectionPool Pool              `yaml:"connection_pool"`

	// Providers are named provider instances (two vCenters, an AWS
	// account…). See ProviderInstance.
	Providers []ProviderInstance `yaml:"providers"`

	Webhooks        []Webhook       `yaml:"webhooks"`
	WebhookDelivery WebhookDelivery `yaml:"webhook_delivery"`

	Cluster Cluster `yaml:"cluster"`

	// Demo tunes the simulated platforms of --demo; without --demo it is
	// ignored.
	Demo Demo `yaml:"demo"`

	// OutputTargets are the object stores exports may be written to
	// (output s3://…, gs://…, azblob://…).
	OutputTargets []OutputTarget `yaml:"output_targets"`

	// path is the file this configuration was read from, if any.
	path string
}

// Path returns the configuration file the values came from ("" if none).
func (c *Config) Path() string { return c.path }

// Log configures the daemon's structured logs.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// API configures the HTTP server.
type API struct {
	// Listen is the address of the REST API, default 127.0.0.1:8080.
	Listen  string `yaml:"listen"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Tokens are the accepted bearer tokens. With none configured the daemon
	// generates an admin token at <data_dir>/admin.token on first start.
	Tokens []Token `yaml:"tokens"`
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Roles a token can carry; each includes the rights of the ones before it.
const (
	RoleViewer   = "viewer"   // read everything
	RoleOperator = "operator" // plus submit and cancel jobs
	RoleAdmin    = "admin"    // plus delete, manage webhooks and schedules
)

// Token is one API credential.
type Token struct {
	Name  string `yaml:"name"`
	Role  string `yaml:"role"`
	Token Secret `yaml:"token"`
}

// Database selects the store: SQLite at Path (default) or PostgreSQL at URL.
type Database struct {
	// Path is the SQLite file, default <data_dir>/hypersdk.db.
	Path string `yaml:"path"`
	// EnableWAL is accepted for compatibility with the seed configuration;
	// WAL is always on (River and the daemon's concurrency need it), so
	// false is rejected.
	EnableWAL *bool `yaml:"enable_wal"`
	// URL, when set, selects PostgreSQL: postgres://user@host:5432/db or a
	// libpq key/value string (host=h dbname=db). It is printed only through
	// RedactDSN.
	URL Secret `yaml:"url"`
	// MaxConns caps the PostgreSQL connection pool.
	MaxConns int `yaml:"max_conns"`
}

// Jobs configures the durable job engine.
type Jobs struct {
	// MaxConcurrent is how many exports this daemon runs at once.
	MaxConcurrent int `yaml:"max_concurrent"`
	// PerProviderLimit caps concurrent exports per provider instance (across
	// all daemons sharing the database); a provider instance may set a
	// lower max_concurrent. 0 means only MaxConcurrent applies.
	PerProviderLimit int `yaml:"per_provider_limit"`
	// MaxAttempts is how many times a job runs before it fails for good;
	// permanent errors (unknown VM, bad credentials) are never retried.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the delay before the first retry; it doubles up to
	// RetryBackoffMax.
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max"`
	// Timeout bounds one attempt; 0 means no limit.
	Timeout time.Duration `yaml:"timeout"`
	// Retention is how long finished jobs are kept; 0 keeps them forever.
	Retention time.Duration `yaml:"retention"`
	// HeartbeatStale is how long a running job may go without a heartbeat
	// before another daemon (or this one, after a crash) takes it over.
	HeartbeatStale time.Duration `yaml:"heartbeat_stale"`
}

// Export holds defaults for every export; a job request overrides them.
type Export struct {
	// OutputDir is where exports go when a job names a relative directory
	// or none. Default <data_dir>/exports.
	OutputDir string `yaml:"output_dir"`
	// AllowedRoots are the directories absolute output paths must be under.
	// Default: OutputDir only.
	AllowedRoots      []string `yaml:"allowed_roots"`
	Format            string   `yaml:"format"`      // ovf, ova or disks
	DiskFormat        string   `yaml:"disk_format"` // vmdk, raw, qcow2, vhd or vhdx
	VHDType           string   `yaml:"vhd_type"`    // dynamic or fixed, for vhd
	Compress          bool     `yaml:"compress"`
	Compression       string   `yaml:"compression"` // gzip or zstd
	CompressionLevel  int      `yaml:"compression_level"`
	CleanupOVF        bool     `yaml:"cleanup_ovf"`
	ParallelDownloads int      `yaml:"parallel_downloads"`
	// BandwidthLimit caps each export, in bytes per second (0: unlimited).
	BandwidthLimit int64 `yaml:"bandwidth_limit"`
}

// OutputTarget is an object store exports may be written to: an output
// URL under URL (the longest matching target wins) uses its endpoint and
// credentials.
type OutputTarget struct {
	Name string `yaml:"name"`
	// URL is the prefix of the outputs it serves: s3://bucket/,
	// s3://bucket/prefix/, gs://bucket/, azblob://account/ or
	// azblob://account/container/.
	URL string `yaml:"url"`
	// Endpoint replaces the service's URL (MinIO, an emulator); it passes
	// the SSRF guard unless AllowPrivate.
	Endpoint string `yaml:"endpoint"`
	// AllowPrivate lets Endpoint be a loopback or private address.
	AllowPrivate bool `yaml:"allow_private"`
	// S3: region, static keys (empty: the SDK's default chain), path-style
	// addressing.
	Region          string `yaml:"region"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey Secret `yaml:"secret_access_key"`
	PathStyle       bool   `yaml:"path_style"`
	// GCS: a service account key file (empty: application default
	// credentials); Anonymous for an emulator.
	CredentialsFile string `yaml:"credentials_file"`
	Anonymous       bool   `yaml:"anonymous"`
	// Azure: the storage account's shared key.
	AccountKey Secret `yaml:"account_key"`
}

// Pool configures pooled vSphere sessions (seed 1.1).
type Pool struct {
	Enabled             bool          `yaml:"enabled"`
	MaxConnections      int           `yaml:"max_connections"`
	IdleTimeout         time.Duration `yaml:"idle_timeout"`
	HealthCheckInterval time.Duration `yaml:"health_check_interval"`
}

// Webhook is one notification endpoint (seed 1.2).
type Webhook struct {
	URL     string            `yaml:"url"`
	Events  []string          `yaml:"events"`
	Headers map[string]Secret `yaml:"headers"`
	Timeout time.Duration     `yaml:"timeout"`
	// Retry is how many times a failed delivery is retried (unset: the
	// full Standard Webhooks schedule; 0: never).
	Retry   *int   `yaml:"retry"`
	Enabled *bool  `yaml:"enabled"`
	Secret  Secret `yaml:"secret"`
}

// IsEnabled reports whether the endpoint is enabled (default true).
func (w Webhook) IsEnabled() bool { return w.Enabled == nil || *w.Enabled }

// WebhookDelivery holds settings for all webhook delivery.
type WebhookDelivery struct {
	// AllowPrivateTargets permits loopback, link-local and private
	// addresses as webhook targets (off by default: SSRF guard).
	AllowPrivateTargets bool `yaml:"allow_private_targets"`
	// Workers is how many deliveries this daemon sends at once.
	Workers int `yaml:"workers"`
	// RetrySchedule replaces the Standard Webhooks retry schedule (5s, 5m,
	// 30m, 2h, 5h, 10h, 10h); an endpoint's retry: N uses its first N steps.
	RetrySchedule []time.Duration `yaml:"retry_schedule"`
	// ProgressInterval throttles job.progress events per job.
	ProgressInterval time.Duration `yaml:"progress_interval"`
	// Retention is how long sent and failed deliveries (and their events
	// and attempts) are kept for the history; pending ones are never
	// deleted.
	Retention time.Duration `yaml:"retention"`
}

// Cluster configures how daemons sharing one database see each other. A
// single daemon is a cluster of one: the same settings apply.
type Cluster struct {
	// Advertise is the API base URL other members and clients use to reach
	// this daemon (https://node-a.example:8080). Default: derived from the
	// listen address.
	Advertise string `yaml:"advertise"`
	// HeartbeatInterval is how often the daemon renews its registration and,
	// when it leads, its leader lease.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// DeadAfter is how long a member may go without a heartbeat before it is
	// shown dead; it is also the leader lease, so a dead leader is replaced
	// within it.
	DeadAfter time.Duration `yaml:"dead_after"`
	// MaxConcurrent caps the exports running across all daemons sharing the
	// database (0: only each daemon's jobs.max_concurrent applies).
	MaxConcurrent int `yaml:"max_concurrent"`
}

// Demo tunes the simulated platforms of --demo.
type Demo struct {
	// ExtraVMs adds small VMs bench-001… to the demo vCenter's five (one
	// export of a VM runs at a time, so more VMs allow more exports at
	// once, e.g. for a benchmark).
	ExtraVMs int `yaml:"extra_vms"`
	// MaxConcurrent is each demo provider instance's max_concurrent, a cap
	// across all daemons sharing the database (default 2; 0: only the jobs
	// limits apply).
	MaxConcurrent *int `yaml:"max_concurrent"`
}

// DemoMaxConcurrent is Demo.MaxConcurrent with its default.
func (d Demo) DemoMaxConcurrent() int {
	if d.MaxConcurrent == nil {
		return 2
	}
	return *d.MaxConcurrent
}

// Default returns the configuration used when nothing is configured.
func Default() *Config {
	return &Config{
		DataDir: DefaultDataDir(),
		Log:     Log{Level: "info", Format: "text"},
		API: API{
			Listen:       "127.0.0.1:8080",
			MaxBodyBytes: 1 << 20,
		},
		Database: Database{MaxConns: 10},
		Jobs: Jobs{
			MaxConcurrent:   4,
			MaxAttempts:     3,
			RetryBackoff:    10 * time.Second,
			RetryBackoffMax: 10 * time.Minute,
			HeartbeatStale:  30 * time.Second,
		},
		Export: Export{
			Format:            "ovf",
			DiskFormat:        "vmdk",
			CleanupOVF:        true, // an OVA export keeps no second copy of its disks
			Compression:       "gzip",
			CompressionLevel:  6,
			ParallelDownloads: 3,
		},
		ConnectionPool: Pool{
			Enabled:             true,
			MaxConnections:      5,
			IdleTimeout:         5 * time.Minute,
			HealthCheckInterval: 30 * time.Second,
		},
		WebhookDelivery: WebhookDelivery{Workers: 4, ProgressInterval: 2 * time.Second, Retention: 30 * 24 * time.Hour},
		Cluster:         Cluster{HeartbeatInterval: 2 * time.Second, DeadAfter: 15 * time.Second},
	}
}

// DefaultDataDir is the data directory used when none is configured:
// $XDG_DATA_HOME/hypersdk or ~/.local/share/hypersdk.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "hypersdk")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "hypersdk")
	}
	return "hypersdk-data"
}

// DatabasePath is the SQLite file in use.
func (c *Config) DatabasePath() string {
	if c.Database.Path != "" {
		return c.Database.Path
	}
	return filepath.Join(c.DataDir, "hypersdk.db")
}

// ExportDir is the directory relative export paths resolve against.
func (c *Config) ExportDir() string {
	if c.Export.OutputDir != "" {
		return c.Export.OutputDir
	}
	return filepath.Join(c.DataDir, "exports")
}

// UsesPostgres reports whether the store is PostgreSQL.
func (c *Config) UsesPostgres() bool { return c.Database.URL.IsSet() }
