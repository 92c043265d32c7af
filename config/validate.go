package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hypersdk/hypersdk/internal/netguard"
)

// Validate checks every setting and returns all problems at once, each
// naming its key and what is allowed.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	intRange := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(key, "must be between %d and %d, got %d", lo, hi, v)
		}
	}
	durRange := func(key string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			bad(key, "must be between %s and %s, got %s", lo, hi, v)
		}
	}
	oneOf := func(key, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			bad(key, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
		}
	}

	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", c.Log.Format, "text", "json")

	if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
		bad("api.listen", "must be HOST:PORT (e.g. 127.0.0.1:8080), got %q", c.API.Listen)
	}
	if (c.API.TLSCert == "") != (c.API.TLSKey == "") {
		bad("api.tls_cert", "api.tls_cert and api.tls_key must be set together")
	}
	if c.API.MaxBodyBytes < 1024 || c.API.MaxBodyBytes > 64<<20 {
		bad("api.max_body_bytes", "must be between 1024 and %d, got %d", 64<<20, c.API.MaxBodyBytes)
	}
	tokenNames := map[string]bool{}
	for i, t := range c.API.Tokens {
		key := fmt.Sprintf("api.tokens[%d]", i)
		if t.Name == "" {
			bad(key+".name", "required")
		} else if tokenNames[t.Name] {
			bad(key+".name", "duplicate token name %q", t.Name)
		}
		tokenNames[t.Name] = true
		oneOf(key+".role", t.Role, RoleViewer, RoleOperator, RoleAdmin)
		if n := len(t.Token.Reveal()); n < 16 {
			bad(key+".token", "must be at least 16 characters, got %d", n)
		}
	}

	if c.Database.EnableWAL != nil && !*c.Database.EnableWAL {
		bad("database.enable_wal", "WAL cannot be turned off: the job engine needs concurrent readers (remove the key or set true)")
	}
	if c.Database.URL.IsSet() {
		if err := checkDSN(c.Database.URL.Reveal()); err != nil {
			bad("database.url", "%v", err)
		}
		if c.Database.Path != "" {
			bad("database.path", "set either database.path (SQLite) or database.url (PostgreSQL), not both")
		}
	}
	intRange("database.max_conns", c.Database.MaxConns, 2, 1000)

	intRange("jobs.max_concurrent", c.Jobs.MaxConcurrent, 1, 256)
	intRange("jobs.per_provider_limit", c.Jobs.PerProviderLimit, 0, 256)
	intRange("jobs.max_attempts", c.Jobs.MaxAttempts, 1, 100)
	durRange("jobs.retry_backoff", c.Jobs.RetryBackoff, 100*time.Millisecond, time.Hour)
	durRange("jobs.retry_backoff_max", c.Jobs.RetryBackoffMax, c.Jobs.RetryBackoff, 24*time.Hour)
	durRange("jobs.timeout", c.Jobs.Timeout, 0, 7*24*time.Hour)
	durRange("jobs.retention", c.Jobs.Retention, 0, 10*365*24*time.Hour)
	durRange("jobs.heartbeat_stale", c.Jobs.HeartbeatStale, 5*time.Second, time.Hour)

	oneOf("export.format", c.Export.Format, "ovf", "ova", "disks")
	oneOf("export.disk_format", c.Export.DiskFormat, "vmdk", "raw", "qcow2", "vhd", "vhdx")
	if c.Export.DiskFormat != "vmdk" && c.Export.DiskFormat != "" && c.Export.Format != "disks" {
		bad("export.disk_format", "%s needs export.format disks (OVF packages carry streamOptimized VMDK disks)", c.Export.DiskFormat)
	}
	if c.Export.VHDType != "" {
		oneOf("export.vhd_type", c.Export.VHDType, "dynamic", "fixed")
	}
	oneOf("export.compression", c.Export.Compression, "gzip", "zstd")
	intRange("export.compression_level", c.Export.CompressionLevel, 0, 9)
	intRange("export.parallel_downloads", c.Export.ParallelDownloads, 1, 32)
	if c.Export.BandwidthLimit < 0 {
		bad("export.bandwidth_limit", "must be 0 (unlimited) or a positive number of bytes per second")
	}
	for i, r := range c.Export.AllowedRoots {
		if !filepath.IsAbs(r) {
			bad(fmt.Sprintf("export.allowed_roots[%d]", i), "must be an absolute path, got %q", r)
		}
	}

	if a := c.Cluster.Advertise; a != "" {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("cluster.advertise", "must be the API's base URL such as https://node-a.example:8080, got %q", a)
		}
	}
	durRange("cluster.heartbeat_interval", c.Cluster.HeartbeatInterval, 100*time.Millisecond, time.Minute)
	durRange("cluster.dead_after", c.Cluster.DeadAfter, 3*c.Cluster.HeartbeatInterval, 10*time.Minute)
	intRange("cluster.max_concurrent", c.Cluster.MaxConcurrent, 0, 100000)
	intRange("demo.extra_vms", c.Demo.ExtraVMs, 0, 1000)
	intRange("demo.max_concurrent", c.Demo.DemoMaxConcurrent(), 0, 256)

	intRange("connection_pool.max_connections", c.ConnectionPool.MaxConnections, 1, 100)
	durRange("connection_pool.idle_timeout", c.ConnectionPool.IdleTimeout, time.Second, 24*time.Hour)
	durRange("connection_pool.health_check_interval", c.ConnectionPool.HealthCheckInterval, time.Second, time.Hour)

	names := map[string]string{}
	for i, p := range c.ProviderInstances() {
		key := fmt.Sprintf("providers[%d]", i-boolInt(c.VCenter != nil))
		if c.VCenter != nil && i == 0 {
			key = "vcenter"
		}
		if !instanceName.MatchString(p.Name) {
			bad(key+".name", "must match %s (lowercase letters, digits, - and _), got %q", instanceName, p.Name)
		}
		if prev, dup := names[p.Name]; dup {
			bad(key+".name", "provider name %q is already used by %s", p.Name, prev)
		}
		names[p.Name] = key
		intRange(key+".max_concurrent", p.MaxConcurrent, 0, 256)
		switch s := p.Settings.(type) {
		case nil:
			bad(key, "settings for type %s are missing", p.Type)
		case interface{ Validate() error }:
			// Each problem names its key within the instance ("url: …").
			for _, err := range unjoin(s.Validate()) {
				errs = append(errs, fmt.Errorf("%s.%w", key, err))
			}
		}
	}

	// The daemon's SSRF guard, so that --check-config and start-up refuse
	// what delivery would.
	guard := netguard.Guard{AllowPrivate: c.WebhookDelivery.AllowPrivateTargets, Setting: "webhook_delivery.allow_private_targets"}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		if _, err := guard.CheckURL(w.URL); err != nil {
			bad(key+".url", "%v", err)
		}
		for _, name := range slices.Sorted(maps.Keys(w.Headers)) {
			if err := netguard.CheckHeader(name, w.Headers[name].Reveal()); err != nil {
				bad(key+".headers", "%v", err) // never the value: it may be a secret
			}
		}
		if len(w.Events) == 0 {
			bad(key+".events", "list at least one event type (e.g. job.completed or job.*)")
		}
		for j, e := range w.Events {
			if !eventPattern.MatchString(e) {
				bad(fmt.Sprintf("%s.events[%d]", key, j), "must be an event type such as job.completed or a wildcard such as job.* or *, got %q", e)
			}
		}
		if w.Timeout != 0 {
			durRange(key+".timeout", w.Timeout, 100*time.Millisecond, 5*time.Minute)
		}
		if w.Retry != nil {
			intRange(key+".retry", *w.Retry, 0, 50)
		}
	}
	for i, t := range c.OutputTargets {
		key := fmt.Sprintf("output_targets[%d]", i)
		scheme, rest, ok := strings.Cut(t.URL, "://")
		switch {
		case !ok || (scheme != "s3" && scheme != "gs" && scheme != "azblob"):
			bad(key+".url", "must start with s3://, gs:// or azblob://, got %q", t.URL)
		case rest == "" || strings.HasPrefix(rest, "/") || strings.ContainsAny(rest, "@?#"):
			bad(key+".url", "must name a bucket (azblob: an account) and carry no credentials, query or fragment")
		}
		if t.Endpoint != "" {
			g := netguard.Guard{AllowPrivate: t.AllowPrivate, Setting: key + ".allow_private"}
			if _, err := g.CheckURL(t.Endpoint); err != nil {
				bad(key+".endpoint", "%v", err)
			}
		}
		if scheme == "azblob" && !t.AccountKey.IsSet() {
			bad(key+".account_key", "required for azblob targets")
		}
		if t.AccessKeyID != "" && !t.SecretAccessKey.IsSet() {
			bad(key+".secret_access_key", "required with access_key_id")
		}
	}
	intRange("webhook_delivery.workers", c.WebhookDelivery.Workers, 1, 64)
	for i, d := range c.WebhookDelivery.RetrySchedule {
		durRange(fmt.Sprintf("webhook_delivery.retry_schedule[%d]", i), d, 10*time.Millisecond, 24*time.Hour)
	}
	durRange("webhook_delivery.progress_interval", c.WebhookDelivery.ProgressInterval, 100*time.Millisecond, time.Hour)
	durRange("webhook_delivery.retention", c.WebhookDelivery.Retention, time.Hour, 10*365*24*time.Hour)

	return errors.Join(errs...)
}

var (
	instanceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	eventPattern = regexp.MustCompile(`^(\*|[a-z]+(\.(\*|[a-z_]+))?)$`)
)

// unjoin lists the errors joined in err (errors.Join), or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
