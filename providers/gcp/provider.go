package gcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	cloudbuild "cloud.google.com/go/cloudbuild/apiv1/v2"
	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"
	"google.golang.org/protobuf/proto"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// BuilderExecutable is the Cloud Build builder that exports an image.
const BuilderExecutable = "gce_vm_image_export"

// cloudPlatformScope is the OAuth scope every call is made with.
const cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// Provider is one Google Cloud project.
type Provider struct {
	name string
	// cfg is a pointer so that printing a Provider shows an address, not
	// the credential in it.
	cfg  *Config
	log  *slog.Logger
	tune tuning

	mu sync.RWMutex
	c  *clients

	types machineTypeCache
}

// clients are the connected API clients, all on one authenticated HTTP
// client built on transfer.NewHTTPClient.
type clients struct {
	http       *http.Client
	instances  *compute.InstancesClient
	mtypes     *compute.MachineTypesClient
	disks      *compute.DisksClient
	snapshots  *compute.SnapshotsClient
	images     *compute.ImagesClient
	globalOps  *compute.GlobalOperationsClient
	zoneOps    *compute.ZoneOperationsClient
	builds     *cloudbuild.Client
	storage    *storage.Client
	storageURL string // JSON API base, ending in /
}

// tuning holds timings and limits; tests shorten them.
type tuning struct {
	pollMin, pollMax time.Duration // operation and build polls
	snapshotTimeout  time.Duration
	cleanupTimeout   time.Duration
	pageSize         uint32
	// Build timeout: buildBase + buildPerGiB × disk GiB, within
	// [buildMin, buildMax] (see buildTimeout).
	buildBase, buildPerGiB, buildMin, buildMax time.Duration
	// readChunk × readConcurrency bounds a disk download's memory.
	readChunk       int64
	readConcurrency int
}

func defaultTuning() tuning {
	return tuning{
		pollMin: 2 * time.Second, pollMax: 30 * time.Second,
		snapshotTimeout: 6 * time.Hour, cleanupTimeout: 3 * time.Minute,
		pageSize:  500,
		buildBase: 30 * time.Minute, buildPerGiB: time.Minute, buildMin: time.Hour, buildMax: 24 * time.Hour,
		readChunk: 16 << 20, readConcurrency: 6,
	}
}

// New is the factory of type gcp (see providers.Registration).
func New(name string, cfg *Config, deps providers.Deps) (providers.Provider, error) {
	return NewProvider(name, *cfg, deps.Logger)
}

// Registration is what type gcp contributes to a composition root.
func Registration() providers.Registration[Config] {
	return providers.Registration[Config]{Decode: Decode, New: New, Demo: providers.DemoWithoutOptions(StartDemo)}
}

// NewProvider creates an unconnected provider for one project.
func NewProvider(name string, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gcp %s: %w", name, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Provider{name: name, cfg: &cfg, log: log, tune: defaultTuning()}, nil
}

func (p *Provider) Name() string         { return p.name }
func (p *Provider) Type() providers.Type { return providers.TypeGCP }

// Connect implements providers.Provider: one authenticated HTTP client
// (the configured key, or Application Default Credentials) on the
// project's transport, the Compute Engine and Cloud Build REST clients and
// the Cloud Storage client on it, and one authenticated call.
func (p *Provider) Connect(ctx context.Context) error {
	base, err := transfer.NewHTTPClient(transfer.ClientOptions{MaxConnsPerHost: 64, ResponseHeaderTimeout: time.Minute})
	if err != nil {
		return err
	}
	auth := []option.ClientOption{option.WithScopes(cloudPlatformScope)}
	switch {
	case p.cfg.CredentialsFile != "":
		auth = append(auth, option.WithAuthCredentialsFile(option.ServiceAccount, p.cfg.CredentialsFile))
	case p.cfg.CredentialsJSON.IsSet():
		auth = append(auth, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(p.cfg.CredentialsJSON.Reveal())))
	}
	rt, err := htransport.NewTransport(ctx, base.Transport, auth...)
	if err != nil {
		// The library's message says which sources it tried; it never
		// holds the key's contents.
		return fmt.Errorf("gcp %s: no usable credentials: %w: %w", p.name, providers.ErrAuth, err)
	}
	hc := &http.Client{Transport: rt}
	with := func(endpoint string) []option.ClientOption {
		o := []option.ClientOption{option.WithHTTPClient(hc)}
		if endpoint != "" {
			o = append(o, option.WithEndpoint(endpoint))
		}
		return o
	}
	c := &clients{http: hc, storageURL: "https://storage.googleapis.com/storage/v1/"}
	if p.cfg.Endpoints.Storage != "" {
		c.storageURL = p.cfg.Endpoints.Storage
		if c.storageURL[len(c.storageURL)-1] != '/' {
			c.storageURL += "/"
		}
	}
	ce := p.cfg.Endpoints.Compute
	var errs []error
	keep := func(err error) { errs = append(errs, err) }
	var e error
	if c.instances, e = compute.NewInstancesRESTClient(ctx, with(ce)...); e != nil {
		keep(e)
	}
	if c.mtypes, e = compute.NewMachineTypesRESTClient(ctx, with(ce)...); e != nil {
		keep(e)
	}
	if c.disks, e = compute.NewDisksRESTClient(ctx, with(ce)...); e != nil {
		keep(e)
	}
	if c.snapshots, e = compute.NewSnapshotsRESTClient(ctx, with(ce)...); e != nil {
		keep(e)
	}
	if c.images, e = compute.NewImagesRESTClient(ctx, with(ce)...); e != nil {
		keep(e)
	}
	if c.globalOps, e = compute.NewGlobalOperationsRESTClient(ctx, with(ce)...); e != nil {
		keep(e)
	}
	if c.zoneOps, e = compute.NewZoneOperationsRESTClient(ctx, with(ce)...); e != nil {
		keep(e)
	}
	if c.builds, e = cloudbuild.NewRESTClient(ctx, with(p.cfg.Endpoints.CloudBuild)...); e != nil {
		keep(e)
	}
	if c.storage, e = storage.NewClient(ctx, append(with(c.storageURL), storage.WithJSONReads())...); e != nil {
		keep(e)
	}
	if err := errors.Join(errs...); err != nil {
		c.close()
		return providers.Permanent(fmt.Errorf("gcp %s: create the API clients: %w", p.name, err))
	}
	p.mu.Lock()
	old := p.c
	p.c = c
	p.mu.Unlock()
	if old != nil {
		old.close()
	}
	return p.ValidateCredentials(ctx)
}

func (c *clients) close() {
	if c.instances != nil {
		c.instances.Close()
	}
	if c.mtypes != nil {
		c.mtypes.Close()
	}
	if c.disks != nil {
		c.disks.Close()
	}
	if c.snapshots != nil {
		c.snapshots.Close()
	}
	if c.images != nil {
		c.images.Close()
	}
	if c.globalOps != nil {
		c.globalOps.Close()
	}
	if c.zoneOps != nil {
		c.zoneOps.Close()
	}
	if c.builds != nil {
		c.builds.Close()
	}
	if c.storage != nil {
		c.storage.Close()
	}
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
}

// Disconnect closes the clients.
func (p *Provider) Disconnect() error {
	p.mu.Lock()
	c := p.c
	p.c = nil
	p.mu.Unlock()
	if c != nil {
		c.close()
	}
	return nil
}

func (p *Provider) clients() (*clients, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.c == nil {
		return nil, fmt.Errorf("gcp %s: not connected", p.name)
	}
	return p.c, nil
}

// ValidateCredentials lists at most one instance of the first zone: the
// cheapest authenticated call that also proves the project and zone.
func (p *Provider) ValidateCredentials(ctx context.Context) error {
	c, err := p.clients()
	if err != nil {
		return err
	}
	it := c.instances.List(ctx, &computepb.ListInstancesRequest{Project: p.cfg.Project, Zone: p.cfg.Zones[0], MaxResults: proto.Uint32(1)})
	if _, err := it.Next(); err != nil && !errors.Is(err, iterator.Done) {
		return p.apiError("check credentials", err)
	}
	return nil
}
