package azure

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/hypersdk/hypersdk/internal/backoff"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// Provider is one Azure subscription.
type Provider struct {
	name string
	// cfg is a pointer so that printing a Provider with %+v shows an
	// address, not the secrets in it.
	cfg  *Config
	log  *slog.Logger
	tune tuning
	// sasPatterns are where grants' SAS URLs may point.
	sasPatterns []blobPattern

	mu        sync.RWMutex
	http      *http.Client // ARM and sign-in
	blobHTTP  *http.Client // SAS downloads
	vms       *armcompute.VirtualMachinesClient
	sizes     *armcompute.VirtualMachineSizesClient
	disks     *armcompute.DisksClient
	snapshots *armcompute.SnapshotsClient

	sizeCache sizeCache
}

// tuning holds the timings and limits of the platform calls; tests shorten
// them.
type tuning struct {
	// armRetries and armRetryDelay drive the SDK's retries of ARM calls
	// (429 and 5xx, honouring Retry-After).
	armRetries    int32
	armRetryDelay time.Duration
	// pollFrequency is how often a long-running ARM operation (grant,
	// revoke, snapshot) is polled.
	pollFrequency time.Duration
	// grantDuration is how long a SAS grant lasts; a download that
	// outlives it renews the grant (Refresh).
	grantDuration time.Duration
	// copyPoll and copyTimeout: waiting for an incremental snapshot's
	// background copy.
	copyPoll, copyTimeout time.Duration
	// cleanupTimeout bounds revoking and deleting, which run on a context
	// of their own because the export's may be cancelled.
	cleanupTimeout time.Duration
	// cellSize is the block grid of a disk's download: at most 4 MiB, the
	// largest range Azure returns an MD5 for.
	cellSize int64
	// blockTimeout bounds one ranged GET.
	blockTimeout time.Duration
	// maxConns bounds the connections to one blob host: the block
	// workers of the exports running at once.
	maxConns int
	// lookups bounds the concurrent instance view and disk calls of a
	// listing.
	lookups int
	// listRetry spaces the attempts of a Get Page Ranges listing.
	listRetry backoff.Policy
}

func defaultTuning() tuning {
	return tuning{
		armRetries: 6, armRetryDelay: 2 * time.Second,
		pollFrequency:  2 * time.Second,
		grantDuration:  time.Hour,
		copyPoll:       10 * time.Second,
		copyTimeout:    12 * time.Hour,
		cleanupTimeout: 2 * time.Minute,
		cellSize:       4 << 20,
		blockTimeout:   2 * time.Minute,
		maxConns:       128,
		lookups:        8,
		listRetry:      backoff.Policy{Base: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.5},
	}
}

// New is the factory of type azure (see providers.Registration).
func New(name string, cfg *Config, deps providers.Deps) (providers.Provider, error) {
	return NewProvider(name, *cfg, deps.Logger)
}

// Registration is what type azure contributes to a composition root.
func Registration() providers.Registration[Config] {
	return providers.Registration[Config]{Decode: Decode, New: New, Demo: providers.DemoWithoutOptions(StartDemo)}
}

// NewProvider creates an unconnected provider for one subscription.
func NewProvider(name string, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("azure %s: %w", name, err)
	}
	if log == nil {
		log = slog.Default()
	}
	patterns, err := cfg.blobPatterns()
	if err != nil {
		return nil, fmt.Errorf("azure %s: %w", name, err)
	}
	return &Provider{name: name, cfg: &cfg, log: log, tune: defaultTuning(), sasPatterns: patterns}, nil
}

func (p *Provider) Name() string         { return p.name }
func (p *Provider) Type() providers.Type { return providers.TypeAzure }

// cloudConfig is the cloud's endpoints with the configured overrides.
func (c *Config) cloudConfig() cloud.Configuration {
	def := c.cloud()
	login, armURL, audience := def.login, def.arm, def.audience
	if c.Endpoints.Login != "" {
		login = c.Endpoints.Login
	}
	if c.Endpoints.ARM != "" {
		armURL = strings.TrimSuffix(c.Endpoints.ARM, "/")
		audience = armURL
	}
	if c.Endpoints.ARMAudience != "" {
		audience = c.Endpoints.ARMAudience
	}
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: login,
		Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: {Endpoint: armURL, Audience: audience}},
	}
}

// Connect implements providers.Provider: it builds the credential and the
// ARM clients and makes one authenticated call, so that bad credentials
// surface now.
func (p *Provider) Connect(ctx context.Context) error {
	var roots *x509.CertPool
	if p.cfg.CAFile != "" {
		pool, err := loadCAFile(p.cfg.CAFile)
		if err != nil {
			return providers.Permanent(fmt.Errorf("azure %s: ca_file: %w", p.name, err))
		}
		roots = pool
	}
	hc, err := transfer.NewHTTPClient(transfer.ClientOptions{RootCAs: roots, ResponseHeaderTimeout: time.Minute})
	if err != nil {
		return err
	}
	blobHC, err := transfer.NewHTTPClient(transfer.ClientOptions{
		RootCAs: roots, MaxConnsPerHost: p.tune.maxConns,
		// A 4 MiB range, not a disk: the first byte comes quickly or the
		// request is tried again.
		ResponseHeaderTimeout: 30 * time.Second,
	})
	if err != nil {
		return err
	}
	cc := p.cfg.cloudConfig()
	clientOpts := azcore.ClientOptions{
		Cloud:     cc,
		Transport: hc,
		Retry:     policy.RetryOptions{MaxRetries: p.tune.armRetries, RetryDelay: p.tune.armRetryDelay, MaxRetryDelay: time.Minute},
		Telemetry: policy.TelemetryOptions{ApplicationID: "hypersdk"},
	}
	cred, err := p.credential(clientOpts)
	if err != nil {
		return err
	}
	f, err := armcompute.NewClientFactory(p.cfg.SubscriptionID, cred, &arm.ClientOptions{ClientOptions: clientOpts})
	if err != nil {
		return providers.Permanent(fmt.Errorf("azure %s: ARM clients: %w", p.name, err))
	}
	p.mu.Lock()
	p.http, p.blobHTTP = hc, blobHC
	p.vms, p.sizes = f.NewVirtualMachinesClient(), f.NewVirtualMachineSizesClient()
	p.disks, p.snapshots = f.NewDisksClient(), f.NewSnapshotsClient()
	p.mu.Unlock()
	return p.ValidateCredentials(ctx)
}

// credential builds the configured azidentity credential. Sign-in uses the
// same HTTP client as ARM; a login endpoint other than the cloud's skips
// instance discovery (Azure Stack Hub, private clouds, tests), which asks
// the public cloud's metadata service.
func (p *Provider) credential(opts azcore.ClientOptions) (azcore.TokenCredential, error) {
	c := p.cfg.Credential
	custom := p.cfg.Endpoints.Login != ""
	var (
		cred azcore.TokenCredential
		err  error
	)
	switch p.cfg.credentialType() {
	case CredentialClientSecret:
		cred, err = azidentity.NewClientSecretCredential(p.cfg.TenantID, c.ClientID, c.ClientSecret.Reveal(),
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
	case CredentialCertificate:
		data, rerr := os.ReadFile(c.CertificateFile)
		if rerr != nil {
			return nil, providers.Permanent(fmt.Errorf("azure %s: credential.certificate_file: %w", p.name, rerr))
		}
		var pw []byte
		if c.CertificatePassword.IsSet() {
			pw = []byte(c.CertificatePassword.Reveal())
		}
		certs, key, perr := azidentity.ParseCertificates(data, pw)
		if perr != nil {
			// The parser's message names no secret; it may not say which
			// file, so that is added.
			return nil, providers.Permanent(fmt.Errorf("azure %s: credential.certificate_file %s: %w: %v", p.name, c.CertificateFile, providers.ErrInvalidArgument, perr))
		}
		cred, err = azidentity.NewClientCertificateCredential(p.cfg.TenantID, c.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom, SendCertificateChain: true})
	case CredentialManagedIdentity:
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if c.ClientID != "" {
			o.ID = azidentity.ClientID(c.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(o)
	case CredentialAzureCLI:
		cred, err = azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: p.cfg.TenantID, Subscription: p.cfg.SubscriptionID})
	default:
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: opts, TenantID: p.cfg.TenantID, DisableInstanceDiscovery: custom,
		})
	}
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("azure %s: credential %s: %w: %s", p.name, p.cfg.credentialType(), providers.ErrAuth, redactURLs(err.Error())))
	}
	return cred, nil
}

// Disconnect drops the clients and their idle connections.
func (p *Provider) Disconnect() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range []*http.Client{p.http, p.blobHTTP} {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
	p.http, p.blobHTTP, p.vms, p.sizes, p.disks, p.snapshots = nil, nil, nil, nil, nil, nil
	return nil
}

// clients are the connected ARM clients.
type clients struct {
	vms       *armcompute.VirtualMachinesClient
	sizes     *armcompute.VirtualMachineSizesClient
	disks     *armcompute.DisksClient
	snapshots *armcompute.SnapshotsClient
	blobHTTP  *http.Client
}

func (p *Provider) clients() (*clients, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.vms == nil {
		return nil, fmt.Errorf("azure %s: not connected", p.name)
	}
	return &clients{vms: p.vms, sizes: p.sizes, disks: p.disks, snapshots: p.snapshots, blobHTTP: p.blobHTTP}, nil
}

// ValidateCredentials makes the cheapest authenticated ARM call there is:
// the first page of the VMs (of the first configured resource group).
func (p *Provider) ValidateCredentials(ctx context.Context) error {
	c, err := p.clients()
	if err != nil {
		return err
	}
	if len(p.cfg.ResourceGroups) > 0 {
		_, err = c.vms.NewListPager(p.cfg.ResourceGroups[0], nil).NextPage(ctx)
	} else {
		_, err = c.vms.NewListAllPager(nil).NextPage(ctx)
	}
	if err != nil {
		err = p.armError("check credentials", err)
		if statusOf(err) == http.StatusNotFound && len(p.cfg.ResourceGroups) > 0 {
			return providers.Permanent(fmt.Errorf("%w (resource_groups[0] %q)", err, p.cfg.ResourceGroups[0]))
		}
		return err
	}
	return nil
}
