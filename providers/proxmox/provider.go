package proxmox

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/internal/sshclient"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
	"github.com/hypersdk/hypersdk/transfer/sftp"
)

// Provider is one Proxmox VE cluster (or single node).
type Provider struct {
	name string
	// cfg is a pointer so that printing a Provider with %+v shows an
	// address, not the secrets in it.
	cfg  *Config
	log  *slog.Logger
	tune tuning

	mu    sync.Mutex
	api   *api
	http  *http.Client
	ssh   map[string]*sshclient.Client // by node
	sftps map[string]*sftp.Client      // by node
}

// tuning holds timings the tests shorten.
type tuning struct {
	// taskPoll is the interval between polls of a task's status.
	taskPoll time.Duration
	// taskTimeout bounds a vzdump task of the api method.
	taskTimeout time.Duration
	// cleanupTimeout bounds removing a snapshot or an archive, which
	// runs on its own context because the export's may be cancelled.
	cleanupTimeout time.Duration
	// discoveryConcurrency bounds the configuration reads of ListVMs.
	discoveryConcurrency int
	apiRetry             backoff.Policy
	apiAttempts          int
}

func defaultTuning() tuning {
	return tuning{
		taskPoll:             time.Second,
		taskTimeout:          24 * time.Hour,
		cleanupTimeout:       2 * time.Minute,
		discoveryConcurrency: 8,
		apiRetry:             backoff.Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: 1},
		apiAttempts:          4,
	}
}

// New is the factory of type proxmox (see providers.Registration).
func New(name string, cfg *Config, deps providers.Deps) (providers.Provider, error) {
	return NewProvider(name, *cfg, deps.Logger)
}

// Registration is what type proxmox contributes to a composition root.
func Registration() providers.Registration[Config] {
	return providers.Registration[Config]{Decode: Decode, New: New, Demo: providers.DemoWithoutOptions(StartDemo)}
}

// NewProvider creates an unconnected provider.
func NewProvider(name string, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxmox %s: %w", name, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Provider{name: name, cfg: &cfg, log: log, tune: defaultTuning(),
		ssh: map[string]*sshclient.Client{}, sftps: map[string]*sftp.Client{}}, nil
}

func (p *Provider) Name() string         { return p.name }
func (p *Provider) Type() providers.Type { return providers.TypeProxmox }

// Connect implements providers.Provider: it builds the API client (the
// project's HTTP client with the configured certificate pin or CA) and
// makes one authenticated call, so that bad credentials surface now. SSH
// connections to the nodes are made when an export needs them.
func (p *Provider) Connect(ctx context.Context) error {
	base, err := p.cfg.apiURL()
	if err != nil {
		return providers.Permanent(fmt.Errorf("proxmox %s: url: %w", p.name, err))
	}
	opts := transfer.ClientOptions{Thumbprint: p.cfg.Thumbprint, ResponseHeaderTimeout: 2 * time.Minute}
	if p.cfg.CAFile != "" {
		if opts.RootCAs, err = p.cfg.caPool(); err != nil {
			return providers.Permanent(fmt.Errorf("proxmox %s: ca_file: %w", p.name, err))
		}
	}
	hc, err := transfer.NewHTTPClient(opts)
	if err != nil {
		return providers.Permanent(fmt.Errorf("proxmox %s: %w", p.name, err))
	}
	a := &api{base: base, http: hc, username: p.cfg.Username, password: p.cfg.Password,
		retry: p.tune.apiRetry, attempts: p.tune.apiAttempts}
	if p.cfg.TokenID != "" {
		a.token = "PVEAPIToken=" + p.cfg.TokenID + "=" + p.cfg.TokenSecret.Reveal()
	}
	p.mu.Lock()
	p.api, p.http = a, hc
	p.mu.Unlock()
	return p.ValidateCredentials(ctx)
}

// Disconnect drops the API client and closes the SSH connections.
func (p *Provider) Disconnect() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.http != nil {
		p.http.CloseIdleConnections()
	}
	for _, c := range p.sftps {
		c.Close()
	}
	for _, c := range p.ssh {
		c.Close()
	}
	p.api, p.http = nil, nil
	p.ssh, p.sftps = map[string]*sshclient.Client{}, map[string]*sftp.Client{}
	return nil
}

// client returns the connected API client.
func (p *Provider) client() (*api, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.api == nil {
		return nil, fmt.Errorf("proxmox %s: %w", p.name, providers.ErrNotConnected)
	}
	return p.api, nil
}

// ValidateCredentials reads the API version: the cheapest authenticated
// call.
func (p *Provider) ValidateCredentials(ctx context.Context) error {
	a, err := p.client()
	if err != nil {
		return err
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := a.get(ctx, "/version", nil, &v); err != nil {
		return fmt.Errorf("proxmox %s: check credentials: %w", p.name, err)
	}
	return nil
}

// sshClient returns the SSH client of node, made on first use (it dials
// lazily; see internal/sshclient).
func (p *Provider) sshClient(node string) (*sshclient.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.ssh[node]; c != nil {
		return c, nil
	}
	t, err := p.cfg.sshFor(node)
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("proxmox %s: %w: %w", p.name, providers.ErrInvalidArgument, err))
	}
	c, err := sshclient.New(sshclient.Config{
		Addr: t.addr, User: t.user,
		Password:   p.cfg.SSH.Password.Reveal(),
		PrivateKey: []byte(p.cfg.SSH.PrivateKey.Reveal()), PrivateKeyPassphrase: p.cfg.SSH.PrivateKeyPassphrase.Reveal(),
		KnownHosts: t.knownHosts, HostKeyFingerprints: t.fingerprints,
	})
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("proxmox %s: node %s: %w", p.name, node, err))
	}
	p.ssh[node] = c
	return c, nil
}

// sftpClient returns the SFTP client of node.
func (p *Provider) sftpClient(node string) (*sftp.Client, error) {
	c, err := p.sshClient(node)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sftps[node]; s != nil {
		return s, nil
	}
	s := sftp.New(c)
	p.sftps[node] = s
	return s, nil
}
