package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"

	"github.com/hypersdk/hypersdk/providers"
)

// Provider is one vCenter (or ESXi host).
type Provider struct {
	name       string
	endpoint   *url.URL
	datacenter string
	insecure   bool
	thumbprint string
	pool       *Pool
	poolCfg    PoolConfig
	dial       Dialer
	log        *slog.Logger
}

// New is the factory of type vsphere (see providers.Registration).
func New(name string, cfg *Config, deps providers.Deps) (providers.Provider, error) {
	return NewProvider(name, *cfg, PoolConfig{
		Enabled: deps.Pool.Enabled, MaxConnections: deps.Pool.MaxConnections,
		IdleTimeout: deps.Pool.IdleTimeout, HealthCheckInterval: deps.Pool.HealthCheckInterval,
	}, deps.Logger)
}

// Registration is what type vsphere contributes to a composition root.
func Registration() providers.Registration[Config] {
	return providers.Registration[Config]{Decode: Decode, New: New, Demo: func(ctx context.Context, log *slog.Logger, o providers.DemoOptions) (*Config, func(), error) {
		return startDemo(ctx, log, o.ExtraVMs)
	}}
}

// NewProvider creates an unconnected provider for one endpoint.
func NewProvider(name string, cfg Config, pool PoolConfig, log *slog.Logger) (*Provider, error) {
	if log == nil {
		log = slog.Default()
	}
	u, err := parseEndpoint(cfg.URL)
	if err != nil {
		return nil, err
	}
	username, password := cfg.Username, cfg.Password.Reveal()
	if u.User != nil && username == "" {
		username = u.User.Username()
	}
	u.User = nil
	p := &Provider{
		name: name, endpoint: u, datacenter: cfg.Datacenter, insecure: cfg.Insecure, thumbprint: cfg.Thumbprint,
		poolCfg: pool, log: log,
	}
	p.dial = NewDialer(u, username, password, cfg.Insecure, cfg.Thumbprint)
	return p, nil
}

// parseEndpoint accepts "host", "https://host" or "https://host/sdk".
func parseEndpoint(raw string) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("vSphere URL %q is not a URL", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	return u, nil
}

func (p *Provider) Name() string         { return p.name }
func (p *Provider) Type() providers.Type { return providers.TypeVSphere }

// Connect implements providers.Provider: it logs one session in (so bad
// credentials surface now) and keeps it in the pool.
func (p *Provider) Connect(ctx context.Context) error {
	if p.pool == nil {
		p.pool = NewPool(p.poolCfg, p.dial, p.log)
	}
	return p.ValidateCredentials(ctx)
}

// Disconnect logs every pooled session out.
func (p *Provider) Disconnect() error {
	if p.pool != nil {
		p.pool.Close()
	}
	return nil
}

// ValidateCredentials asks vCenter for the current session through the pool.
func (p *Provider) ValidateCredentials(ctx context.Context) error {
	if p.pool == nil {
		return errors.New("not connected")
	}
	return p.pool.Do(ctx, func(ctx context.Context, c *vim25.Client) error {
		us, err := session.NewManager(c).UserSession(ctx)
		if err != nil {
			return err
		}
		if us == nil {
			return fmt.Errorf("vCenter %s reports no session: %w", p.endpoint.Host, providers.ErrAuth)
		}
		return nil
	})
}

// PoolStats implements providers.Pooled.
func (p *Provider) PoolStats() providers.PoolStats {
	if p.pool == nil {
		return providers.PoolStats{}
	}
	return p.pool.Stats()
}

// GetExportCapabilities implements providers.Provider.
func (p *Provider) GetExportCapabilities() providers.ExportCapabilities {
	return providers.ExportCapabilities{
		Formats:          providers.Formats(),
		DiskFormats:      providers.DiskFormats(),
		Compression:      []string{"gzip", "zstd"},
		SupportsSnapshot: true, SupportsPowerOff: true, ParallelDownloads: true, Resumable: true,
	}
}
